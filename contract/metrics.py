"""The metric catalogue: the one list of metric names the pipeline computes, the repository config
validates against, and the review compares.

For more than two classes the pipeline reports the macro averages as precision / recall / f1.
"""

from __future__ import annotations

from collections.abc import Mapping

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "r2", "mape")
# Measured next to the quality metrics and valid for every task: present in every result's flat
# "metrics" so gates such as `latency_p95_ms: {max: 20}` work. size_mb is model_size_bytes / 10^6.
OPERATIONAL_METRICS: tuple[str, ...] = (
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "batch_rows_per_s",
    "model_size_bytes",
    "size_mb",
)
METRICS_BY_TASK: Mapping[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
METRIC_NAMES: frozenset[str] = frozenset(CLASSIFICATION_METRICS + REGRESSION_METRICS + OPERATIONAL_METRICS)
DEFAULT_METRICS: Mapping[str, tuple[str, ...]] = {
    "classification": ("accuracy", "precision_macro", "recall_macro", "f1_macro"),
    "regression": ("mae", "rmse", "r2"),
}
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {
        "log_loss",
        "mae",
        "rmse",
        "mape",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "model_size_bytes",
        "size_mb",
    }
)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def size_mb(size_bytes: float) -> float:
    """Megabytes (10^6 bytes), as both the pipeline and the bot report a model's size."""
    return size_bytes / 1e6
