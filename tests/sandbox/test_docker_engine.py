"""Hardened runs on the real podman service: each probe is contained and reported, the host untouched."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import textwrap
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from bot.sandbox.docker_engine import SANDBOX_LABEL, DockerEngineRunner, missing_controls, read_result
from bot.sandbox.local_image import LocalRuntime
from bot.sandbox.runner import MiB, Mount, SandboxSpec
from devkit.processes import podman_cpu_seconds

pytestmark = pytest.mark.slow


def probe(image: str, code: str, **limits: Any) -> SandboxSpec:
    settings: dict[str, Any] = {"memory_bytes": 256 * MiB, "pids_limit": 64, "timeout_s": 30.0} | limits
    return SandboxSpec(image=image, argv=("python", "-c", textwrap.dedent(code)), **settings)


def labelled_runner(
    client: docker.DockerClient, runtime: LocalRuntime, **overrides: Any
) -> tuple[DockerEngineRunner, dict[str, str]]:
    """A runner whose containers carry a label unique to this test, to look for leftovers."""
    labels = {SANDBOX_LABEL: "1", "io.modelship.test": uuid.uuid4().hex}
    runner = DockerEngineRunner(
        client, runtime_mounts=runtime.mounts(), create_overrides={"labels": labels, **overrides}
    )
    return runner, labels


def outward_ip() -> str:
    """The host's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("1.1.1.1", 53))
        except OSError:
            return "127.0.0.1"
        return str(udp.getsockname()[0])


def leftovers(client: docker.DockerClient, labels: dict[str, str]) -> list[Any]:
    selector = [f"{k}={v}" for k, v in labels.items()]
    return list(client.containers.list(all=True, filters={"label": selector}))


async def test_a_run_reads_back_its_result_with_the_ml_stack_importable(sandbox_runner, runner_image, tmp_path):
    tmp_path.chmod(0o755)  # inputs must be readable by the sandbox user
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    code = """
        import json, os, sklearn, onnx, onnxruntime, skl2onnx, skops, pandas, numpy
        rows = pandas.read_csv("/inputs/rows.csv")
        caps = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]
        json.dump({"uid": os.getuid(), "sum": int(rows.values.sum()), "caps": caps,
                   "sklearn": sklearn.__version__}, open("/out/result.json", "w"))
        print("done")
    """
    spec = probe(runner_image, code, inputs=(Mount(tmp_path, "/inputs"),), memory_bytes=1024 * MiB)
    result = await sandbox_runner.run(spec)
    assert result.error is None, result.stderr.decode()
    assert result.exit_code == 0 and result.ok
    assert result.result is not None
    assert result.result["uid"] == 65534
    assert result.result["sum"] == 3
    assert int(result.result["caps"], 16) == 0
    assert result.stdout == b"done\n" and not result.stdout_truncated
    assert 0 < result.container_start_s < result.duration_s


async def test_concurrent_runs_keep_their_own_results(sandbox_runner, runner_image):
    code = "import json, sys; json.dump({{'run': {n}}}, open('/out/result.json', 'w'))"
    results = await asyncio.gather(*(sandbox_runner.run(probe(runner_image, code.format(n=n))) for n in range(3)))
    assert [r.result for r in results] == [{"run": 0}, {"run": 1}, {"run": 2}]


async def test_waiting_for_a_run_leaves_the_engine_idle(sandbox_runner, runner_image):
    # podman's compat /wait before 4.5 polls every microsecond: a 3 s run would cost the engine over
    # 3 s of CPU, taken from the sandbox itself on a 2-core runner.
    before = podman_cpu_seconds()
    result = await sandbox_runner.run(
        probe(runner_image, "import time, json; time.sleep(3); json.dump({}, open('/out/result.json', 'w'))")
    )
    used = podman_cpu_seconds() - before
    assert result.ok, result.error
    assert used < 1.0, f"the container engine used {used:.2f} s of CPU during a 3 s run"


