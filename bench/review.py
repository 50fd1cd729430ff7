"""Review benchmark: `pull_request` delivery -> completed review comment, through the real bot.

Starts devhub (GitHub simulator, real git over smart HTTP), the real bot in-process (durable queue,
review job) and the real sandbox (podman, hardened runner, local runner image), pushes the sample
repository (random forest, 100 trees, breast-cancer data) and a PR that retrains it (20 trees,
depth 3), and times the review from the `pull_request` delivery to the sticky comment's final edit.
Phases come from timestamps only, so nothing in the bot behaves differently:
  - before the sandbox: webhook intake, queue, GitHub reads, check run + "evaluating" comment, git fetch
    (delivery -> first container started: the `bot.review.evaluation` log line minus its duration);
  - sandbox start: create + inspect + start of the container (`container_start_s`, slower side);
  - evaluation compute: in the container, imports + evaluate (+ optimize on the head side);
  - after the sandbox: comparison (paired bootstrap), render, comment + check run (GitHub calls).
GitHub requests are counted from devhub's request log (`hub.faults.log`); the container engine's own
CPU time during the review is read from /proc (podman's /wait once spun a core for a whole run).
Then, in the same run, the floor: the same evaluation in this process with no sandbox (imports once,
base evaluate, head evaluate, head optimize — the conversion + benchmark share of issue 4).
The floor runs in a fresh interpreter each time, so it pays the imports as a container does.
Run: `.venv/bin/python bench/review.py [--runs 3] [--trees 20 --depth 3]`.
Targets: end to end <= floor + 3 s (issue 3); optimization adds <= 5 s (issue 4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.repo import parse_repo_config  # noqa: E402
from bot.review.evaluation import pipeline_spec  # noqa: E402
from bot.sandbox.docker_engine import connect  # noqa: E402
from bot.sandbox.local_image import DEFAULT_TAG, LocalRuntime, build_image  # noqa: E402
from devkit.demo import sample_files  # noqa: E402
from devkit.devhub import start  # noqa: E402
from devkit.harness import WEBHOOK_SECRET, bot_running  # noqa: E402
from devkit.processes import podman_cpu_seconds, podman_url  # noqa: E402

SAMPLE = ROOT / "examples" / "sample-model-repo"
REPO = "acme/churn-model"


def engine_cpu_s() -> float | None:
    """CPU seconds the podman service has used so far (None when it is not ours to read)."""
    try:
        return podman_cpu_seconds()
    except (OSError, IndexError, ValueError):
        return None


class SandboxLog(logging.Handler):
    """Collects the per-side timing line the review logs after each sandbox run."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.runs: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = record.__dict__
        if "duration_s" in fields:
            self.runs.append(
                {
                    "side": fields["side"],
                    "end": record.created,
                    "duration_s": fields["duration_s"],
                    "container_start_s": fields["container_start_s"],
                }
            )


def retrain(work: Path, trees: int, depth: int) -> Path:
    head = work / "head"
    shutil.copytree(SAMPLE, head, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "train.py", "--trees", str(trees), "--depth", str(depth)],
        cwd=head,
        check=True,
        capture_output=True,
    )
    return head


async def through_the_bot(work: Path, head: Path, url: str) -> dict[str, Any]:
    sandbox_log = SandboxLog()
    logger = logging.getLogger("bot.review.evaluation")
    logger.addHandler(sandbox_log)
    logger.setLevel(logging.INFO)
    devhub = await start(work / "devhub", webhook_secret=WEBHOOK_SECRET)
    try:
        async with bot_running(
            devhub, work, container_engine_url=url, sandbox_mount_runtime=True, sandbox_image=DEFAULT_TAG
        ) as bot:
            hub = devhub.hub
            await hub.create_repo(REPO, sample_files(SAMPLE))
            await hub.install("acme", [REPO])
            hub.set_permission(REPO, "alice", "write")
            await hub.push(REPO, "retrain", {"models/churn.skops": (head / "models" / "churn.skops").read_bytes()})
            hub.faults.log.clear()
            engine_before = engine_cpu_s()
            number = await hub.open_pr(REPO, "retrain", title="Retrain with fewer trees")
            delivery = next(d for d in reversed(hub.sender.deliveries) if d.event == "pull_request")
            delivered = delivery.attempts[0].at
            await bot.idle(timeout=900)
            ours = [c for c in hub.comments.values() if c.repo == REPO and c.issue_number == number]
            comment = next(c for c in ours if "```mermaid" in c.body)
            check = next(r for r in hub.check_runs.values() if r.name == "modelship/review")
            assert check.status == "completed", check
            requests = list(hub.faults.log)
            engine_after = engine_cpu_s()
    finally:
        await devhub.stop()
        logger.removeHandler(sandbox_log)
    runs = sandbox_log.runs
    assert len(runs) == 2, runs
    first_start = min(r["end"] - r["duration_s"] for r in runs)
    last_end = max(r["end"] for r in runs)
    done = comment.updated_at
    return {
        "total": done - delivered,
        "before": first_start - delivered,
        "sandbox_start": max(r["container_start_s"] for r in runs),
        "compute": max(r["duration_s"] - r["container_start_s"] for r in runs),
        "sandbox_wall": last_end - first_start,
        "after": done - last_end,
        "runs": {r["side"]: r for r in runs},
        "github_before": sum(1 for r in requests if r.at < first_start),
        "github_after": sum(1 for r in requests if r.at >= last_end),
        "engine_cpu": None if engine_before is None or engine_after is None else engine_after - engine_before,
    }


