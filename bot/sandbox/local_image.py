"""Build the runner image locally, without a registry: ``FROM scratch`` plus the host's Python.

    python -m bot.sandbox.local_image --url unix:///tmp/modelship-podman/podman.sock [--force]

The image holds only the system libraries the interpreter and the venv's extension modules link
against, a ``nobody`` passwd entry, a venv shim (``/opt/venv/bin/python`` + ``pyvenv.cfg``) and
empty mount points. The Python runtime, the venv's site-packages and the ``pipelines`` and ``contract`` packages are
bind-mounted read-only at run time (``LocalRuntime.mounts``): they are part of the runner's
configuration, never of an untrusted spec. Nothing from ``/root`` beyond the interpreter's own
directory and nothing from ``/etc`` is exposed.

In production use ``bot/sandbox/runner.Dockerfile`` instead, which needs no mounts.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.sandbox.runner import INPUTS_DIR, OUTPUT_DIR, SCRATCH_DIR, Mount

DEFAULT_TAG = "modelship-runner:local"
PYTHON_HOME = "/opt/python"
VENV = "/opt/venv"
SOURCE_ROOT = "/opt/modelship"
NOBODY = 65534
# Bump when the image layout changes so existing local images get rebuilt instead of reused.
LAYOUT_VERSION = "2"

_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


@dataclass(frozen=True)
class LocalRuntime:
    """Host paths the local image borrows: interpreter prefix, venv and the source checkout."""

    python_home: Path  # e.g. /root/.pyenv/versions/3.11.7
    venv: Path  # e.g. /work/main/.venv
    source_root: Path  # holds the ``pipelines`` and ``contract`` packages
    python_version: str  # e.g. "3.11.7"

    @property
    def short_version(self) -> str:
        return ".".join(self.python_version.split(".")[:2])

    @property
    def site_packages(self) -> str:
        return f"lib/python{self.short_version}/site-packages"

    @classmethod
    def discover(cls, venv: Path, source_root: Path) -> LocalRuntime:
        """Read the venv's ``pyvenv.cfg`` to find the interpreter it was made from."""
        cfg = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition("=") for line in (venv / "pyvenv.cfg").read_text().splitlines())
            if v
        )
        home = Path(cfg["home"]).resolve()
        return cls(
            python_home=home.parent,
            venv=venv.resolve(),
            source_root=source_root.resolve(),
            python_version=cfg.get("version") or cfg["version_info"],
        )

    def mounts(self) -> tuple[Mount, ...]:
        return (
            Mount(self.python_home, PYTHON_HOME),
            Mount(self.venv / self.site_packages, f"{VENV}/{self.site_packages}"),
            Mount(self.source_root / "pipelines", f"{SOURCE_ROOT}/pipelines"),
            # pipelines imports the wire schema and the metric catalogue from contract/.
            Mount(self.source_root / "contract", f"{SOURCE_ROOT}/contract"),
        )

    def elf_files(self) -> Iterator[Path]:
        """The interpreter and every shared object that could be loaded from the runtime or the venv."""
        yield self.python_home / "bin" / f"python{self.short_version}"
        for root in (self.python_home / "lib", self.venv / self.site_packages):
            for path in root.rglob("*.so*"):
                if path.is_file() and not path.is_symlink():
                    yield path


def _ldd(paths: list[Path]) -> set[str]:
    out = subprocess.run(["ldd", *map(str, paths)], capture_output=True, text=True, check=False).stdout
    return {m.group(1) for line in out.splitlines() if (m := _LDD_LINE.match(line))}