async def test_network_access_fails_and_never_reaches_the_host(sandbox_runner, runner_image):
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    host_ip = outward_ip()
    code = f"""
        import socket
        for ip in ("127.0.0.1", "{host_ip}", "1.1.1.1"):
            try:
                socket.create_connection((ip, {port}), timeout=3)
                print("reached", ip)
            except OSError as exc:
                print("blocked", ip, exc.errno)
        socket.create_connection(("{host_ip}", {port}), timeout=3)
    """
    try:
        result = await sandbox_runner.run(probe(runner_image, code))
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
    assert not result.ok and result.exit_code == 1
    assert b"reached" not in result.stdout
    assert "Network is unreachable" in (result.error or "")


async def test_writes_outside_scratch_fail_and_inputs_stay_untouched(sandbox_runner, runner_image, tmp_path):
    tmp_path.chmod(0o755)
    data = tmp_path / "data.csv"
    data.write_text("x\n1\n")
    code = """
        import errno
        open("/scratch/ok", "w").write("scratch is writable")
        open("/tmp/ok", "w").write("tmp is writable")
        for path in ("/inputs/data.csv", "/opt/modelship/pipelines/evil.py", "/opt/python/evil", "/evil"):
            try:
                open(path, "w").write("pwned")
                print("wrote", path)
            except OSError as exc:
                print("refused", path, errno.errorcode[exc.errno])
        for path in ("/scratch/big", "/var/tmp/big", "/run/big"):
            try:
                open(path, "wb").write(b"x" * (8 << 20))
                print("wrote", path)
            except OSError as exc:
                print("full", path, errno.errorcode[exc.errno])
        open("/evil", "w")
    """
    spec = probe(runner_image, code, inputs=(Mount(tmp_path, "/inputs"),), scratch_bytes=4 * MiB)
    result = await sandbox_runner.run(spec)
    assert not result.ok and result.exit_code == 1
    assert b"wrote" not in result.stdout
    assert result.stdout.count(b"refused") == 4 and result.stdout.count(b"EROFS") == 4
    assert result.stdout.count(b"ENOSPC") == 3
    assert "Read-only file system" in (result.error or "")
    assert data.read_text() == "x\n1\n" and sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


async def test_a_fork_bomb_hits_the_pids_limit(sandbox_runner, runner_image):
    code = """
        import os, time
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError:
            print("forked", children)
            raise
    """
    result = await sandbox_runner.run(probe(runner_image, code, pids_limit=32))
    assert not result.ok and not result.timed_out
    assert "Resource temporarily unavailable" in (result.error or "")
    forked = int(result.stdout.split()[1])
    assert 0 < forked < 32


async def test_a_memory_bomb_is_oom_killed(sandbox_runner, runner_image):
    code = """
        hog = []
        while True:
            hog.append(b"x" * (16 << 20))
    """
    result = await sandbox_runner.run(probe(runner_image, code, memory_bytes=128 * MiB))
    assert result.oom_killed and not result.ok
    assert result.error == "ran out of memory: killed at the 128 MiB limit (sandbox.memory)"


async def test_a_long_sleep_is_killed_at_the_timeout(docker_client, local_runtime, runner_image):
    runner, labels = labelled_runner(docker_client, local_runtime)
    result = await runner.run(probe(runner_image, "import time; time.sleep(600)", timeout_s=5))
    assert result.timed_out and not result.ok
    assert result.error == "timed out after 5 s (sandbox.timeout); the container was killed"
    assert 5 <= result.duration_s < 15
    assert leftovers(docker_client, labels) == []


async def test_concurrent_timeouts_fire_on_time(docker_client, local_runtime, runner_image):
    """Each run blocks on its wait and log streams; those must not starve the shared thread pool."""
    runner, labels = labelled_runner(docker_client, local_runtime)
    sleeper = probe(runner_image, "import time; time.sleep(600)", timeout_s=3)
    results = await asyncio.wait_for(asyncio.gather(*(runner.run(sleeper) for _ in range(4))), 60)
    assert all(r.timed_out for r in results)
    assert max(r.duration_s for r in results) < 20
    assert leftovers(docker_client, labels) == []


