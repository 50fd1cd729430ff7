"""Compare a base and a head evaluation of one model: deltas, intervals, verdicts and gates.

Pure and numpy-only on purpose: the bot process must never import scikit-learn, scipy or
onnxruntime, so the metrics needed for resampling are re-implemented here on the per-row
predictions that the sandboxed pipeline returns (evaluation schema_version 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Task = Literal["classification", "regression"]
Verdict = Literal["better", "worse", "within_noise", "failed", "n/a"]
GateStatus = Literal["pass", "fail", "skipped"]
Status = Literal["compared", "new", "head_failed", "base_failed"]

# The metric catalogue is shared with the repository config, which validates names against it, and
# matches what the sandboxed pipeline computes (contract/schema.py). For more than two classes the
# pipeline reports the macro averages as precision / recall / f1.
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
# Measured by the pipeline next to the quality metrics; valid for every task. size_mb (10^6 bytes)
# is derived from model.size_bytes; the pipeline itself reports model_size_bytes.
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
# Operational numbers have no per-row samples to resample; a relative band stands in for noise.
# Timings on a shared runner jitter by several percent; a file size is exact.
RELATIVE_NOISE: Mapping[str, float] = {
    "latency_p50_ms": 0.10,
    "latency_p95_ms": 0.10,
    "latency_p99_ms": 0.10,
    "batch_rows_per_s": 0.10,
    "model_size_bytes": 0.01,
    "size_mb": 0.01,
}
# Below this many discordant pairs the chi-square approximation of McNemar's test is poor.
MCNEMAR_EXACT_BELOW = 25
# Elements gathered per bootstrap chunk: bounds memory whatever the number of rows.
_CHUNK_ELEMENTS = 2_000_000
_FEW_GROUPS = 64
_MAX_AUC_CLASSES = 50


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def metrics_for_task(task: str) -> tuple[str, ...]:
    return METRICS_BY_TASK.get(task, ()) + OPERATIONAL_METRICS


class GateLike(Protocol):
    """One gate of the repository config (bot.repoconfig.Gate satisfies it)."""

    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def min_delta(self) -> float | None: ...
    @property
    def max_delta(self) -> float | None: ...


class ModelPolicy(Protocol):
    """What the comparison needs from a model's config (bot.repoconfig.ModelSpec satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def metrics(self) -> Sequence[str]: ...
    @property
    def gates(self) -> Mapping[str, GateLike]: ...


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class MetricComparison:
    name: str
    base: float | None
    head: float | None
    delta: float | None
    ci: Interval | None
    verdict: Verdict
    higher_is_better: bool
    note: str | None = None


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on the rows where exactly one model is right."""

    base_only_correct: int
    head_only_correct: int
    statistic: float | None
    p_value: float
    method: Literal["exact", "chi2"]


@dataclass(frozen=True)
class GateResult:
    metric: str
    rule: Literal["min", "max", "min_delta", "max_delta"]
    threshold: float
    value: float | None
    status: GateStatus
    reason: str

    @property
    def passed(self) -> bool:
        return self.status != "fail"


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


@dataclass(frozen=True)
class ModelComparison:
    name: str
    task: str
    status: Status
    metrics: tuple[MetricComparison, ...]
    gates: tuple[GateResult, ...]
    base: Evaluation | None
    head: Evaluation | None
    mcnemar: McNemar | None = None
    paired: bool = False
    dataset_warning: str | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status != "head_failed" and all(g.passed for g in self.gates)


@dataclass(frozen=True)
class ReviewComparison:
    models: tuple[ModelComparison, ...]

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.models)


# --------------------------------------------------------------------------- parsing


class _Malformed(ValueError):
    pass


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


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


def parse_evaluation(doc: Any, *, name: str = "?", task: str = "classification") -> Evaluation:
    """Read a pipeline result leniently: a malformed document becomes an evaluation error."""
    if not isinstance(doc, Mapping):
        return Evaluation(name=name, task=task, metrics={}, error="malformed evaluation result: not an object")
    name = str(doc.get("name") or name)
    task = str(doc.get("task") or task)
    try:
        error = doc.get("error")
        if error:
            if isinstance(error, Mapping):
                kind, message = error.get("kind"), error.get("message")
                text = f"{kind}: {message}" if kind else str(message)
            else:
                text = str(error)
            return Evaluation(name=name, task=task, metrics={}, error=text)
        metrics = {k: f for k, v in _mapping(doc, "metrics").items() if (f := _float_or_none(v)) is not None}
        model = _mapping(doc, "model")
        latency = _mapping(doc, "latency")
        for key, metric in (
            ("p50_ms", "latency_p50_ms"),
            ("p95_ms", "latency_p95_ms"),
            ("p99_ms", "latency_p99_ms"),
        ):
            if (value := _float_or_none(latency.get(key))) is not None:
                metrics.setdefault(metric, value)
        if (value := _float_or_none(latency.get("batch_rows_per_s"))) is not None:
            metrics.setdefault("batch_rows_per_s", value)
        if (size := _float_or_none(model.get("size_bytes"))) is not None:
            metrics.setdefault("model_size_bytes", size)
        if (size := metrics.get("model_size_bytes")) is not None:
            metrics.setdefault("size_mb", size / 1e6)
        dataset = _mapping(doc, "dataset")
        balance = dataset.get("class_balance")
        fingerprint = Fingerprint(
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
        per_class = tuple(
            ClassRow(
                label=str(row.get("label")),
                precision=_float_or_none(row.get("precision")),
                recall=_float_or_none(row.get("recall")),
                f1=_float_or_none(row.get("f1")),
                support=_int_or_none(row.get("support")),
            )
            for row in doc.get("per_class") or ()
            if isinstance(row, Mapping)
        )
        confusion = _mapping(doc, "confusion_matrix")
        labels = tuple(str(label) for label in confusion.get("labels") or ())
        matrix = tuple(tuple(int(c) for c in row) for row in confusion.get("matrix") or ())
        predictions = _mapping(doc, "predictions")
        return Evaluation(
            name=name,
            task=task,
            metrics=metrics,
            model_sha256=_str_or_none(model.get("sha256")),
            model_path=_str_or_none(model.get("path")),
            dataset=fingerprint,
            per_class=per_class,
            confusion_labels=labels,
            confusion_matrix=matrix,
            y_true=_optional_list(predictions.get("y_true"), "y_true"),
            y_pred=_optional_list(predictions.get("y_pred"), "y_pred"),
            y_score=_optional_list(predictions.get("y_score"), "y_score"),
        )
    except (_Malformed, TypeError, ValueError) as exc:
        return Evaluation(name=name, task=task, metrics={}, error=f"malformed evaluation result: {exc}")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- statistics


def mcnemar(base_correct: npt.ArrayLike, head_correct: npt.ArrayLike) -> McNemar:
    """Two-sided McNemar test: exact binomial for few discordant pairs, else chi-square with continuity."""
    base = np.asarray(base_correct, dtype=bool)
    head = np.asarray(head_correct, dtype=bool)
    b = int(np.count_nonzero(base & ~head))
    c = int(np.count_nonzero(~base & head))
    n = b + c
    if n == 0:
        return McNemar(b, c, None, 1.0, "exact")
    if n < MCNEMAR_EXACT_BELOW:
        tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
        return McNemar(b, c, None, min(1.0, 2 * tail), "exact")
    statistic = (abs(b - c) - 1) ** 2 / n
    # Survival function of chi-square with one degree of freedom.
    return McNemar(b, c, statistic, math.erfc(math.sqrt(statistic / 2)), "chi2")


FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by equal keys (in key order), to sum resampling weights per key quickly."""

    order: IntArray
    starts: IntArray
    keys: IntArray | FloatArray
    membership: FloatArray | None  # (n, groups) one-hot, only when there are few groups

    @classmethod
    def of(cls, values: IntArray | FloatArray) -> _Groups:
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        membership = None
        if len(starts) <= _FEW_GROUPS and len(order) * len(starts) <= _CHUNK_ELEMENTS:
            group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
            membership = np.zeros((len(order), len(starts)))
            membership[order, group] = 1.0
        return cls(order, starts, ordered[starts], membership)

    def sums(self, weights: FloatArray) -> FloatArray:
        """(batch, groups): the weight of each group under each resample."""
        if self.membership is not None:  # a matrix product beats gathering for few groups
            return weights @ self.membership
        ordered = weights[:, self.order]
        if len(self.starts) == len(self.order):  # all keys distinct: nothing to add up
            return ordered
        return np.add.reduceat(ordered, self.starts, axis=1)


