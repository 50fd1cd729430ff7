"""Sandbox backend for the Docker Engine API (Docker, or podman's compatible service).

Every run gets the same hardening, and the container's settings are read back after create: if
the engine dropped or weakened any control, the container is removed without ever starting.
The docker SDK blocks, so each call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.types import Mount as DockerMount

from bot.sandbox import seccomp
from bot.sandbox.runner import OUTPUT_DIR, RESULT_FILE, SCRATCH_DIR, MiB, Mount, SandboxResult, SandboxSpec

NOBODY = "65534:65534"
SANDBOX_LABEL = "io.modelship.sandbox"
# A sandbox that vanished while it ran, said the same way by both backends (bot.sandbox.kube_runner too).
REMOVED = (
    "the sandbox {what} was removed before it finished ({name}; not by Modelship: removed on the engine, evicted "
    "or deleted by someone else); nothing of its run was kept: rerun the review"
)
# Docker's default capability set; podman reports `cap_drop=ALL` expanded into exactly these.
DEFAULT_CAPS = frozenset(
    [
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ]
)
log = logging.getLogger(__name__)
T = TypeVar("T")
_REAP_GRACE_S = 10.0  # how long log readers and a killed container may lag behind
# How wait_exited watches a run: the result file's appearance is checked often (a local lstat); the
# engine is asked once a second until then, and often once the command has written its result.
_HINT_POLL_S = 0.05
_ENGINE_POLL_S = 1.0
_TINY_TMPFS = MiB
# result.json nests a few levels (report -> models -> metrics -> interval); anything far deeper is
# an attack on the parser (a RecursionError) or on whatever walks the document later.
MAX_RESULT_DEPTH = 32


@dataclass(frozen=True)
class OutputLimits:
    """Operator caps on what a run may leave behind (settings, never a spec or a repository).

    ``out_bytes``/``out_files``: /out is a tmpfs of this size and inode count, mounted by the
    runner on the host, so a run that writes more gets ENOSPC instead of filling the host's disk
    (0 = a plain directory, uncapped: only for engines the runner cannot mount for).
    ``keep_bytes``/``keep_files``: what may be copied out of /out/<keep> after a run.
    """

    out_bytes: int = 512 * MiB
    out_files: int = 10_000
    keep_bytes: int = 1024 * MiB
    keep_files: int = 32


def create_kwargs(
    spec: SandboxSpec, runtime_mounts: Sequence[Mount], output_dir: Path, *, seccomp_opt: str | None = None
) -> dict[str, Any]:
    """The hardened ``containers.create`` arguments for one spec (pure)."""
    tmpfs_opts = f"rw,nosuid,nodev,noexec,size={spec.scratch_bytes},mode=1777"
    # podman adds unsized /run and /var/tmp to read-only containers; nothing needs them, so cap them tiny.
    tiny = f"rw,nosuid,nodev,noexec,size={_TINY_TMPFS}"
    mounts = [
        DockerMount(m.container_path, str(m.host_path), type="bind", read_only=True)
        for m in (*runtime_mounts, *spec.inputs)
    ]
    mounts.append(DockerMount(OUTPUT_DIR, str(output_dir), type="bind", read_only=False))
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.argv),
        "environment": dict(spec.env),
        "user": NOBODY,
        "network_disabled": True,
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges", *([seccomp_opt] if seccomp_opt else [])],
        "privileged": False,
        "mem_limit": spec.memory_bytes,
        "memswap_limit": spec.memory_bytes,  # same as memory: no swap to spill into
        "nano_cpus": int(spec.cpus * 1e9),
        "pids_limit": spec.pids_limit,
        "tmpfs": {"/tmp": tmpfs_opts, SCRATCH_DIR: tmpfs_opts, "/run": tiny, "/var/tmp": tiny},
        "mounts": mounts,
        "labels": {SANDBOX_LABEL: "1"},
        "detach": True,
    }
    if spec.workdir:
        kwargs["working_dir"] = spec.workdir
    return kwargs


def missing_controls(
    attrs: Mapping[str, Any], spec: SandboxSpec, output_dir: Path, *, seccomp_opt: str | None = None
) -> list[str]:
    """What the created container lacks, read from ``docker inspect`` (pure). Empty means safe."""
    host = attrs.get("HostConfig") or {}
    config = attrs.get("Config") or {}
    problems: list[str] = []

    def want(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    want(host.get("NetworkMode") == "none", f"network mode is {host.get('NetworkMode')!r}, not 'none'")
    want(host.get("ReadonlyRootfs") is True, "root filesystem is not read-only (ReadonlyRootfs)")
    want(not host.get("Privileged"), "container is privileged")
    cap_drop = set(host.get("CapDrop") or ())
    want(
        not host.get("CapAdd") and ("ALL" in cap_drop or cap_drop >= DEFAULT_CAPS),
        "capabilities are not all dropped (CapDrop ALL, no CapAdd)",
    )
    options = [str(s) for s in host.get("SecurityOpt") or ()]
    security = [s.replace("=", ":") for s in options]
    want(
        any(s in ("no-new-privileges", "no-new-privileges:true") for s in security),
        "no-new-privileges is not set (SecurityOpt)",
    )
    if seccomp_opt is not None:
        want(seccomp_opt in options, "the sandbox seccomp profile is not applied (SecurityOpt seccomp=)")
    want(config.get("User") == NOBODY, f"user is {config.get('User')!r}, not {NOBODY}")
    want(host.get("Memory") == spec.memory_bytes, f"memory limit is {host.get('Memory')}, not {spec.memory_bytes}")
    want(
        host.get("MemorySwap") == spec.memory_bytes,
        f"memory+swap limit is {host.get('MemorySwap')}, not {spec.memory_bytes}",
    )
    want(host.get("PidsLimit") == spec.pids_limit, f"pids limit is {host.get('PidsLimit')}, not {spec.pids_limit}")
    want(host.get("NanoCpus") == int(spec.cpus * 1e9), f"CPU limit is {host.get('NanoCpus')}, not {spec.cpus}")
    tmpfs = host.get("Tmpfs") or {}
    for path, size in (("/tmp", spec.scratch_bytes), (SCRATCH_DIR, spec.scratch_bytes)):
        want(f"size={size}" in str(tmpfs.get(path, "")), f"{path} is not a size-capped tmpfs")
    for path in ("/run", "/var/tmp"):
        want(path not in tmpfs or "size=" in tmpfs[path], f"{path} is an unsized tmpfs")
    for mount in attrs.get("Mounts") or ():
        writable = mount.get("RW", True)
        if mount.get("Destination") == OUTPUT_DIR:
            want(mount.get("Source") == str(output_dir), f"{OUTPUT_DIR} is not the run's own output directory")
        else:
            want(not writable, f"mount {mount.get('Destination')} is writable")
    return problems


@dataclass
class _Capture:
    """One output stream, read with a cap so a flood never sits in memory."""

    cap: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    truncated: bool = False

    def feed(self, data: bytes) -> bool:
        """Keep up to ``cap`` bytes; returns False once the cap is exceeded."""
        room = self.cap - self.size
        if len(data) > room:
            self.chunks.append(data[: max(room, 0)])
            self.size = self.cap
            self.truncated = True
            return False
        self.chunks.append(data)
        self.size += len(data)
        return True

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def read_result(output_dir: Path, cap: int) -> tuple[dict[str, Any] | None, str | None]:
    """Read ``result.json`` without following links or trusting its size; returns (result, error)."""
    where = f"{OUTPUT_DIR}/{RESULT_FILE}"
    dir_fd = os.open(output_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            fd = os.open(RESULT_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except FileNotFoundError:
            return None, f"the command wrote no {where}"
        except OSError as exc:  # ELOOP: a symlink, the classic way to read a host file back
            if os.path.islink(output_dir / RESULT_FILE):
                return None, f"refused {where}: it is a symbolic link"
            return None, f"refused {where}: {exc.strerror}"
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, f"refused {where}: not a regular file"
        if info.st_size > cap:
            return None, f"refused {where}: {info.st_size} bytes is over the {_size(cap)} cap"
        raw = handle.read(cap + 1)
    if len(raw) > cap:
        return None, f"refused {where}: over the {_size(cap)} cap"
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique)
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"refused {where}: not valid JSON ({exc})"
    except RecursionError:
        return None, f"refused {where}: nested deeper than {MAX_RESULT_DEPTH} levels"
    if not isinstance(document, dict):
        return None, f"refused {where}: the top level must be a JSON object"
    if json_depth(document) > MAX_RESULT_DEPTH:
        return None, f"refused {where}: nested deeper than {MAX_RESULT_DEPTH} levels"
    return document, None


def json_depth(document: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion (pure)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys")
    return result


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"


def _last_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:300] if lines else ""


def unreadable_inputs(inputs: Sequence[Mount]) -> list[str]:
    """Inputs whose mount root uid 65534 cannot read: it owns nothing on the host and shares no group."""
    problems = []
    for mount in inputs:
        try:
            mode = mount.host_path.stat().st_mode
        except OSError as exc:
            problems.append(f"input {mount.host_path} cannot be mounted: {exc.strerror}")
            continue
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
        if mode & need != need:
            problems.append(
                f"input {mount.host_path} (mode {stat.S_IMODE(mode):o}) is not readable by the sandbox user; "
                "make it world-readable"
            )
    return problems


def keep_files(source: Path, dest: Path, cap: int, *, max_files: int = 32, max_total: int | None = None) -> list[Path]:
    """Copy regular files from the sandbox's output without following links or trusting sizes.

    At most ``max_files`` files of at most ``cap`` bytes each, ``max_total`` bytes in all: what
    does not fit is skipped (and logged), so a run cannot fill the artifacts directory.
    """
    kept: list[Path] = []
    total, limit = 0, cap * max_files if max_total is None else max_total
    if source.is_symlink() or not source.is_dir():
        return kept
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not (Path(dirpath) / d).is_symlink())
        for name in sorted(filenames):
            src = Path(dirpath) / name
            try:
                fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue  # a symlink or something unreadable: not an artifact
            with os.fdopen(fd, "rb") as fh:
                info = os.fstat(fh.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
                    continue
                if len(kept) >= max_files or total + info.st_size > limit:
                    log.warning(
                        "sandbox: not keeping %s: over the artifact caps (%d files, %d bytes)",
                        src.name,
                        max_files,
                        limit,
                    )
                    continue
                target = dest / src.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    # Copy at most what fstat said: a file still growing cannot smuggle more in.
                    remaining = info.st_size
                    while remaining > 0 and (chunk := fh.read(min(remaining, MiB))):
                        out.write(chunk)
                        remaining -= len(chunk)
                total += info.st_size
                kept.append(target)
    return kept


class OutputMountError(Exception):
    """The size-capped /out could not be mounted; the message names the setting to change."""


_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MNT_DETACH = 2


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def make_output_dir(root: Path | None, limits: OutputLimits | None = None) -> Path:
    """A fresh directory the sandbox user may write to, and nobody else but us can see.

    With ``limits.out_bytes`` it is a tmpfs of that size (and ``out_files`` inodes): the engine's
    own tmpfs mounts vanish with the container before the result can be read, and a tmpfs volume
    too (podman unmounts it when the container stops), so the runner mounts it on the host itself
    (needs CAP_SYS_ADMIN, as root has). Its pages are charged to the writing container's memory
    cgroup, so a run can never hold more of it than its memory limit either.
    """
    path = Path(tempfile.mkdtemp(prefix="modelship-out-", dir=root))
    if limits is not None and limits.out_bytes > 0:
        options = f"size={limits.out_bytes},nr_inodes={limits.out_files},mode=0700,uid=65534,gid=65534"
        flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
        if _libc().mount(b"tmpfs", str(path).encode(), b"tmpfs", flags, options.encode()) != 0:
            err = ctypes.get_errno()
            path.rmdir()
            raise OutputMountError(
                f"cannot put {OUTPUT_DIR} on a size-capped tmpfs ({errno.errorcode.get(err, err)}: "
                f"{os.strerror(err)}): run the bot as root or with CAP_SYS_ADMIN, or set "
                "MODELSHIP_SANDBOX_OUT_MAX_BYTES=0 to accept an uncapped /out on this host"
            )
        return path
    try:
        os.chown(path, 65534, 65534)
        path.chmod(0o700)
    except PermissionError:  # not root: the mount root's own mode is all the container sees
        path.chmod(0o777)
    return path


def remove_output_dir(path: Path) -> None:
    """Unmount (when it is a tmpfs) and remove a run's output directory."""
    if os.path.ismount(path) and _libc().umount2(str(path).encode(), _MNT_DETACH) != 0:
        log.error("sandbox: could not unmount %s: %s", path, os.strerror(ctypes.get_errno()))
        return
    shutil.rmtree(path, ignore_errors=True)