def system_libraries(runtime: LocalRuntime) -> list[str]:
    """Host libraries outside the mounted trees that the loader will need, as the paths it looks up."""
    files = list(runtime.elf_files())
    batches = [files[i : i + 64] for i in range(0, len(files), 64)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = set().union(*pool.map(_ldd, batches))
    mounted = (str(runtime.python_home) + "/", str(runtime.venv) + "/")
    return sorted(p for p in found if not p.startswith(mounted))


def dockerfile(runtime: LocalRuntime) -> str:
    env = {
        "PATH": f"{VENV}/bin",
        # The interpreter's RUNPATH points at its host prefix; the loader must find libpython here.
        "LD_LIBRARY_PATH": f"{PYTHON_HOME}/lib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
    }
    lines = [
        "FROM scratch",
        "COPY rootfs/ /",
        "ENV " + " ".join(f"{k}={v}" for k, v in env.items()),
        f"WORKDIR {SOURCE_ROOT}",
        f"USER {NOBODY}:{NOBODY}",
        "LABEL " + " ".join(f'{k}="{v}"' for k, v in _labels(runtime).items()),
        'CMD ["python", "-c", "import sys; print(sys.version)"]',
    ]
    return "\n".join(lines) + "\n"


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _parents(path: str) -> Iterable[str]:
    parts = path.strip("/").split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def write_context(runtime: LocalRuntime, libraries: list[str], fileobj: Any) -> None:
    """The build context as a tar stream: Dockerfile + rootfs/. Pure apart from reading the libs."""
    with tarfile.open(fileobj=fileobj, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile(runtime).encode())
        made: set[str] = set()

        def mkdirs(path: str) -> None:
            for parent in [*_parents(path), path.strip("/")]:
                if parent and parent not in made:
                    made.add(parent)
                    # tmpfs mounts copy the mode of the directory they cover
                    sticky = "/" + parent in ("/tmp", SCRATCH_DIR)
                    _add_dir(tar, f"rootfs/{parent}", 0o1777 if sticky else 0o755)

        for lib in libraries:
            top = "/" + lib.strip("/").split("/")[0]
            # merged /usr: keep /lib -> usr/lib so PT_INTERP paths resolve
            if os.path.islink(top) and top.strip("/") not in made:
                made.add(top.strip("/"))
                _add_symlink(tar, f"rootfs{top}", os.readlink(top))
            real_dir = os.path.realpath(os.path.dirname(lib))
            mkdirs(real_dir)
            _add_bytes(tar, f"rootfs{real_dir}/{os.path.basename(lib)}", Path(lib).read_bytes(), 0o755)

        mkdirs("/etc")
        _add_bytes(
            tar,
            "rootfs/etc/passwd",
            f"root:x:0:0:root:/nonexistent:/bin/false\nnobody:x:{NOBODY}:{NOBODY}:nobody:/nonexistent:/bin/false\n".encode(),
        )
        _add_bytes(tar, "rootfs/etc/group", f"root:x:0:\nnogroup:x:{NOBODY}:\n".encode())
        for mount in runtime.mounts():
            mkdirs(mount.container_path)
        for path in (INPUTS_DIR, SCRATCH_DIR, OUTPUT_DIR, "/tmp", f"{VENV}/bin"):
            mkdirs(path)
        _add_symlink(tar, f"rootfs{VENV}/bin/python", f"{PYTHON_HOME}/bin/python{runtime.short_version}")
        _add_symlink(tar, f"rootfs{VENV}/bin/python3", "python")
        _add_symlink(tar, f"rootfs{VENV}/bin/python{runtime.short_version}", "python")
        _add_bytes(
            tar,
            f"rootfs{VENV}/pyvenv.cfg",
            (
                f"home = {PYTHON_HOME}/bin\ninclude-system-site-packages = false\nversion = {runtime.python_version}\n"
            ).encode(),
        )


def _labels(runtime: LocalRuntime) -> dict[str, str]:
    return {
        "io.modelship.runner": "local",
        "io.modelship.layout": LAYOUT_VERSION,
        "io.modelship.python": runtime.python_version,
    }


class _Images(Protocol):
    def get(self, name: str) -> Any: ...
    def build(self, **kwargs: Any) -> Any: ...


def build_image(images: _Images, runtime: LocalRuntime, tag: str = DEFAULT_TAG, force: bool = False) -> str:
    """Build (or reuse) the local runner image; returns its id. ``images`` is ``DockerClient.images``."""
    if not force:
        try:
            existing = images.get(tag)
        except Exception as exc:  # docker.errors.ImageNotFound; the SDK is not imported here
            if type(exc).__name__ != "ImageNotFound":
                raise
        else:
            if existing.labels | _labels(runtime) == existing.labels:
                return str(existing.id)
    with tempfile.TemporaryFile() as context:
        write_context(runtime, system_libraries(runtime), context)
        context.seek(0)
        image, _ = images.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True)
    return str(image.id)


def main(argv: list[str] | None = None) -> int:
    import docker  # only the CLI talks to the engine directly

    from bot.settings import SOURCE_ROOT as repo  # the one place that knows where the checkout is

    parser = argparse.ArgumentParser(description="Build the Modelship runner image locally (no registry).")
    parser.add_argument("--url", required=True, help="Docker Engine API URL, e.g. unix:///…/podman.sock")
    parser.add_argument("--venv", type=Path, default=repo / ".venv", help="venv with modelship[pipelines]")
    parser.add_argument("--source", type=Path, default=repo, help="checkout holding pipelines/")
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag exists")
    args = parser.parse_args(argv)
    runtime = LocalRuntime.discover(args.venv, args.source)
    client = docker.DockerClient(base_url=args.url)
    try:
        image_id = build_image(client.images, runtime, args.tag, args.force)
    finally:
        client.close()
    print(f"{args.tag} {image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
