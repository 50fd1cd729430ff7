"""Evaluate each configured model on its dataset: quality metrics, latency, fingerprints.

    python -m pipelines.evaluate --spec SPEC.json --out OUT.json [--scratch DIR]

Writes one JSON document (contract.schema.EvaluationReport). A model that fails gets an error row
with a specific kind and message; the others are still evaluated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract.metrics import size_mb
from contract.schema import (
    SCHEMA_VERSION,
    ConfusionMatrix,
    ErrorInfo,
    EvaluateSpec,
    EvaluationReport,
    LatencyInfo,
    ModelResult,
    ModelSpec,
    PerClassRow,
    Predictions,
    Task,
)
from pipelines import metrics as quality_metrics
from pipelines.datasets import Dataset
from pipelines.errors import PipelineError
from pipelines.models import Predictor, Scored, label_strings
from pipelines.prepare import prepare
from pipelines.spec import check_model, read_spec
from pipelines.timing import measure, percentiles

DEFAULT_REPETITIONS = 200
SINGLE_ROWS = 50  # distinct rows cycled through for single-row timing
BATCH_ROUNDS = 5


@dataclass(frozen=True)
class Quality:
    metrics: dict[str, float]
    per_class: list[PerClassRow]
    confusion: ConfusionMatrix | None
    predictions: Predictions
    scored: Scored


def score(predictor: Predictor, batch: Any, dataset: Dataset, task: Task) -> Quality:
    try:
        scored = predictor.score(batch)
    except PipelineError:
        raise
    except Exception as exc:
        raise PipelineError("predict_failed", f"prediction failed: {type(exc).__name__}: {exc}") from exc
    if task == "regression":
        y_true_f = dataset.target.to_numpy(dtype=float)
        y_pred_f = np.asarray(scored.labels, dtype=float).ravel()
        return Quality(
            metrics=quality_metrics.regression(y_true_f, y_pred_f),
            per_class=[],
            confusion=None,
            predictions={"y_true": y_true_f.tolist(), "y_pred": y_pred_f.tolist(), "y_score": None},
            scored=scored,
        )
    y_true = label_strings(dataset.target.to_numpy())
    y_pred = label_strings(scored.labels)
    result = quality_metrics.classification(y_true, y_pred, scored.proba, predictor.classes)
    return Quality(
        metrics=result.metrics,
        per_class=result.per_class,
        confusion=result.confusion,
        predictions={"y_true": y_true, "y_pred": y_pred, "y_score": result.y_score},
        scored=scored,
    )


def single_rows(predictor: Predictor, dataset: Dataset) -> list[Any]:
    frame = dataset.features
    return [predictor.prepare(frame.iloc[[i]]) for i in range(min(len(frame), SINGLE_ROWS))]


LATENCY_BUDGET_S = 2.0


def latency(predictor: Predictor, batch: Any, dataset: Dataset, repetitions: int) -> LatencyInfo:
    timings = measure(
        {"model": predictor.predict},
        {"model": single_rows(predictor, dataset)},
        {"model": (batch, len(dataset.features))},
        repetitions,
        BATCH_ROUNDS,
        # A slow model (a 100-tree forest in scikit-learn) must not spend a review's minutes on latency:
        # past this budget its p95 is already clear from the samples taken.
        budget_s=LATENCY_BUDGET_S,
    )["model"]
    p50, p95, p99 = percentiles(timings.single_ms)
    return {
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "batch_rows_per_s": float(np.median(timings.batch_rows_per_s)),
        "repetitions": len(timings.single_ms),
    }


def failed(spec: object, index: int, error: ErrorInfo) -> ModelResult:
    entry = spec if isinstance(spec, dict) else {}
    task: Task = "regression" if entry.get("task") == "regression" else "classification"
    return {
        "name": str(entry.get("name", f"models[{index}]")),
        "task": task,
        "model": None,
        "dataset": None,
        "metrics": {},
        "per_class": [],
        "confusion_matrix": None,
        "latency": None,
        "predictions": None,
        "error": error,
    }


def evaluate_model(spec: ModelSpec, repo_dir: Path, scratch: Path, repetitions: int) -> ModelResult:
    prepared = prepare(spec, repo_dir, scratch)
    predictor = prepared.model.predictor
    batch = predictor.prepare(prepared.dataset.features)
    quality = score(predictor, batch, prepared.dataset, spec["task"])
    timing = latency(predictor, batch, prepared.dataset, repetitions)
    performance = {
        "latency_p50_ms": timing["p50_ms"],
        "latency_p95_ms": timing["p95_ms"],
        "latency_p99_ms": timing["p99_ms"],
        "batch_rows_per_s": timing["batch_rows_per_s"],
        "model_size_bytes": float(prepared.info["size_bytes"]),
        "size_mb": size_mb(prepared.info["size_bytes"]),
    }
    return {
        "name": spec["name"],
        "task": spec["task"],
        "model": prepared.info,
        "dataset": prepared.dataset.info,
        "metrics": quality.metrics | performance,
        "per_class": quality.per_class,
        "confusion_matrix": quality.confusion,
        "latency": timing,
        "predictions": quality.predictions,
        "error": None,
    }


def evaluate(spec: EvaluateSpec, scratch: Path) -> EvaluationReport:
    repo_dir = Path(spec["repo_dir"])
    repetitions = max(int((spec.get("latency") or {}).get("repetitions", DEFAULT_REPETITIONS)), 1)
    results: list[ModelResult] = []
    for index, entry in enumerate(spec["models"]):
        try:
            results.append(evaluate_model(check_model(entry, index), repo_dir, scratch, repetitions))
        except Exception as exc:  # one model's failure is its own row; the others still run
            results.append(failed(entry, index, error_info(exc)))
    return {"schema_version": SCHEMA_VERSION, "models": results, "error": None}


def error_info(exc: Exception) -> ErrorInfo:
    if isinstance(exc, PipelineError):
        return exc.info()
    return {"kind": "internal_error", "message": f"{type(exc).__name__}: {exc}"}


def write_json(document: object, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, allow_nan=False, indent=1))


def exit_now(code: int) -> None:
    """Leave without the interpreter's teardown: unloading scikit-learn, pandas and ONNX Runtime takes
    ~0.5 s, on a review's critical path. Only after every output file was written and closed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cli_args(argv: list[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=None, help="writable directory (default: $TMPDIR)")
    args = parser.parse_args(argv)
    args.scratch = args.scratch or Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    return args


def main(argv: list[str] | None = None) -> int:
    args = cli_args(argv, "python -m pipelines.evaluate")
    try:
        report = evaluate(read_spec(args.spec), args.scratch)
    except PipelineError as exc:
        report = {"schema_version": SCHEMA_VERSION, "models": [], "error": exc.info()}
    write_json(report, args.out)
    return 0 if report["error"] is None else 2


if __name__ == "__main__":
    exit_now(main())