class DockerEngineRunner:
    """``SandboxRunner`` over the Docker Engine API.

    ``runtime_mounts`` are read-only mounts the image needs (the local image's Python; none for the
    production image); they come from the operator, never from a spec. ``create_overrides`` is
    merged into the create call (e.g. ``{"runtime": "runsc"}``); anything that weakens a control
    makes every run refused.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        runtime_mounts: Sequence[Mount] = (),
        create_overrides: Mapping[str, Any] | None = None,
        output_root: Path | None = None,
        limits: OutputLimits | None = None,
        seccomp_profile: Path | None = seccomp.PROFILE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._runtime_mounts = tuple(runtime_mounts)
        self._overrides = dict(create_overrides or {})
        self._output_root = output_root
        self.limits = limits or OutputLimits()
        self._seccomp_profile = seccomp_profile
        self._seccomp_opt: str | None = None
        self._clock = clock

    def _seccomp(self) -> str | None:
        """The seccomp SecurityOpt for this engine: podman takes a path, Docker the JSON (asked once)."""
        if self._seccomp_profile is None:
            return None
        if self._seccomp_opt is None:
            components = self._client.version().get("Components") or ()
            podman = any("podman" in str(c.get("Name", "")).lower() for c in components)
            self._seccomp_opt = seccomp.security_opt(podman, self._seccomp_profile)
        return self._seccomp_opt

    async def image_identity(self, image: str) -> str | None:
        """The engine's id of ``image``; None when it is missing or the runtime is bind-mounted from the host
        (the local image: what runs may change under the same id). bot.sandbox.reuse keys results by it."""
        if self._runtime_mounts:
            return None

        def inspect() -> str | None:
            try:
                found = self._client.api.inspect_image(image)
            except docker.errors.DockerException:
                return None
            return str(found.get("Id") or "") or None

        found = await asyncio.to_thread(inspect)
        return f"docker {image} {found}" if found else None

    async def run(self, spec: SandboxSpec) -> SandboxResult:
        began = self._clock()
        if problems := unreadable_inputs(spec.inputs):
            return SandboxResult.failed("; ".join(problems), self._clock() - began)
        try:
            output_dir = make_output_dir(self._output_root, self.limits)
        except OutputMountError as exc:
            return SandboxResult.failed(str(exc), self._clock() - began)
        handle = _Handle()
        try:
            handle.pending = True
            seccomp_opt = await asyncio.to_thread(self._seccomp)
            container = await asyncio.to_thread(self._create, spec, output_dir, handle, seccomp_opt)
            if problems := missing_controls(container.attrs, spec, output_dir, seccomp_opt=seccomp_opt):
                return SandboxResult.failed(
                    "refused to start the sandbox: " + "; ".join(problems), self._clock() - began
                )
            await asyncio.to_thread(container.start)
            started = self._clock() - began
            result = await self._supervise(container, spec, output_dir, began, started)
            if result.ok and spec.keep and spec.keep_to is not None:
                cap = min(spec.result_cap_bytes, self.limits.keep_bytes)
                await asyncio.to_thread(
                    keep_files,
                    output_dir / spec.keep,
                    spec.keep_to,
                    cap,
                    max_files=self.limits.keep_files,
                    max_total=self.limits.keep_bytes,
                )
            return result
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return SandboxResult.failed(_engine_error(exc, spec), self._clock() - began)
        finally:
            # Shielded so a cancelled review still removes its container.
            await asyncio.shield(asyncio.to_thread(_cleanup, handle, output_dir))

    def _create(self, spec: SandboxSpec, output_dir: Path, handle: _Handle, seccomp_opt: str | None) -> Any:
        try:
            kwargs = create_kwargs(spec, self._runtime_mounts, output_dir, seccomp_opt=seccomp_opt) | self._overrides
            handle.container = self._client.containers.create(**kwargs)
            handle.container.reload()
            return handle.container
        finally:
            handle.settled.set()

    async def _supervise(
        self, container: Any, spec: SandboxSpec, output_dir: Path, began: float, started: float
    ) -> SandboxResult:
        flooded = threading.Event()
        stdout, stderr = _Capture(spec.output_cap_bytes), _Capture(spec.output_cap_bytes)
        readers = [
            _in_own_thread(lambda: self._follow(container, "stdout", stdout, flooded)),
            _in_own_thread(lambda: self._follow(container, "stderr", stderr, flooded)),
        ]
        waiter = _in_own_thread(lambda: wait_exited(container, output_dir / RESULT_FILE))
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(waiter), spec.timeout_s)
        except TimeoutError:
            timed_out = True
            await asyncio.to_thread(_kill, container)
            await asyncio.wait({waiter}, timeout=_REAP_GRACE_S)
        duration = self._clock() - began
        await asyncio.wait(readers, timeout=_REAP_GRACE_S)
        for reader in readers:  # a reader that failed has said so in the log; never leave it unretrieved
            if reader.done() and not reader.cancelled():
                reader.exception()
        try:
            await asyncio.to_thread(container.reload)
        except docker.errors.NotFound:  # the bot removes it only after this point (or on a cancelled run)
            return SandboxResult.failed(REMOVED.format(what="container", name=container.short_id), duration)
        state = container.attrs.get("State") or {}
        exit_code = state.get("ExitCode")
        oom = bool(state.get("OOMKilled"))
        result, result_error = (None, None)
        if not timed_out and not flooded.is_set():
            result, result_error = await asyncio.to_thread(read_result, output_dir, spec.result_cap_bytes)

        if timed_out:
            error: str | None = f"timed out after {spec.timeout_s:g} s (sandbox.timeout); the container was killed"
        elif flooded.is_set():
            which = "stdout" if stdout.truncated else "stderr"
            error = f"{which} exceeded the {_size(spec.output_cap_bytes)} output cap; the run was stopped"
        elif oom or exit_code == 137:
            # podman on cgroup v1 never sets OOMKilled; with our own kills ruled out above, the only
            # SIGKILL left is the kernel's OOM killer (init ignores SIGKILL from inside its namespace).
            oom = True
            error = f"ran out of memory: killed at the {_size(spec.memory_bytes)} limit (sandbox.memory)"
        elif exit_code != 0:
            detail = _last_line(stderr.data)
            error = f"the command exited with code {exit_code}" + (f": {detail}" if detail else "")
        else:
            error = result_error
        return SandboxResult(
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=oom,
            stdout=stdout.data,
            stderr=stderr.data,
            stdout_truncated=stdout.truncated,
            stderr_truncated=stderr.truncated,
            result=result,
            error=error,
            duration_s=duration,
            container_start_s=started,
        )

    def _follow(self, container: Any, which: str, capture: _Capture, flooded: threading.Event) -> None:
        """Stream one of the container's outputs until it exits or floods past the cap."""
        try:
            stream = self._client.api.logs(
                container.id, stdout=which == "stdout", stderr=which == "stderr", stream=True, follow=True
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # Gone already, or the engine too busy to answer: whatever it said is lost, the run goes on.
            log.warning("sandbox: cannot read %s of %s: %s", which, container.short_id, exc)
            return
        try:
            for chunk in _chunks(stream):
                if not capture.feed(chunk):
                    flooded.set()
                    _kill(container)
                    return
        finally:
            stream.close()


def _in_own_thread(call: Callable[[], T]) -> asyncio.Future[T]:
    """Run a call that blocks for the whole run on its own thread: parked in the shared pool
    (6 workers on 2 cores), a few concurrent runs would starve it, timeouts included."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def target() -> None:
        try:
            value, error = call(), None
        except BaseException as exc:
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=target, name="modelship-sandbox", daemon=True).start()
    return future


def wait_exited(container: Any, result: Path | None = None) -> None:
    """Block until the container has stopped running.

    Polls inspect rather than calling the engine's /wait: podman's compat /wait before 4.5 polls every
    microsecond (containers/podman#18149), spinning a core for as long as it waits; on a 2-core
    runner that halved the speed of the very sandbox it waited on (a review's two runs took twice
    their CPU time). Inspect is not free either (~4 ms of engine CPU, and as much here), so the
    engine is asked once a second, and every 50 ms once ``result`` exists: a command writes its
    result just before it exits, so a normal run is seen ending within ~50 ms, a crash within 1 s.
    """
    asked = -_ENGINE_POLL_S
    while True:
        written = result is not None and os.path.lexists(result)  # never follows a planted symlink
        if written or time.monotonic() - asked >= _ENGINE_POLL_S:
            asked = time.monotonic()
            try:
                container.reload()
            except docker.errors.NotFound:
                return  # removed under us (a cancelled run's cleanup): certainly not running
            state = (container.attrs.get("State") or {}).get("Status")
            if state not in ("created", "running", "paused", "restarting"):
                return
        time.sleep(_HINT_POLL_S)


def _chunks(stream: Any) -> Iterator[bytes]:
    # The stream ends with an error when the container is removed under it; that is an ordinary end.
    with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException, OSError, ValueError):
        yield from stream


def _kill(container: Any) -> None:
    with contextlib.suppress(docker.errors.DockerException):
        container.kill()


@dataclass
class _Handle:
    """The container as soon as the engine made it, even if the run was cancelled meanwhile."""

    pending: bool = False
    container: Any = None
    settled: threading.Event = field(default_factory=threading.Event)


def _cleanup(handle: _Handle, output_dir: Path) -> None:
    if handle.pending:  # a create still in flight would otherwise leak its container
        handle.settled.wait(_REAP_GRACE_S * 6)
    container = handle.container
    if container is not None:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException as exc:  # never mask the run's own outcome
            log.error("sandbox: could not remove container %s: %s", container.short_id, exc)
    remove_output_dir(output_dir)


def _engine_error(exc: Exception, spec: SandboxSpec) -> str:
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"container engine unreachable ({exc.__class__.__name__}); is scripts/podman-service.sh running?"
    if isinstance(exc, docker.errors.ImageNotFound):
        return (
            f"sandbox image {spec.image!r} not found on the container engine: build it "
            "(scripts/build-runner-image.sh), pull it, or set MODELSHIP_SANDBOX_IMAGE to one it has"
        )
    explanation = getattr(exc, "explanation", None) or str(exc)
    return f"container engine error: {explanation}"


def connect(url: str) -> docker.DockerClient:
    """A client for ``unix:///…/podman.sock`` or ``unix:///var/run/docker.sock``.

    No client-side read timeout: podman answers a log stream only when the container writes, so a
    container quiet for a minute would otherwise drop its reader (and escape the output cap). Every
    run is bounded by its own wall-clock timeout instead.
    """
    return docker.DockerClient(base_url=url, timeout=None)