def in_process(work: Path, head: Path) -> dict[str, float]:
    """The floor: the same spec evaluated here, no container, libraries imported once."""
    began = time.perf_counter()
    from pipelines.evaluate import evaluate
    from pipelines.optimize import optimize

    imported = time.perf_counter()
    config = parse_repo_config((SAMPLE / ".modelship.yml").read_text())
    scratch = Path(tempfile.mkdtemp(dir=work))
    timings = {"imports": imported - began}
    for name, tree in (("base", SAMPLE), ("head", head)):
        spec: Any = pipeline_spec(config, str(tree), None)
        t = time.perf_counter()
        evaluate(spec, scratch)
        timings[f"{name}_evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    optimize(spec, work / "variants", scratch)
    timings["head_optimize"] = time.perf_counter() - t
    return timings


def floor_in_fresh_process(work: Path, head: Path) -> dict[str, float]:
    """The floor in a new interpreter, so that every run pays the imports the way a container does."""
    out = subprocess.run(
        [sys.executable, __file__, "--floor", str(work), str(head)], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def one_run(url: str, trees: int, depth: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        work = Path(tmp)
        head = retrain(work, trees, depth)
        bot = asyncio.run(through_the_bot(work, head, url))
        floor = floor_in_fresh_process(work, head)
    base_run, head_run = bot["runs"]["base"], bot["runs"]["head"]
    sequential = floor["imports"] + floor["base_evaluate"] + floor["head_evaluate"] + floor["head_optimize"]
    # The bot runs base and head side by side; its critical path is the slower of the two sides.
    critical = floor["imports"] + max(floor["base_evaluate"], floor["head_evaluate"] + floor["head_optimize"])
    return [
        ("bot: delivery -> completed comment", bot["total"]),
        (f"  before sandbox (intake, queue, {bot['github_before']} GitHub calls, git fetch)", bot["before"]),
        ("  sandbox start (create+inspect+start, slower side)", bot["sandbox_start"]),
        ("  evaluation compute in sandbox (slower side)", bot["compute"]),
        ("    base side: whole run", base_run["duration_s"]),
        ("    head side: whole run (evaluate + optimize)", head_run["duration_s"]),
        (f"  after sandbox (compare, render, {bot['github_after']} GitHub calls)", bot["after"]),
        ("  container engine CPU during the review", bot["engine_cpu"] if bot["engine_cpu"] is not None else NAN),
        ("floor: in-process, no sandbox, imports", floor["imports"]),
        ("floor: base evaluate", floor["base_evaluate"]),
        ("floor: head evaluate", floor["head_evaluate"]),
        ("floor: head optimize (conversion + benchmark)", floor["head_optimize"]),
        ("floor: critical path (imports + max(base, head+optimize))", critical),
        ("floor: sequential (imports + all three)", sequential),
        (GAP, bot["total"] - critical),
    ]


GAP = "end to end - floor (critical path); target <= 3 s"
NAN = float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", type=int, default=20)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the table shows each and the median")
    parser.add_argument("--url", help="Docker Engine API URL (default: the shared podman service, started if needed)")
    parser.add_argument("--floor", nargs=2, metavar=("WORK", "HEAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor:
        print(json.dumps(in_process(Path(args.floor[0]), Path(args.floor[1]))))
        return 0
    url = args.url or podman_url()
    build_image(connect(url).images, LocalRuntime.discover(ROOT / ".venv", ROOT), DEFAULT_TAG)
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
        runs.append(one_run(url, args.trees, args.depth))
    names = [name for name, _ in runs[0]]
    width = max(len(name) for name in names)
    header = "".join(f"{f'run {i + 1}':>8}" for i in range(len(runs)))
    print(f"{'seconds':<{width}}{header}{'median':>8}")
    for row, name in enumerate(names):
        values = [run[row][1] for run in runs]
        cells = "".join(f"{v:8.2f}" for v in values)
        print(f"{name:<{width}}{cells}{statistics.median(values):8.2f}")
    print(f"load average after the runs (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("optimization share (floor: head optimize) target <= 5 s (issue 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