async def test_a_stdout_flood_is_capped_and_stopped(sandbox_runner, runner_image):
    code = """
        import sys
        chunk = b"x" * (1 << 20)
        for _ in range(100):
            sys.stdout.buffer.write(chunk)
        open("/out/result.json", "w").write("{}")
    """
    result = await sandbox_runner.run(probe(runner_image, code, output_cap_bytes=256 * 1024))
    assert result.stdout_truncated and len(result.stdout) == 256 * 1024
    assert set(result.stdout) == {ord("x")}
    assert result.error == "stdout exceeded the 262144 bytes output cap; the run was stopped"
    assert result.result is None


async def test_a_result_symlinked_to_a_host_file_is_refused(sandbox_runner, runner_image, tmp_path):
    secret = tmp_path / "host-secret.json"
    secret.write_text('{"leaked": true}')
    code = f"import os; os.symlink({str(secret)!r}, '/out/result.json')"
    result = await sandbox_runner.run(probe(runner_image, code))
    assert result.exit_code == 0 and result.result is None
    assert result.error == "refused /out/result.json: it is a symbolic link"
    assert secret.read_text() == '{"leaked": true}'


@pytest.mark.parametrize(
    ("weakening", "complaint"),
    [
        ({"read_only": False}, "root filesystem is not read-only"),
        ({"cap_drop": None}, "capabilities are not all dropped"),
        ({"pids_limit": None}, "pids limit is"),
        ({"user": "0:0"}, "user is '0:0'"),
    ],
)
async def test_a_runner_missing_a_control_refuses_to_start(
    docker_client, local_runtime, runner_image, weakening, complaint
):
    runner, labels = labelled_runner(docker_client, local_runtime, **weakening)
    code = "open('/out/result.json', 'w').write('{}'); print('ran')"
    result = await runner.run(probe(runner_image, code))
    assert result.error is not None and result.error.startswith("refused to start the sandbox: ")
    assert complaint in result.error
    assert result.exit_code is None and result.stdout == b"" and result.result is None
    assert leftovers(docker_client, labels) == []


async def test_the_hardened_container_passes_its_own_inspection(docker_client, local_runtime, runner_image, tmp_path):
    from bot.sandbox.docker_engine import create_kwargs

    spec = probe(runner_image, "pass")
    container = docker_client.containers.create(**create_kwargs(spec, local_runtime.mounts(), tmp_path))
    try:
        assert missing_controls(container.attrs, spec, tmp_path) == []
        assert missing_controls(container.attrs, probe(runner_image, "pass", pids_limit=65), tmp_path) == [
            "pids limit is 64, not 65"
        ]
    finally:
        container.remove(force=True)


async def test_a_cancelled_run_still_removes_its_container(docker_client, local_runtime, runner_image):
    runner, labels = labelled_runner(docker_client, local_runtime)
    task = asyncio.create_task(runner.run(probe(runner_image, "import time; time.sleep(600)")))
    for _ in range(100):
        await asyncio.sleep(0.1)
        if leftovers(docker_client, labels):
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the shielded clean-up runs to the end in its thread
    for _ in range(50):
        if not leftovers(docker_client, labels):
            break
        await asyncio.sleep(0.1)
    assert leftovers(docker_client, labels) == []


async def test_an_input_the_sandbox_user_cannot_read_is_reported_before_any_container(
    sandbox_runner, runner_image, tmp_path
):
    tmp_path.chmod(0o700)
    result = await sandbox_runner.run(probe(runner_image, "pass", inputs=(Mount(tmp_path, "/inputs"),)))
    assert result.error == (f"input {tmp_path} (mode 700) is not readable by the sandbox user; make it world-readable")


async def test_a_missing_image_is_a_clear_error(sandbox_runner):
    result = await sandbox_runner.run(probe("modelship-runner:does-not-exist", "pass"))
    assert result.error is not None
    assert "modelship-runner:does-not-exist" in result.error


