"""pipelines.framed, the supervisor inside a Kubernetes sandbox: run a command, hand back its outputs as frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.sandbox.kube_jobs import frame_status, unframe


def supervise(tmp_path: Path, code: str, *extra: str, cap: int = 1 << 20) -> dict[str, bytes]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.framed",
            "--out",
            str(out),
            "--output-cap",
            str(cap),
            "--result-cap",
            "4096",
            *extra,
            "--",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "OUT": str(out)},
    )
    frames = unframe(done.stdout)
    assert done.returncode == frame_status(frames)["exit_code"]
    return frames


def test_the_result_streams_and_kept_files_come_back_framed(tmp_path: Path) -> None:
    code = (
        "import os, json, sys; out = os.environ['OUT']; print('working'); print('warn', file=sys.stderr);"
        "os.makedirs(out + '/variants/m'); open(out + '/variants/m/model.onnx', 'wb').write(b'onnx');"
        "json.dump({'ok': True}, open(out + '/result.json', 'w'))"
    )
    frames = supervise(tmp_path, code, "--keep", "variants")
    assert frames["stdout"] == b"working\n" and frames["stderr"] == b"warn\n"
    assert json.loads(frames["result"]) == {"ok": True}
    assert frames["keep/m/model.onnx"] == b"onnx"
    assert json.loads(frames["status"]) == {"exit_code": 0, "signal": None, "flooded": None}


def test_a_flood_is_stopped_at_the_cap_and_named(tmp_path: Path) -> None:
    code = "import os\nwhile True: os.write(1, b'x' * 65536)"
    frames = supervise(tmp_path, code, cap=100_000)
    status = json.loads(frames["status"])
    assert status["flooded"] == "stdout" and status["signal"] == 9
    assert len(frames["stdout"]) == 100_000 and "result" not in frames


def test_a_symlinked_result_is_refused_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("leaked")
    code = f"import os; os.symlink({str(secret)!r}, os.environ['OUT'] + '/result.json')"
    frames = supervise(tmp_path, code)
    assert frames["result-refused"] == b"refused /out/result.json: it is a symbolic link"
    assert b"leaked" not in b"".join(frames.values())


def test_an_oversized_result_is_refused(tmp_path: Path) -> None:
    frames = supervise(tmp_path, "import os; open(os.environ['OUT'] + '/result.json', 'w').write('1' * 5000)")
    assert frames["result-refused"] == b"refused /out/result.json: over the 4096 byte cap"