@dataclass(frozen=True)
class _Rows:
    """One side's per-row data, prepared so that any metric is a function of resampling weights.

    A bootstrap resample is a row of counts (how often each row was drawn); every metric here is
    a weighted sum or built from weighted per-class counts, so all metrics share one set of resamples.
    """

    task: str
    n: int
    n_labels: int = 0
    true: IntArray | None = None  # class codes (classification)
    correct: BoolArray | None = None
    by_true: _Groups | None = None  # rows grouped by true class: support
    by_pred: _Groups | None = None  # rows grouped by predicted class: predicted counts
    by_hit: _Groups | None = None  # rows grouped by class if predicted right, else k: true positives
    scores: FloatArray | None = None  # (n, k) probabilities in label order
    score_groups: tuple[_Groups, ...] | None = None  # rows ordered by each class's score
    values: FloatArray | None = None  # regression targets
    errors: FloatArray | None = None  # regression prediction − target


def _encode(evaluation: Evaluation, labels: Sequence[str]) -> _Rows | None:
    y_true, y_pred = evaluation.y_true, evaluation.y_pred
    if y_true is None or y_pred is None or len(y_true) != len(y_pred) or not y_true:
        return None
    n = len(y_true)
    if evaluation.task == "regression":
        try:
            values = np.asarray(y_true, dtype=float)
            predicted = np.asarray(y_pred, dtype=float)
        except (TypeError, ValueError):
            return None
        if values.ndim != 1 or not (np.all(np.isfinite(values)) and np.all(np.isfinite(predicted))):
            return None
        return _Rows("regression", n, values=values, errors=predicted - values)
    code = {label: i for i, label in enumerate(labels)}
    true = np.fromiter((code[str(v)] for v in y_true), dtype=np.intp, count=n)
    pred = np.fromiter((code[str(v)] for v in y_pred), dtype=np.intp, count=n)
    k = len(labels)
    scores = _scores(evaluation.y_score, n, k)
    return _Rows(
        "classification",
        n,
        k,
        true=true,
        correct=true == pred,
        by_true=_Groups.of(true),
        by_pred=_Groups.of(pred),
        by_hit=_Groups.of(np.where(true == pred, true, k)),
        scores=scores,
        # One-vs-rest AUC costs a sort and a pass per class: past a few dozen classes, no interval.
        score_groups=(
            tuple(_Groups.of(column) for column in scores.T) if scores is not None and k <= _MAX_AUC_CLASSES else None
        ),
    )


