"""The registry-free runner image: its build context, and the runtime it borrows from the host."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

from bot.sandbox.local_image import DEFAULT_TAG, LocalRuntime, dockerfile, system_libraries, write_context


def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text(
        "home = /root/.pyenv/versions/3.11.7/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n"
    )
    return venv


def test_the_runtime_is_found_from_the_venv_config(tmp_path: Path):
    runtime = LocalRuntime.discover(fake_venv(tmp_path), tmp_path)
    assert runtime.python_home == Path("/root/.pyenv/versions/3.11.7")
    assert runtime.short_version == "3.11"
    assert [(str(m.host_path), m.container_path) for m in runtime.mounts()] == [
        ("/root/.pyenv/versions/3.11.7", "/opt/python"),
        (f"{tmp_path}/venv/lib/python3.11/site-packages", "/opt/venv/lib/python3.11/site-packages"),
        (f"{tmp_path}/pipelines", "/opt/modelship/pipelines"),
        (f"{tmp_path}/contract", "/opt/modelship/contract"),
    ]


def test_nothing_secret_is_mounted(local_runtime: LocalRuntime):
    sources = [m.host_path for m in local_runtime.mounts()]
    assert Path.home() not in sources and Path("/etc") not in sources
    for source in sources:
        assert not any(source == parent or parent in source.parents for parent in (Path("/etc"), Path("/run")))
        assert source.is_dir()


def test_the_context_is_a_scratch_image_running_as_nobody(tmp_path: Path):
    runtime = LocalRuntime.discover(fake_venv(tmp_path), tmp_path)
    buffer = io.BytesIO()
    write_context(runtime, ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"], buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile("rootfs/etc/passwd").read().decode()  # type: ignore[union-attr]
        venv_cfg = tar.extractfile("rootfs/opt/venv/pyvenv.cfg").read().decode()  # type: ignore[union-attr]
    assert dockerfile(runtime).startswith("FROM scratch\n")
    assert "USER 65534:65534" in dockerfile(runtime)
    assert "nobody:x:65534:65534" in passwd
    assert "home = /opt/python/bin" in venv_cfg
    assert members["rootfs/opt/venv/bin/python"].linkname == "/opt/python/bin/python3.11"
    assert members["rootfs/scratch"].mode == 0o1777 and members["rootfs/tmp"].mode == 0o1777
    if os.path.islink("/lib"):  # merged /usr hosts keep the loader's path working
        assert members["rootfs/lib"].issym()
        assert "rootfs/usr/lib/x86_64-linux-gnu/libc.so.6" in members
    assert not any(name.startswith(("rootfs/root", "rootfs/home")) for name in members)


def test_the_system_libraries_are_the_few_the_venv_links_against(local_runtime: LocalRuntime):
    libraries = system_libraries(local_runtime)
    names = {os.path.basename(p) for p in libraries}
    assert {"libc.so.6", "libm.so.6", "libstdc++.so.6", "ld-linux-x86-64.so.2"} <= names
    assert not any(p.startswith((str(local_runtime.venv), str(local_runtime.python_home))) for p in libraries)
    assert len(libraries) < 200


def test_the_built_image_is_tagged_and_labelled(docker_client: Any, runner_image: str):
    image = docker_client.images.get(runner_image)
    assert runner_image == DEFAULT_TAG
    assert image.labels["io.modelship.runner"] == "local"
    assert image.attrs["Config"]["User"] == "65534:65534"
