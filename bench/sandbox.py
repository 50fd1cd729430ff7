"""Sandbox benchmark: what one hardened run costs, against a bare container and no container at all.

Run: `.venv/bin/python bench/sandbox.py [--runs 5] [--url unix:///…/podman.sock] [--kubernetes]`.
Rows:
  - host process: `python -c pass` as a plain subprocess (no container; the floor);
  - bare container: same image and runtime mounts, no hardening, no inspection, logs read at the end;
  - hardened: DockerEngineRunner (create, inspect and refuse-if-weak, start, capped log streaming,
    result read-back, removal) for `python -c pass`, and for a run importing the ML stack.
`start` is create + inspect + start; `total` is the whole run, removal excluded for the bare row.
With `--kubernetes`, the same run on both backends in one go, on the product image (the Kubernetes
backend's runner image): DockerEngineRunner vs KubernetesJobRunner against the dev kit's API stand-in
(devkit.kubeapi, whose kubelet runs pods on the same podman), plus the stand-in's own cost alone: a
bare Job (busybox `true`, no inputs, no frames) from create to Complete.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.sandbox.docker_engine import DockerEngineRunner, connect, wait_exited  # noqa: E402
from bot.sandbox.local_image import DEFAULT_TAG, LocalRuntime, build_image  # noqa: E402
from bot.sandbox.runner import SandboxSpec  # noqa: E402
from devkit.processes import podman_url  # noqa: E402

WRITE_RESULT = "import json; json.dump({'ok': True}, open('/out/result.json', 'w'))"
IMPORT_STACK = "import sklearn, onnxruntime, pandas, numpy; " + WRITE_RESULT


def row(name: str, totals: list[float], starts: list[float] | None = None) -> str:
    def cell(values: list[float] | None) -> str:
        if not values:
            return f"{'-':>9} {'-':>9}"
        return f"{statistics.median(values):9.3f} {max(values):9.3f}"

    return f"{name:<34} {len(totals):>4} {cell(starts)} {cell(totals)}"


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--url", help="Docker Engine API URL (default: the shared podman service, started if needed)")
    parser.add_argument("--kubernetes", action="store_true", help="also compare the Kubernetes Job backend (stand-in)")
    args = parser.parse_args()
    url = args.url or podman_url()
    client = connect(url)
    runtime = LocalRuntime.discover(REPO / ".venv", REPO)
    build_image(client.images, runtime, DEFAULT_TAG)
    runner = DockerEngineRunner(client, runtime_mounts=runtime.mounts())
    mounts = [f"{m.host_path}:{m.container_path}:ro" for m in runtime.mounts()]

    host = [timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)) for _ in range(args.runs)]

    def bare() -> float:
        began = time.perf_counter()
        container = client.containers.run(DEFAULT_TAG, ["python", "-c", "pass"], volumes=mounts, detach=True)
        wait_exited(container)  # the runner's own exit detection, so only the hardening differs
        container.logs()
        elapsed = time.perf_counter() - began
        container.remove(force=True)
        return elapsed

    bare_runs = [bare() for _ in range(args.runs)]

    async def hardened(code: str, runs: int) -> tuple[list[float], list[float]]:
        starts, totals = [], []
        for _ in range(runs):
            result = await runner.run(SandboxSpec(image=DEFAULT_TAG, argv=("python", "-c", code)))
            assert result.ok, result.error
            starts.append(result.container_start_s)
            totals.append(result.duration_s)
        return starts, totals

    pass_starts, pass_totals = asyncio.run(hardened(WRITE_RESULT, args.runs))
    stack_starts, stack_totals = asyncio.run(hardened(IMPORT_STACK, max(1, args.runs // 2)))
    client.close()

    print(f"{'scenario':<34} {'runs':>4} {'start p50':>9} {'max':>9} {'total p50':>9} {'max':>9}   (seconds)")
    print(row("host process: python -c pass", host))
    print(row("bare container: python -c pass", bare_runs))
    print(row("hardened: python -c pass", pass_totals, pass_starts))
    print(row("hardened: import ML stack", stack_totals, stack_starts))
    overhead = statistics.median(pass_totals) - statistics.median(host)
    print(f"\nhardened sandbox overhead over a host process: {overhead:.3f} s per run (median)")
    if args.kubernetes:
        kubernetes_rows(url, args.runs)
    return 0


def kubernetes_rows(url: str, runs: int) -> None:
    """Docker vs Kubernetes backend on the product image, and the stand-in's own Job cost."""
    import secrets
    import tempfile

    import docker

    from bot.artifacts.registry import OciRegistry
    from bot.sandbox.kube_jobs import KubeSandboxSettings
    from bot.sandbox.kube_runner import KubernetesJobRunner
    from bot.sandbox.kube_runner import connect as kube_connect
    from bot.sandbox.runner import Mount
    from devkit.kubeapi import image as busybox
    from devkit.kubeapi import running_in_thread
    from devkit.processes import product_image, registry_host

    image, registry = product_image(), registry_host()
    client = docker.DockerClient(base_url=url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    (tmp / "spec.json").write_text("{}")
    (tmp / "spec.json").chmod(0o644)
    spec = SandboxSpec(
        image=image, argv=("python", "-c", WRITE_RESULT), inputs=(Mount(tmp / "spec.json", "/inputs/spec.json"),)
    )
    with running_in_thread(docker_client=client, workdir=tmp / "kubeapi") as api:
        clients = kube_connect(api.write_kubeconfig(tmp / "kubeconfig"))
        namespace = f"bench-{secrets.token_hex(3)}"
        clients.core.create_namespace({"metadata": {"name": namespace}})
        kube = KubernetesJobRunner(
            clients,
            OciRegistry(registry, insecure=True),
            inputs_base=image,
            owner="bench",
            settings=KubeSandboxSettings(namespace=namespace),
        )
        docker_runner = DockerEngineRunner(connect(url))

        async def measure(runner: object) -> tuple[list[float], list[float]]:
            starts, totals = [], []
            for _ in range(runs):
                result = await runner.run(spec)  # type: ignore[attr-defined]
                assert result.ok, result.error
                starts.append(result.container_start_s)
                totals.append(result.duration_s)
            return starts, totals

        docker_starts, docker_totals = asyncio.run(measure(docker_runner))
        kube_starts, kube_totals = asyncio.run(measure(kube))
        tiny = busybox.build(client)
        bare = []
        for i in range(runs):
            body = {
                "metadata": {"name": f"bare-{i}"},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": tiny, "command": ["true"]}],
                        }
                    },
                },
            }
            began = time.perf_counter()
            clients.batch.create_namespaced_job(namespace, body)
            while not (clients.batch.read_namespaced_job(f"bare-{i}", namespace).status.succeeded or 0):
                time.sleep(0.05)
            bare.append(time.perf_counter() - began)
        clients.core.delete_namespace(namespace)
        clients.close()
    print(f"\n{'backend (product image)':<34} {'runs':>4} {'start p50':>9} {'max':>9} {'total p50':>9} {'max':>9}")
    print(row("docker: python -c pass", docker_totals, docker_starts))
    print(row("kubernetes (stand-in): same", kube_totals, kube_starts))
    print(row("stand-in alone: bare Job `true`", bare))
    print(
        "\nkubernetes minus docker: "
        f"{statistics.median(kube_totals) - statistics.median(docker_totals):.3f} s per run (median), "
        f"of which the stand-in's own Job cost is about {statistics.median(bare):.3f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