async def test_an_unreachable_engine_is_a_clear_error(tmp_path):
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/absent.sock", version="1.41")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    result = await DockerEngineRunner(client, output_root=outputs).run(SandboxSpec(image="img", argv=("true",)))
    assert result.error is not None and result.error.startswith("container engine unreachable")
    assert list(outputs.iterdir()) == []  # the run's output directory is gone too


# read_result on its own: what the container can leave in /out, without a container.


def test_result_over_the_cap_is_refused(tmp_path: Path):
    (tmp_path / "result.json").write_text(json.dumps({"x": "y" * 100}))
    assert read_result(tmp_path, 50) == (None, "refused /out/result.json: 109 bytes is over the 50 bytes cap")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"auc": NaN}', "NaN is not JSON"),
        ('{"a": 1, "a": 2}', "duplicate keys"),
        ("[1, 2]", "the top level must be a JSON object"),
        ("{'a': 1}", "not valid JSON"),
        (b'{"a": "\xff"}', "not valid JSON"),
    ],
)
def test_malformed_results_are_refused(tmp_path: Path, content: str | bytes, reason: str):
    path = tmp_path / "result.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result, error = read_result(tmp_path, 1024)
    assert result is None and error is not None and reason in error


def test_a_fifo_result_is_refused_without_blocking(tmp_path: Path):
    import os

    os.mkfifo(tmp_path / "result.json")
    assert read_result(tmp_path, 1024) == (None, "refused /out/result.json: not a regular file")


def test_no_result_is_reported(tmp_path: Path):
    assert read_result(tmp_path, 1024) == (None, "the command wrote no /out/result.json")


# Issue 11: namespaces, a capped /out, capped artifacts, a bounded result document.


async def test_the_sandbox_cannot_create_namespaces(sandbox_runner, runner_image):
    code = """
        import ctypes, json, os, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def call(fn, *args):
            return "ok" if fn(*args) == 0 else os.strerror(ctypes.get_errno())
        result = {
            "unshare_user": call(libc.unshare, 0x10000000),  # CLONE_NEWUSER
            "unshare_mount": call(libc.unshare, 0x00020000),  # CLONE_NEWNS
            "setns": call(libc.setns, 0, 0),
            # raw clone(CLONE_NEWUSER | SIGCHLD): syscall 56 on x86_64
            "clone_user": call(libc.syscall, 56, 0x10000000 | 17, 0, 0, 0, 0),
        }
        pid = os.fork()  # ordinary processes and threads still work
        if pid == 0:
            os._exit(0)
        result["fork"] = os.waitpid(pid, 0)[1]
        box = []
        thread = threading.Thread(target=lambda: box.append(1)); thread.start(); thread.join()
        result["thread"] = box
        result["mountinfo"] = [line for line in open("/proc/self/mountinfo") if " /out " in line]
        json.dump(result, open("/out/result.json", "w"))
    """
    result = await sandbox_runner.run(probe(runner_image, code))
    assert result.ok, (result.error, result.stderr.decode())
    doc = result.result
    assert doc is not None
    assert doc["unshare_user"] == "Operation not permitted", doc
    assert doc["unshare_mount"] == "Operation not permitted"
    assert doc["setns"] == "Operation not permitted"
    assert doc["clone_user"] != "ok"
    assert doc["fork"] == 0 and doc["thread"] == [1]
    # /out is the runner's own tmpfs: its mountinfo line names no host directory.
    (out_line,) = doc["mountinfo"]
    assert out_line.split()[3] == "/" and "modelship-out-" not in out_line, out_line


