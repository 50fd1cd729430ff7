"""One sandboxed review run of an exported tree, shared by the bot's review job and the local CLI.

The bot process only moves bytes: it writes the spec `pipelines.review` reads, mounts the tree
read-only, and turns the run's result (or its failure) into the documents the comparison takes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.repoconfig import ModelSpec, RepoConfig
from bot.review.compare import ReviewComparison, compare_review, results_by_model
from bot.sandbox.runner import (
    INPUTS_DIR,
    OUTPUT_DIR,
    RESULT_FILE,
    SCRATCH_DIR,
    Mount,
    SandboxResult,
    SandboxRunner,
    SandboxSpec,
)

log = logging.getLogger(__name__)


def make_readable(root: Path) -> None:
    """The sandbox runs as nobody: give it read access to the exported trees (never write)."""
    for dirpath, _dirs, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                os.chmod(path, 0o644)


def selected_models(config: RepoConfig, only: str | None) -> list[ModelSpec]:
    return [m for m in config.models if not only or m.name == only]


def pipeline_spec(config: RepoConfig, repo_dir: str, only: str | None) -> dict[str, Any]:
    """The spec `pipelines.review` reads inside the sandbox (pipelines.schema.OptimizeSpec)."""
    models = []
    for m in selected_models(config, only):
        gates = {
            metric: {k: v for k, v in gate.model_dump().items() if v is not None}
            for metric, gate in m.gates.items()
            if metric != "size_mb"  # derived by the bot from model.size_bytes
        }
        models.append(
            {
                "name": m.name,
                "path": m.path,
                "task": m.task,
                "dataset": {"path": m.dataset.path, "target": m.dataset.target},
                "allow_pickle": m.allow_pickle,
                "train": {"command": m.train.command} if m.train else None,
                "metrics": list(m.metrics),
                "gates": gates,
            }
        )
    opt = config.optimize
    return {
        "repo_dir": repo_dir,
        "models": models,
        "latency": {"repetitions": 200},
        "optimize": {
            "onnx": opt.onnx,
            "quantize": opt.quantize,
            "parity_tolerance": opt.parity_tolerance,
            "select": opt.select,
        },
    }


def review_sandbox_spec(config: RepoConfig, tree: Path, only: str | None, *, optimize: bool, image: str) -> SandboxSpec:
    """Write the pipeline spec next to ``tree`` and describe the hardened run that evaluates it."""
    spec_path = tree.parent / f"spec-{tree.name}.json"
    spec_path.write_text(json.dumps(pipeline_spec(config, f"{INPUTS_DIR}/repo", only)))
    spec_path.chmod(0o644)
    argv = [
        "python",
        "-m",
        "pipelines.review",
        "--spec",
        f"{INPUTS_DIR}/spec.json",
        "--out",
        f"{OUTPUT_DIR}/{RESULT_FILE}",
        "--scratch",
        SCRATCH_DIR,
    ]
    if not optimize:
        argv.append("--no-optimize")
    return SandboxSpec(
        image=config.sandbox.image or image,
        argv=tuple(argv),
        inputs=(Mount(tree, f"{INPUTS_DIR}/repo"), Mount(spec_path, f"{INPUTS_DIR}/spec.json")),
        cpus=config.sandbox.cpus,
        memory_bytes=int(config.sandbox.memory),
        timeout_s=float(config.sandbox.timeout),
        env={"HOME": SCRATCH_DIR, "TMPDIR": SCRATCH_DIR, "OMP_NUM_THREADS": "1"},
    )


def evaluation_of(run: SandboxResult) -> dict[str, Any]:
    """The evaluation report of a run, or a report-level error that says why the run failed."""
    if run.ok and isinstance((run.result or {}).get("evaluation"), dict):
        return dict(run.result["evaluation"])  # type: ignore[index]
    return {
        "schema_version": 1,
        "models": [],
        "error": {"kind": "sandbox_failed", "message": run.error or "the sandbox returned no evaluation"},
    }


def optimization_of(run: SandboxResult) -> dict[str, Any] | None:
    """The optimization report of a run that optimized, else None."""
    report = (run.result or {}).get("optimization") if run.ok else None
    return dict(report) if isinstance(report, dict) else None


def compare_runs(
    config: RepoConfig, only: str | None, base_run: SandboxResult, head_run: SandboxResult
) -> ReviewComparison:
    """Base against head for the selected models (CPU-bound: the paired bootstrap)."""
    policies: Sequence[ModelSpec] = selected_models(config, only)
    names = [m.name for m in policies]
    base = results_by_model(evaluation_of(base_run), names)
    head = results_by_model(evaluation_of(head_run), names)
    return compare_review(policies, base, head)


async def run_side(runner: SandboxRunner, spec: SandboxSpec, *, side: str) -> SandboxResult:
    """Run one side; the timing line is what bench/review.py reads to split a review into phases."""
    run = await runner.run(spec)
    log.info(
        "review sandbox %s: %s in %.3f s (container start %.3f s)",
        side,
        "ok" if run.ok else "failed",
        run.duration_s,
        run.container_start_s,
        extra={"side": side, "duration_s": run.duration_s, "container_start_s": run.container_start_s},
    )
    return run
