"""Read the sandbox's evaluation documents (contract.schema, schema_version 1) into typed values.

Lenient on purpose: the documents come out of a sandbox that ran untrusted code, so a malformed
document becomes an evaluation error (shown in the PR) instead of an exception in the bot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract.metrics import size_mb

# The pipeline's latency block, as flat metric names (older documents carry latency only there).
_LATENCY_METRICS = (
    ("p50_ms", "latency_p50_ms"),
    ("p95_ms", "latency_p95_ms"),
    ("p99_ms", "latency_p99_ms"),
    ("batch_rows_per_s", "batch_rows_per_s"),
)


@dataclass(frozen=True)
class Fingerprint:
    path: str | None
    sha256: str | None
    rows: int | None
    n_features: int | None
    class_balance: Mapping[str, float] | None


@dataclass(frozen=True)
class ClassRow:
    label: str
    precision: float | None
    recall: float | None
    f1: float | None
    support: int | None


@dataclass(frozen=True)
class Evaluation:
    """The parts of one pipeline evaluation document that the review uses."""

    name: str
    task: str
    metrics: Mapping[str, float]
    model_sha256: str | None = None
    model_path: str | None = None
    dataset: Fingerprint | None = None
    per_class: tuple[ClassRow, ...] = ()
    confusion_labels: tuple[str, ...] = ()
    confusion_matrix: tuple[tuple[int, ...], ...] = ()
    y_true: tuple[Any, ...] | None = None
    y_pred: tuple[Any, ...] | None = None
    y_score: tuple[Any, ...] | None = None
    error: str | None = None


class _Malformed(ValueError):
    pass


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Malformed(f"'{key}' must be an object")
    return value


def _optional_list(value: Any, key: str) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise _Malformed(f"'predictions.{key}' must be a list")
    return tuple(value)


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        kind, message = error.get("kind"), error.get("message")
        return f"{kind}: {message}" if kind else str(message)
    return str(error)


def _metrics(doc: Mapping[str, Any]) -> dict[str, float]:
    """The flat metrics, completed from the latency and model blocks where the flat map lacks them."""
    metrics = {k: f for k, v in _mapping(doc, "metrics").items() if (f := _float_or_none(v)) is not None}
    latency = _mapping(doc, "latency")
    for key, metric in _LATENCY_METRICS:
        if (value := _float_or_none(latency.get(key))) is not None:
            metrics.setdefault(metric, value)
    if (size := _float_or_none(_mapping(doc, "model").get("size_bytes"))) is not None:
        metrics.setdefault("model_size_bytes", size)
    if (size := metrics.get("model_size_bytes")) is not None:
        metrics.setdefault("size_mb", size_mb(size))
    return metrics


def _fingerprint(dataset: Mapping[str, Any]) -> Fingerprint:
    balance = dataset.get("class_balance")
    return Fingerprint(
        path=_str_or_none(dataset.get("path")),
        sha256=_str_or_none(dataset.get("sha256")),
        rows=_int_or_none(dataset.get("rows")),
        n_features=_int_or_none(dataset.get("n_features")),
        class_balance=(
            {str(k): float(v) for k, v in balance.items() if _float_or_none(v) is not None}
            if isinstance(balance, Mapping)
            else None
        ),
    )


def _per_class(rows: Any) -> tuple[ClassRow, ...]:
    return tuple(
        ClassRow(
            label=str(row.get("label")),
            precision=_float_or_none(row.get("precision")),
            recall=_float_or_none(row.get("recall")),
            f1=_float_or_none(row.get("f1")),
            support=_int_or_none(row.get("support")),
        )
        for row in rows or ()
        if isinstance(row, Mapping)
    )


def _evaluation(doc: Mapping[str, Any], name: str, task: str) -> Evaluation:
    model = _mapping(doc, "model")
    confusion = _mapping(doc, "confusion_matrix")
    predictions = _mapping(doc, "predictions")
    return Evaluation(
        name=name,
        task=task,
        metrics=_metrics(doc),
        model_sha256=_str_or_none(model.get("sha256")),
        model_path=_str_or_none(model.get("path")),
        dataset=_fingerprint(_mapping(doc, "dataset")),
        per_class=_per_class(doc.get("per_class")),
        confusion_labels=tuple(str(label) for label in confusion.get("labels") or ()),
        confusion_matrix=tuple(tuple(int(c) for c in row) for row in confusion.get("matrix") or ()),
        y_true=_optional_list(predictions.get("y_true"), "y_true"),
        y_pred=_optional_list(predictions.get("y_pred"), "y_pred"),
        y_score=_optional_list(predictions.get("y_score"), "y_score"),
    )


def parse_evaluation(doc: Any, *, name: str = "?", task: str = "classification") -> Evaluation:
    """Read a pipeline result leniently: a malformed document becomes an evaluation error."""
    if not isinstance(doc, Mapping):
        return Evaluation(name=name, task=task, metrics={}, error="malformed evaluation result: not an object")
    name = str(doc.get("name") or name)
    task = str(doc.get("task") or task)
    try:
        if error := doc.get("error"):
            return Evaluation(name=name, task=task, metrics={}, error=_error_text(error))
        return _evaluation(doc, name, task)
    except (_Malformed, TypeError, ValueError) as exc:
        return Evaluation(name=name, task=task, metrics={}, error=f"malformed evaluation result: {exc}")


def _every(names: Sequence[str], error: Any) -> dict[str, Any]:
    return {n: {"error": error} for n in names}


def results_by_model(report: Any, names: Sequence[str]) -> dict[str, Any]:
    """Index a pipeline report ({schema_version, models: [...], error}) by model name.

    A run that failed as a whole (sandbox timeout, bad spec) gives every model that error, so the
    comment says why; a model the report does not mention stays absent (a new model, on the base).
    """
    if not isinstance(report, Mapping):
        return _every(names, {"kind": "internal_error", "message": "the evaluation report is not an object"})
    if report.get("schema_version") not in (None, 1):
        message = f"evaluation report schema_version {report.get('schema_version')!r} is not supported (expected 1)"
        return _every(names, {"kind": "internal_error", "message": message})
    models = report.get("models")
    found = {
        str(doc.get("name")): doc for doc in (models if isinstance(models, list) else []) if isinstance(doc, Mapping)
    }
    error = report.get("error")
    if error and not found:
        return _every(names, error)
    return {n: found[n] for n in names if n in found}