def _scores(y_score: tuple[Any, ...] | None, n: int, k: int) -> FloatArray | None:
    """Probabilities as (n, k); a binary model may send only the positive class's probability."""
    if y_score is None or len(y_score) != n:
        return None
    try:
        scores = np.asarray(y_score, dtype=float)
    except (TypeError, ValueError):
        return None
    if scores.ndim == 1 and k == 2:
        scores = np.column_stack([1 - scores, scores])
    if scores.ndim != 2 or scores.shape[1] != k or not np.all(np.isfinite(scores)):
        return None
    return scores


def _class_labels(*evaluations: Evaluation) -> list[str]:
    """Label order: the pipeline's (the model's class order, whose second class is the positive one
    and whose order the probability columns follow), then any other label, sorted."""
    ordered = dict.fromkeys(label for e in evaluations for label in e.confusion_labels)
    seen = {str(v) for e in evaluations for values in (e.y_true, e.y_pred) for v in values or ()}
    # Without the pipeline's order, numbers sort numerically so that {0, 1} has 1 positive.
    return [*ordered, *sorted(seen - set(ordered), key=_label_key)]


def _label_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _safe_div(num: FloatArray, den: FloatArray) -> FloatArray:
    # scikit-learn's zero_division default yields 0 where a class was never predicted / present.
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _from_counts(metric: str, counts: FloatArray, present: BoolArray) -> FloatArray | None:
    """Classification metrics from per-class counts (batch, 3, k): true positives, support, predicted."""
    tp, support, predicted = counts[:, 0], counts[:, 1], counts[:, 2]
    total = support.sum(axis=1)
    if metric == "accuracy":
        return _safe_div(tp.sum(axis=1), total)
    kind, _, average = metric.partition("_")
    if kind == "precision":
        per_class = _safe_div(tp, predicted)
    elif kind == "recall":
        per_class = _safe_div(tp, support)
    elif kind == "f1":
        per_class = _safe_div(2 * tp, support + predicted)
    else:
        return None
    if average == "" and counts.shape[2] == 2:
        return per_class[:, 1]  # binary scores are about the positive (second) label
    if average in ("", "macro"):  # without a positive label the pipeline reports the macro average
        return per_class[:, present].mean(axis=1)
    if average == "weighted":
        return _safe_div((per_class * support).sum(axis=1), total)
    return None


