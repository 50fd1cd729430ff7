"""Run a command and hand its outputs back as framed log lines: how a Kubernetes sandbox run returns.

On Kubernetes the bot cannot mount the sandbox's ``/out`` on its own host; the only channel out of a
pod with no network and no credentials is its log, read through the API server. This supervisor runs
inside the untrusted container (``python -m pipelines.framed --out /out --keep variants -- CMD…``):
it runs CMD with its stdout and stderr piped, stops it when either stream passes the cap (what the
Docker backend's log reader does), then writes to its own stdout, and nothing else:

    MODELSHIP-FRAME <size> <sha256> <name>
    <base64 lines>
    MODELSHIP-END <name>

for ``stdout``, ``stderr``, ``status`` (exit code, which stream flooded), ``result`` (the bytes of
/out/result.json, read without following links; or ``result-refused``: why not) and ``keep/<path>``
(each regular file under /out/<keep>, within the caps). Everything here runs beside the PR's code, so
the bot trusts none of it: it parses the frames with the same caps and re-checks the result exactly as
it checks a Docker run's /out (bot.sandbox.kube_jobs.unframe). Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

BEGIN, END = "MODELSHIP-FRAME", "MODELSHIP-END"
RESULT_FILE = "result.json"
_LINE = 76 * 3 // 4  # base64 lines of 76 characters


def frame(out: BinaryIO, name: str, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    out.write(f"{BEGIN} {len(data)} {digest} {name}\n".encode())
    for i in range(0, len(data), _LINE * 1024):
        chunk = data[i : i + _LINE * 1024]
        out.write(b"\n".join(base64.b64encode(chunk[j : j + _LINE]) for j in range(0, len(chunk), _LINE)) + b"\n")
    out.write(f"{END} {name}\n".encode())
    out.flush()


class _Pump(threading.Thread):
    """Read one of the child's streams, keeping at most ``cap`` bytes; flag a flood past it."""

    def __init__(self, stream: IO[bytes], cap: int, on_flood: threading.Event) -> None:
        super().__init__(daemon=True)
        self.stream, self.cap, self.on_flood = stream, cap, on_flood
        self.data = bytearray()
        self.flooded = False

    def run(self) -> None:
        while chunk := self.stream.read1(1 << 16):  # type: ignore[attr-defined]
            room = self.cap - len(self.data)
            self.data += chunk[: max(room, 0)]
            if len(chunk) > room:
                self.flooded = True
                self.on_flood.set()
                return


def read_result(out: Path, cap: int) -> tuple[bytes | None, str | None]:
    """The result file's bytes, never through a link and never more than ``cap``; else why not."""
    path = out / RESULT_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, f"the command wrote no /out/{RESULT_FILE}"
    except OSError as exc:
        if os.path.islink(path):
            return None, f"refused /out/{RESULT_FILE}: it is a symbolic link"
        return None, f"refused /out/{RESULT_FILE}: {exc.strerror}"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, f"refused /out/{RESULT_FILE}: not a regular file"
        raw = handle.read(cap + 1)
    if len(raw) > cap:
        return None, f"refused /out/{RESULT_FILE}: over the {cap} byte cap"
    return raw, None


def kept(root: Path, cap: int, max_files: int, max_total: int) -> Iterator[tuple[str, bytes]]:
    """Regular files under ``root`` (no links followed), within the per-file, count and total caps."""
    if root.is_symlink() or not root.is_dir():
        return
    count = total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not (Path(dirpath) / d).is_symlink())
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if "\n" in str(path):  # a frame header is one line
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
                    continue
                if count >= max_files or total + info.st_size > max_total:
                    continue
                data = handle.read(info.st_size)
            count, total = count + 1, total + len(data)
            yield str(path.relative_to(root)), data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.framed")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--output-cap", type=int, required=True, help="bytes kept per stream")
    parser.add_argument("--result-cap", type=int, required=True)
    parser.add_argument("--keep", default=None)
    parser.add_argument("--keep-files", type=int, default=32)
    parser.add_argument("--keep-bytes", type=int, default=1 << 30)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")

    flood = threading.Event()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    pumps = [_Pump(child.stdout, args.output_cap, flood), _Pump(child.stderr, args.output_cap, flood)]
    for pump in pumps:
        pump.start()
    waiter = threading.Thread(target=child.wait, daemon=True)
    waiter.start()
    while waiter.is_alive() and not flood.is_set():
        waiter.join(0.05)
    if flood.is_set():
        child.kill()
        child.wait()
    for pump in pumps:
        pump.join(5)
    code = child.returncode
    flooded = next((n for n, p in zip(("stdout", "stderr"), pumps, strict=True) if p.flooded), None)
    out = sys.stdout.buffer
    frame(out, "stdout", bytes(pumps[0].data))
    frame(out, "stderr", bytes(pumps[1].data))
    status = {"exit_code": code if code >= 0 else 128 - code, "signal": -code if code < 0 else None, "flooded": flooded}
    if flooded is None:
        raw, refused = read_result(args.out, args.result_cap)
        if raw is not None:
            frame(out, "result", raw)
        else:
            frame(out, "result-refused", (refused or "").encode())
        if code == 0 and args.keep:
            for name, data in kept(args.out / args.keep, args.result_cap, args.keep_files, args.keep_bytes):
                frame(out, f"keep/{name}", data)
    frame(out, "status", json.dumps(status).encode())
    # The exit code is the command's, so the pod's own status says the same as the status frame.
    return status["exit_code"] if isinstance(status["exit_code"], int) else 1


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
