"""A tiny test image for the stand-in's own tests: Debian's static busybox, ``FROM scratch``.

Built locally through the Engine API (no registry, seconds): ``sh``, ``echo``, ``sleep``, ``wget``,
``nc``, ``cat``, … as busybox applets, and a passwd with root and nobody. Its USER is root, so a pod
must set ``runAsUser`` to satisfy ``runAsNonRoot``, as with most public images.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

TAG = "modelship-kubeapi-busybox:1"
BUSYBOX = Path(shutil.which("busybox") or "/bin/busybox")


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def build(client: Any, tag: str = TAG) -> str:
    """Build (once: reused when the tag exists) and return the tag."""
    try:
        client.images.get(tag)
        return tag
    except Exception:  # docker.errors.ImageNotFound; any other error shows up in the build below
        pass
    if not BUSYBOX.exists():
        raise RuntimeError("busybox is not installed: run scripts/setup-system.sh (Debian's busybox-static)")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        _add(tar, "Dockerfile", b"FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n")
        _add(tar, "rootfs/bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"rootfs/bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        _add(tar, "rootfs/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        _add(tar, "rootfs/etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        for directory in ("rootfs/tmp", "rootfs/run", "rootfs/var/tmp", "rootfs/root"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if "tmp" in directory else 0o755
            tar.addfile(info)
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return tag