def _auc(groups: _Groups, positive: BoolArray, weights: FloatArray) -> FloatArray:
    """Weighted Mann-Whitney AUC for each row of ``weights`` (ties count one half)."""
    if groups.membership is not None:
        pos_w = (weights * positive) @ groups.membership
        neg_w = (weights * ~positive) @ groups.membership
    else:
        ordered = weights[:, groups.order]
        pos_w = ordered * positive[groups.order]
        neg_w = ordered - pos_w
        if len(groups.starts) < len(groups.order):
            pos_w = np.add.reduceat(pos_w, groups.starts, axis=1)
            neg_w = np.add.reduceat(neg_w, groups.starts, axis=1)
    below = np.cumsum(neg_w, axis=1) - neg_w
    wins = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
    den = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    return np.divide(wins, den, out=np.full_like(wins, np.nan), where=den > 0)


def _metric(
    metric: str,
    rows: _Rows,
    weights: FloatArray,
    present: BoolArray,
    memo: dict[str, FloatArray] | None = None,
) -> FloatArray | None:
    """The metric under each row of resampling ``weights`` (batch, n), or None if not computable."""
    total = weights.sum(axis=1)
    if rows.task == "regression":
        assert rows.values is not None and rows.errors is not None
        err, values = rows.errors, rows.values
        if metric == "mae":
            return (weights @ np.abs(err)) / total
        if metric == "rmse":
            return np.sqrt((weights @ err**2) / total)
        if metric == "mape":
            return (weights @ (np.abs(err) / np.maximum(np.abs(values), np.finfo(float).eps))) / total
        if metric == "r2":
            ss_res = weights @ err**2
            ss_tot = np.maximum(weights @ values**2 - (weights @ values) ** 2 / total, 0.0)
            # scikit-learn: a constant target scores 1 when predicted perfectly, else 0.
            fallback = np.where(ss_res == 0, 1.0, 0.0)
            return np.where(ss_tot > 0, 1 - _safe_div(ss_res, ss_tot), fallback)
        return None
    assert rows.true is not None
    if metric in ("roc_auc", "log_loss"):
        if rows.scores is None:
            return None
        if metric == "log_loss":
            eps = np.finfo(float).eps
            p = np.clip(rows.scores / rows.scores.sum(axis=1, keepdims=True), eps, 1 - eps)
            return (weights @ -np.log(p[np.arange(rows.n), rows.true])) / total
        if rows.score_groups is None:
            return None
        if rows.n_labels == 2:
            return _auc(rows.score_groups[1], rows.true == 1, weights)
        # One-vs-rest, macro averaged over the classes in the truth (as scikit-learn's "ovr").
        assert rows.by_true is not None
        classes = np.asarray(rows.by_true.keys, dtype=np.intp)
        per_class = [_auc(rows.score_groups[c], rows.true == c, weights) for c in classes]
        if not per_class:
            return None
        with np.errstate(all="ignore"):
            # A class a resample happens to miss has no AUC there; average the others.
            stacked = np.array(per_class)
            seen = np.isfinite(stacked)
            return np.where(seen, stacked, 0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
    memo = {} if memo is None else memo
    if "counts" not in memo:
        assert rows.by_hit is not None and rows.by_true is not None and rows.by_pred is not None
        counts = np.zeros((weights.shape[0], 3, rows.n_labels + 1))
        for i, groups in enumerate((rows.by_hit, rows.by_true, rows.by_pred)):
            counts[:, i, np.asarray(groups.keys, dtype=np.intp)] = groups.sums(weights)
        memo["counts"] = counts[:, :, : rows.n_labels]  # drop the "missed" bucket
    return _from_counts(metric, memo["counts"], present)


def _present(*sides: _Rows) -> BoolArray:
    present = np.zeros(max(s.n_labels for s in sides), dtype=bool)
    for side in sides:
        for groups in (side.by_true, side.by_pred):
            if groups is not None:
                present[np.asarray(groups.keys, dtype=np.intp)] = True
    return present


def metric_on_rows(metric: str, evaluation: Evaluation) -> float | None:
    """Recompute a metric from one evaluation's per-row predictions (no resampling)."""
    rows = _encode(evaluation, _class_labels(evaluation))
    if rows is None:
        return None
    value = _metric(metric, rows, np.ones((1, rows.n)), _present(rows))
    return None if value is None or not np.isfinite(value[0]) else float(value[0])


def metric_on_resamples(metric: str, evaluation: Evaluation, indices: npt.ArrayLike) -> FloatArray | None:
    """The metric on each row of ``indices`` (resamples of row numbers), as the bootstrap computes it."""
    rows = _encode(evaluation, _class_labels(evaluation))
    idx = np.atleast_2d(np.asarray(indices, dtype=np.intp))
    if rows is None:
        return None
    offsets = (np.arange(idx.shape[0]) * rows.n)[:, None]
    weights = np.bincount((idx + offsets).ravel(), minlength=idx.shape[0] * rows.n).reshape(-1, rows.n)
    return _metric(metric, rows, weights.astype(float), _present(rows))


def _resample_weights(rng: np.random.Generator, size: int, n: int) -> FloatArray:
    draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(float)


def bootstrap_deltas(
    metrics: Sequence[str],
    base: _Rows,
    head: _Rows,
    *,
    paired: bool,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval | None]:
    """Percentile intervals of head − base per metric, all from the same resamples.

    Paired resamples draw the same rows for both sides, which cancels the rows' own difficulty
    out of the delta; unpaired (different datasets) draws each side independently.
    """
    rng = np.random.default_rng(seed)
    # Like scikit-learn, each side macro-averages over the labels in its own truth and predictions.
    present_base, present_head = _present(base), _present(head)
    chunk = max(1, _CHUNK_ELEMENTS // max(base.n, head.n))
    deltas: dict[str, list[FloatArray]] = {m: [] for m in metrics}
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        w_base = _resample_weights(rng, size, base.n)
        w_head = w_base if paired else _resample_weights(rng, size, head.n)
        memo_base: dict[str, FloatArray] = {}
        memo_head: dict[str, FloatArray] = {}
        for metric in list(deltas):
            head_values = _metric(metric, head, w_head, present_head, memo_head)
            base_values = _metric(metric, base, w_base, present_base, memo_base)
            if head_values is None or base_values is None:
                del deltas[metric]
                continue
            deltas[metric].append(head_values - base_values)
        done += size
    tail = (1 - confidence) / 2 * 100
    intervals: dict[str, Interval | None] = dict.fromkeys(metrics)
    for metric, parts in deltas.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        if values.size:
            low, high = np.percentile(values, [tail, 100 - tail])
            intervals[metric] = Interval(float(low), float(high))
    return intervals


# --------------------------------------------------------------------------- comparison


def _verdict(metric: str, base: float, head: float, delta: float, ci: Interval | None) -> Verdict:
    if metric in RELATIVE_NOISE:
        if abs(delta) <= RELATIVE_NOISE[metric] * max(abs(base), 1e-12):
            return "within_noise"
        improved = delta > 0
    elif ci is None:
        return "n/a"
    elif ci.low <= 0 <= ci.high:
        return "within_noise"
    else:
        improved = ci.low > 0
    return "better" if improved == higher_is_better(metric) else "worse"


def _gate_results(
    gates: Mapping[str, GateLike],
    rows: Mapping[str, MetricComparison],
    status: Status,
    base_error: str | None,
) -> tuple[GateResult, ...]:
    results: list[GateResult] = []
    for metric, gate in gates.items():
        row = rows.get(metric)
        head = row.head if row else None
        delta = row.delta if row else None
        for rule in ("min", "max", "min_delta", "max_delta"):
            threshold = getattr(gate, rule)
            if threshold is None:
                continue
            is_delta = rule.endswith("delta")
            value = delta if is_delta else head
            label = f"Δ {metric}" if is_delta else metric
            sign = "≥" if rule.startswith("min") else "≤"
            if status == "head_failed":
                results.append(GateResult(metric, rule, threshold, None, "fail", "head model failed to evaluate"))
            elif is_delta and status == "new":
                results.append(GateResult(metric, rule, threshold, None, "skipped", "no base model to compare"))
            elif is_delta and status == "base_failed":
                results.append(
                    GateResult(
                        metric,
                        rule,
                        threshold,
                        None,
                        "skipped",
                        f"base model failed to evaluate: {base_error}",
                    )
                )
            elif value is None:
                # Missing data never passes a gate.
                side = "base or head" if is_delta else "head"
                results.append(
                    GateResult(metric, rule, threshold, None, "fail", f"{metric} was not reported for the {side}")
                )
            else:
                ok = value >= threshold if rule.startswith("min") else value <= threshold
                reason = (
                    f"{label} = {value:.4g} {sign} {threshold:g}"
                    if ok
                    else (f"{label} = {value:.4g}, required {sign} {threshold:g}")
                )
                results.append(GateResult(metric, rule, threshold, value, "pass" if ok else "fail", reason))
    return tuple(results)


def _dataset_warning(base: Evaluation, head: Evaluation) -> str | None:
    b, h = base.dataset, head.dataset
    if b is None or h is None or b.sha256 is None or h.sha256 is None or b.sha256 == h.sha256:
        return None
    return (
        f"Base and head were evaluated on different datasets (sha256 {b.sha256[:12]} with {b.rows} rows "
        f"vs {h.sha256[:12]} with {h.rows} rows): the deltas mix the model change with the data change."
    )


def compare_model(
    policy: ModelPolicy,
    base: Evaluation | None,
    head: Evaluation | None,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ModelComparison:
    """Compare one model's base and head evaluations under its config (metrics and gates).

    ``base`` is None for a model the PR adds; ``head`` None means the head produced no result.
    """
    names = list(dict.fromkeys([*policy.metrics, *policy.gates, "latency_p95_ms", "size_mb"]))
    if head is None:
        head = Evaluation(policy.name, policy.task, {}, error="no evaluation result for the head")
    if head.error is not None:
        rows = tuple(
            MetricComparison(
                m,
                base.metrics.get(m) if base and not base.error else None,
                None,
                None,
                None,
                "failed",
                higher_is_better(m),
                note=head.error,
            )
            for m in names
        )
        return ModelComparison(
            policy.name,
            policy.task,
            "head_failed",
            rows,
            _gate_results(policy.gates, {}, "head_failed", None),
            base,
            head,
            error=head.error,
        )
    if base is None or base.error is not None:
        status: Status = "new" if base is None else "base_failed"
        note = "new model" if base is None else f"base failed: {base.error}"
        rows = tuple(
            MetricComparison(m, None, head.metrics.get(m), None, None, "n/a", higher_is_better(m), note=note)
            for m in names
        )
        by_name = {r.name: r for r in rows}
        base_error = base.error if base is not None else None
        return ModelComparison(
            policy.name,
            policy.task,
            status,
            rows,
            _gate_results(policy.gates, by_name, status, base_error),
            base,
            head,
            error=None,
        )

    warning = _dataset_warning(base, head)
    labels = _class_labels(base, head)
    base_rows, head_rows = _encode(base, labels), _encode(head, labels)
    paired = (
        warning is None
        and base_rows is not None
        and head_rows is not None
        and base_rows.n == head_rows.n
        and base.y_true == head.y_true
    )
    intervals: dict[str, Interval | None] = {}
    if base_rows is not None and head_rows is not None:
        sampled = [m for m in names if m not in RELATIVE_NOISE and m in base.metrics and m in head.metrics]
        intervals = bootstrap_deltas(
            sampled,
            base_rows,
            head_rows,
            paired=paired,
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
    result_rows: list[MetricComparison] = []
    for metric in names:
        b, h = base.metrics.get(metric), head.metrics.get(metric)
        if b is None or h is None:
            missing = "base and head" if b is None and h is None else ("base" if b is None else "head")
            result_rows.append(
                MetricComparison(
                    metric,
                    b,
                    h,
                    None,
                    None,
                    "n/a",
                    higher_is_better(metric),
                    note=f"not reported for the {missing}",
                )
            )
            continue
        ci = intervals.get(metric)
        delta = h - b
        row_note = None
        if ci is None and metric not in RELATIVE_NOISE:
            row_note = (
                "no per-row predictions to resample"
                if base_rows is None or head_rows is None
                else "no per-row scores to resample for this metric"
            )
        result_rows.append(
            MetricComparison(
                metric, b, h, delta, ci, _verdict(metric, b, h, delta, ci), higher_is_better(metric), row_note
            )
        )
    test = None
    if paired and base_rows is not None and head_rows is not None and base_rows.correct is not None:
        assert head_rows.correct is not None
        test = mcnemar(base_rows.correct, head_rows.correct)
    by_name = {r.name: r for r in result_rows}
    return ModelComparison(
        policy.name,
        policy.task,
        "compared",
        tuple(result_rows),
        _gate_results(policy.gates, by_name, "compared", None),
        base,
        head,
        mcnemar=test,
        paired=paired,
        dataset_warning=warning,
    )


def results_by_model(report: Any, names: Sequence[str]) -> dict[str, Any]:
    """Index a pipeline report ({schema_version, models: [...], error}) by model name.

    A run that failed as a whole (sandbox timeout, bad spec) gives every model that error, so the
    comment says why; a model the report does not mention stays absent (a new model, on the base).
    """
    if not isinstance(report, Mapping):
        return {
            n: {"error": {"kind": "internal_error", "message": "the evaluation report is not an object"}} for n in names
        }
    if report.get("schema_version") not in (None, 1):
        message = f"evaluation report schema_version {report.get('schema_version')!r} is not supported (expected 1)"
        return {n: {"error": {"kind": "internal_error", "message": message}} for n in names}
    models = report.get("models")
    found = {
        str(doc.get("name")): doc for doc in (models if isinstance(models, list) else []) if isinstance(doc, Mapping)
    }
    error = report.get("error")
    if error and not found:
        return {n: {"error": error} for n in names}
    return {n: found[n] for n in names if n in found}


def compare_review(
    policies: Sequence[ModelPolicy],
    base_results: Mapping[str, Any],
    head_results: Mapping[str, Any],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> ReviewComparison:
    """Compare every configured model; results are raw evaluation documents keyed by model name."""
    comparisons = []
    for policy in policies:
        base_doc, head_doc = base_results.get(policy.name), head_results.get(policy.name)
        base = None if base_doc is None else parse_evaluation(base_doc, name=policy.name, task=policy.task)
        head = None if head_doc is None else parse_evaluation(head_doc, name=policy.name, task=policy.task)
        comparisons.append(compare_model(policy, base, head, resamples=resamples, seed=seed))
    return ReviewComparison(tuple(comparisons))
