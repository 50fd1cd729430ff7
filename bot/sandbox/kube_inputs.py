"""Review inputs for a Kubernetes sandbox: one image layer the kubelet pulls by digest, never a credential.

The bot writes the spec's inputs (the exported tree, the pipeline spec) into a deterministic tar under
``/modelship-review`` and pushes the product image plus that layer to the registry's
``<product repository>/review-inputs``, tagged for its instance and run (``OciRegistry.push_image_layer``;
kube_runner deletes it when the run ends, and sweeps its instance's leftovers at start). The Job's
trusted init container runs that image, pinned by digest, and copies the files into the pod's
``inputs`` emptyDir (``main`` below): the node pulls the bytes (with the node's or the namespace's
pull credentials, which no container sees), so the pod needs neither network nor a registry Secret,
and the NetworkPolicy can deny everything.

Why a layer rather than an artifact an init container downloads: a NetworkPolicy applies to the whole
pod, so an init container that reaches the registry means an untrusted container that can too.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import stat
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from bot.sandbox.runner import Mount

STAGED = "modelship-review"  # the layer's top directory (kube_jobs.STAGED_DIR in the image)
INPUTS = PurePosixPath("/inputs")


class InputsError(ValueError):
    """An input cannot be put in the layer (outside /inputs, unreadable, not a file or a directory)."""


def _members(mounts: Sequence[Mount]) -> Iterator[tuple[str, Path]]:
    """(path in the layer, host path) for every directory, file and link, sorted, parents first."""
    seen = {STAGED}
    yield STAGED, Path("/")  # always there, so a run without inputs still finds its (empty) staged directory
    for mount in sorted(mounts, key=lambda m: m.container_path):
        target = PurePosixPath(mount.container_path)
        if INPUTS not in target.parents:
            raise InputsError(f"input {mount.container_path} is not under {INPUTS}")
        base = f"{STAGED}/{target.relative_to(INPUTS)}"
        for parent in reversed(PurePosixPath(base).parents[:-1]):
            if str(parent) not in seen:
                seen.add(str(parent))
                yield str(parent), Path("/")  # an intermediate directory
        if mount.host_path.is_dir() and not mount.host_path.is_symlink():
            yield base, mount.host_path
            for dirpath, dirnames, filenames in os.walk(mount.host_path, followlinks=False):
                dirnames.sort()
                rel = Path(dirpath).relative_to(mount.host_path)
                for name in sorted([*dirnames, *filenames]):
                    yield f"{base}/{(rel / name).as_posix()}", Path(dirpath) / name
        else:
            yield base, mount.host_path


def write_layer(mounts: Sequence[Mount], out: BinaryIO) -> tuple[str, int]:
    """Write the inputs as a deterministic gzipped tar; returns (diff_id, uncompressed size)."""
    tar_hash = hashlib.sha256()
    size = 0

    class _Hashing:
        def write(self, data: bytes) -> int:
            nonlocal size
            tar_hash.update(data)
            size += len(data)
            return gz.write(data)

    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=1) as gz,
        tarfile.open(fileobj=_Hashing(), mode="w|", format=tarfile.PAX_FORMAT) as tar,  # type: ignore[call-overload]
    ):
        for name, path in _members(mounts):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path == Path("/") or (path.is_dir() and not path.is_symlink()):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif path.is_symlink():
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, os.readlink(path)
                tar.addfile(info)
            elif path.is_file():
                info.mode, info.size = 0o644, path.stat().st_size
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                raise InputsError(f"input {path} is neither a file, a directory nor a link")
    return "sha256:" + tar_hash.hexdigest(), size


def copy_tree(source: Path, dest: Path) -> int:
    """Copy ``source`` into ``dest`` without following links (links are copied as links); the file count."""
    copied = 0
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        rel = Path(dirpath).relative_to(source)
        (dest / rel).mkdir(mode=0o755, exist_ok=True)
        for name in [*dirnames, *filenames]:
            src, dst = Path(dirpath) / name, dest / rel / name
            info = src.lstat()
            if os.path.lexists(dst) and not os.path.isdir(dst):
                os.unlink(dst)  # a restarted copy starts over rather than failing on its own read-only files
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(src), dst)
                dirnames[:] = [d for d in dirnames if d != name]
            elif stat.S_ISREG(info.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
                os.chmod(dst, 0o444)
                copied += 1
    return copied


def main(argv: list[str] | None = None) -> int:
    """The init container: copy the staged inputs into the pod's inputs volume."""
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox.kube_inputs")
    parser.add_argument("--from", dest="source", type=Path, required=True)
    parser.add_argument("--to", dest="dest", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"no staged inputs at {args.source}: the inputs layer is missing from this image", file=sys.stderr)
        return 2
    try:
        count = copy_tree(args.source, args.dest)
    except OSError as exc:
        print(f"copying the inputs failed: {exc}", file=sys.stderr)
        return 1
    print(f"staged {count} input files in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
