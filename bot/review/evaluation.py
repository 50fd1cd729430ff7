"""One sandboxed review run of an exported tree, shared by the bot's review job and the local CLI.

The bot process only moves bytes: it writes the spec `pipelines.review` reads, mounts the tree
read-only, and turns the run's result (or its failure) into the documents the comparison takes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bot.config.repo import ModelSpec, RepoConfig
from bot.review.compare import ReviewComparison, compare_review
from bot.review.parse import results_by_model
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
from contract import schema
from contract.schema import GateSpec, OptimizeSpec

log = logging.getLogger(__name__)
GiB = 1024**3


@dataclass(frozen=True)
class SandboxMaxima:
    """The operator's ceiling on what `.modelship.yml` may ask for (settings `MODELSHIP_SANDBOX_MAX_*`)."""

    cpus: float = 2.0
    memory_bytes: int = 4 * GiB
    timeout_s: float = 1800.0


@dataclass(frozen=True)
class SandboxLimits:
    """The limits a review runs under, and a note for each one the server lowered."""

    cpus: float
    memory_bytes: int
    timeout_s: float
    notes: tuple[str, ...] = ()


def _bytes(n: float) -> str:
    return f"{n / GiB:g} GiB" if n >= GiB else f"{n / 1024**2:g} MiB"


def sandbox_limits(config: RepoConfig, maxima: SandboxMaxima | None = None) -> SandboxLimits:
    """Clamp the repository's `sandbox` limits to the operator's maxima (pure)."""
    maxima = maxima or SandboxMaxima()
    wanted = config.sandbox
    notes = []
    cpus, memory, timeout = float(wanted.cpus), int(wanted.memory), float(wanted.timeout)
    if cpus > maxima.cpus:
        notes.append(
            f"`sandbox.cpus: {cpus:g}` was lowered to {maxima.cpus:g}, this server's maximum "
            "(MODELSHIP_SANDBOX_MAX_CPUS)"
        )
        cpus = maxima.cpus
    if memory > maxima.memory_bytes:
        notes.append(
            f"`sandbox.memory: {_bytes(memory)}` was lowered to {_bytes(maxima.memory_bytes)}, this server's maximum "
            "(MODELSHIP_SANDBOX_MAX_MEMORY_BYTES)"
        )
        memory = maxima.memory_bytes
    if timeout > maxima.timeout_s:
        notes.append(
            f"`sandbox.timeout: {timeout:g}s` was lowered to {maxima.timeout_s:g}s, this server's maximum "
            "(MODELSHIP_SANDBOX_MAX_TIMEOUT_SECONDS)"
        )
        timeout = maxima.timeout_s
    return SandboxLimits(cpus, memory, timeout, tuple(notes))


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


def pipeline_spec(config: RepoConfig, repo_dir: str, only: str | None) -> OptimizeSpec:
    """The spec `pipelines.review` reads inside the sandbox: the wire schema both sides import."""
    models: list[schema.ModelSpec] = []
    for m in selected_models(config, only):
        gates = {
            metric: cast(GateSpec, {k: v for k, v in gate.model_dump().items() if v is not None})
            for metric, gate in m.gates.items()
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


def review_sandbox_spec(
    config: RepoConfig,
    tree: Path,
    only: str | None,
    *,
    optimize: bool,
    image: str,
    limits: SandboxLimits | None = None,
) -> SandboxSpec:
    """Write the pipeline spec next to ``tree`` and describe the hardened run that evaluates it."""
    limits = limits or sandbox_limits(config)
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
        cpus=limits.cpus,
        memory_bytes=limits.memory_bytes,
        timeout_s=limits.timeout_s,
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
