"""Sandbox benchmark: what one hardened run costs, against a bare container and no container at all.

Run: `.venv/bin/python bench/sandbox.py [--runs 5] [--url unix:///…/podman.sock]`.
Rows:
  - host process: `python -c pass` as a plain subprocess (no container; the floor);
  - bare container: same image and runtime mounts, no hardening, no inspection, logs read at the end;
  - hardened: DockerEngineRunner (create, inspect and refuse-if-weak, start, capped log streaming,
    result read-back, removal) for `python -c pass`, and for a run importing the ML stack.
`start` is create + inspect + start; `total` is the whole run, removal excluded for the bare row.
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
