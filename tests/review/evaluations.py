"""Evaluation documents as the sandboxed pipeline writes them, built with scikit-learn, and model policies."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from bot.config.repo import ModelSpec
from contract.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

RESAMPLES = 400  # enough for stable 95% intervals in tests, cheap on a shared 2-core machine


RESAMPLES = 400  # enough for stable 95% intervals in tests, cheap on a shared 2-core machine


# --------------------------------------------------------------------------- building evaluations


def sk_metric(metric: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, labels: list[Any]) -> float:
    """What the sandboxed pipeline computes, with scikit-learn."""
    binary = len(labels) == 2
    if metric == "accuracy":
        return float(skm.accuracy_score(y, pred))
    if metric == "roc_auc":
        assert proba is not None
        return float(skm.roc_auc_score(y, proba[:, 1] if binary else proba, multi_class="ovr", labels=labels))
    if metric == "log_loss":
        assert proba is not None
        return float(skm.log_loss(y, proba, labels=labels))
    if metric in REGRESSION_METRICS:
        fn = {
            "mae": skm.mean_absolute_error,
            "rmse": skm.root_mean_squared_error,
            "r2": skm.r2_score,
            "mape": skm.mean_absolute_percentage_error,
        }[metric]
        return float(fn(y, pred))
    kind, _, average = metric.partition("_")
    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[kind]
    # Like pipelines/metrics.py: with more than two classes the headline numbers are macro averages.
    default = "binary" if binary else "macro"
    if (average or default) == "binary":
        return float(fn(y, pred, average="binary", pos_label=labels[1], zero_division=0))
    return float(fn(y, pred, average=average or default, zero_division=0))


def evaluation_doc(
    name: str,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None = None,
    *,
    task: str = "classification",
    dataset_sha: str = "d" * 64,
    metrics: tuple[str, ...] | None = None,
    p95_ms: float = 2.0,
) -> dict[str, Any]:
    """A schema_version 1 evaluation document, as pipelines/ writes it."""
    labels = sorted(set(y.tolist()) | set(pred.tolist())) if task == "classification" else []
    wanted = metrics or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    if proba is None:
        wanted = tuple(m for m in wanted if m not in ("roc_auc", "log_loss"))
    return {
        "schema_version": 1,
        "name": name,
        "task": task,
        "model": {
            "path": f"models/{name}.onnx",
            "format": "onnx",
            "sha256": "m" * 64,
            "size_bytes": 1_000_000,
        },
        "dataset": {"path": "data/eval.csv", "sha256": dataset_sha, "rows": len(y), "n_features": 4},
        "metrics": {m: sk_metric(m, y, pred, proba, labels) for m in wanted},
        "per_class": [],
        "confusion_matrix": {"labels": [str(v) for v in labels], "matrix": []},
        "latency": {
            "p50_ms": 1.0,
            "p95_ms": p95_ms,
            "p99_ms": 3.0,
            "batch_rows_per_s": 1e5,
            "repetitions": 50,
        },
        "predictions": {
            "y_true": [str(v) for v in y] if task == "classification" else y.tolist(),
            "y_pred": [str(v) for v in pred] if task == "classification" else pred.tolist(),
            # Binary: the positive class's probability, as the pipeline sends it; the bot also takes
            # a full (rows, classes) matrix, used here for multiclass.
            "y_score": None if proba is None else (proba[:, 1] if len(labels) == 2 else proba).tolist(),
        },
        "error": None,
    }


def policy(
    task: str = "classification", metrics: list[str] | None = None, gates: dict[str, Any] | None = None
) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "churn",
            "path": "models/churn.onnx",
            "task": task,
            "dataset": {"path": "data/eval.csv", "target": "label"},
            "metrics": metrics or [],
            "gates": gates or {},
        }
    )


def gates_of(result: Any) -> dict[tuple[str, str], Any]:
    return {(g.metric, g.rule): g for g in result.gates}