async def test_writing_3_gib_to_out_fails_fast_at_the_cap_and_the_host_keeps_nothing(
    docker_client, local_runtime, runner_image, tmp_path
):
    from bot.sandbox.docker_engine import OutputLimits

    outputs = tmp_path / "outputs"
    outputs.mkdir()
    runner = DockerEngineRunner(
        docker_client,
        runtime_mounts=local_runtime.mounts(),
        output_root=outputs,
        limits=OutputLimits(out_bytes=64 * MiB, out_files=100),
    )
    code = """
        import os, sys
        chunk = b"x" * (1 << 20)
        written = 0
        try:
            with open("/out/fill", "wb") as fh:
                for _ in range(3 * 1024):
                    fh.write(chunk)
                    written += 1
        except OSError as exc:
            sys.exit(f"stopped after {written} MiB: {exc.strerror}")
    """
    before = shutil.disk_usage(tmp_path).used
    began = time.monotonic()
    result = await runner.run(probe(runner_image, code, memory_bytes=512 * MiB))
    elapsed = time.monotonic() - began
    assert result.error is not None and "No space left on device" in result.error, result.error
    stopped_at = int(result.error.split("stopped after ")[1].split()[0])
    assert stopped_at <= 64
    assert elapsed < 30
    assert list(outputs.iterdir()) == []  # unmounted and removed
    assert shutil.disk_usage(tmp_path).used - before < 32 * MiB


async def test_many_files_in_out_stop_at_the_inode_cap(docker_client, local_runtime, runner_image, tmp_path):
    from bot.sandbox.docker_engine import OutputLimits

    runner = DockerEngineRunner(
        docker_client, runtime_mounts=local_runtime.mounts(), limits=OutputLimits(out_bytes=64 * MiB, out_files=50)
    )
    code = """
        import sys
        for n in range(10_000):
            try:
                open(f"/out/f{n}", "w").close()
            except OSError as exc:
                sys.exit(f"stopped after {n} files: {exc.strerror}")
    """
    result = await runner.run(probe(runner_image, code))
    assert result.error is not None and "stopped after" in result.error and "No space left" in result.error
    assert int(result.error.split("stopped after ")[1].split()[0]) < 50


async def test_kept_files_stop_at_the_count_and_size_caps(docker_client, local_runtime, runner_image, tmp_path):
    from bot.sandbox.docker_engine import OutputLimits

    runner = DockerEngineRunner(
        docker_client,
        runtime_mounts=local_runtime.mounts(),
        limits=OutputLimits(out_bytes=256 * MiB, keep_bytes=10 * MiB, keep_files=3),
    )
    code = """
        import json, os
        os.makedirs("/out/variants/m")
        for n in range(40):
            open(f"/out/variants/m/v{n:02}.onnx", "wb").write(b"x" * (3 << 20))
        open("/out/variants/m/huge.onnx", "wb").write(b"x" * (20 << 20))
        json.dump({}, open("/out/result.json", "w"))
    """
    keep_to = tmp_path / "kept"
    spec = replace(probe(runner_image, code, memory_bytes=512 * MiB), keep="variants", keep_to=keep_to)
    result = await runner.run(spec)
    assert result.ok, result.error
    kept = sorted(p.relative_to(keep_to).as_posix() for p in keep_to.rglob("*") if p.is_file())
    assert kept == ["m/v00.onnx", "m/v01.onnx", "m/v02.onnx"]  # 3 files of 3 MiB; huge one skipped
    assert sum(p.stat().st_size for p in keep_to.rglob("*") if p.is_file()) <= 10 * MiB


async def test_a_deeply_nested_result_is_a_sandbox_error(sandbox_runner, runner_image):
    code = "open('/out/result.json', 'w').write('{\"a\": ' + '[' * 100000 + ']' * 100000 + '}')"
    result = await sandbox_runner.run(probe(runner_image, code))
    assert result.exit_code == 0 and result.result is None
    assert result.error == "refused /out/result.json: nested deeper than 32 levels"


def test_a_nested_result_is_refused_without_a_recursion_error(tmp_path: Path):
    (tmp_path / "result.json").write_text('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}")
    assert read_result(tmp_path, 64 * MiB) == (None, "refused /out/result.json: nested deeper than 32 levels")
    (tmp_path / "result.json").write_text('{"a": ' + "[" * 40 + "]" * 40 + "}")  # parses, still too deep
    assert read_result(tmp_path, 64 * MiB) == (None, "refused /out/result.json: nested deeper than 32 levels")
    (tmp_path / "result.json").write_text('{"a": {"b": [1, {"c": 2}]}}')
    assert read_result(tmp_path, 1024) == ({"a": {"b": [1, {"c": 2}]}}, None)
