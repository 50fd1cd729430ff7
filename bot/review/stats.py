"""Statistics on the per-row predictions the sandbox returns: metrics under bootstrap resampling
weights, percentile intervals of head − base, and McNemar's test.

numpy-only on purpose: the bot process must never import scikit-learn, scipy or onnxruntime, so the
metrics needed for resampling are re-implemented here (tests check them against scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bot.review.parse import Evaluation

# Below this many discordant pairs the chi-square approximation of McNemar's test is poor.
MCNEMAR_EXACT_BELOW = 25
# Elements gathered per bootstrap chunk: bounds memory whatever the number of rows.
_CHUNK_ELEMENTS = 2_000_000
_FEW_GROUPS = 64
_MAX_AUC_CLASSES = 50


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on the rows where exactly one model is right."""

    base_only_correct: int
    head_only_correct: int
    statistic: float | None
    p_value: float
    method: Literal["exact", "chi2"]


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
class Rows:
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


def _regression_rows(y_true: tuple[Any, ...], y_pred: tuple[Any, ...]) -> Rows | None:
    try:
        values = np.asarray(y_true, dtype=float)
        predicted = np.asarray(y_pred, dtype=float)
    except (TypeError, ValueError):
        return None
    if values.ndim != 1 or not (np.all(np.isfinite(values)) and np.all(np.isfinite(predicted))):
        return None
    return Rows("regression", len(values), values=values, errors=predicted - values)


def encode_rows(evaluation: Evaluation, labels: Sequence[str]) -> Rows | None:
    """One side's rows ready for resampling, or None without usable per-row predictions."""
    y_true, y_pred = evaluation.y_true, evaluation.y_pred
    if y_true is None or y_pred is None or len(y_true) != len(y_pred) or not y_true:
        return None
    if evaluation.task == "regression":
        return _regression_rows(y_true, y_pred)
    n = len(y_true)
    code = {label: i for i, label in enumerate(labels)}
    true = np.fromiter((code[str(v)] for v in y_true), dtype=np.intp, count=n)
    pred = np.fromiter((code[str(v)] for v in y_pred), dtype=np.intp, count=n)
    k = len(labels)
    scores = _scores(evaluation.y_score, n, k)
    return Rows(
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


def class_labels(*evaluations: Evaluation) -> list[str]:
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


def _regression_metric(metric: str, rows: Rows, weights: FloatArray, total: FloatArray) -> FloatArray | None:
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


def _log_loss(rows: Rows, weights: FloatArray, total: FloatArray) -> FloatArray:
    assert rows.scores is not None and rows.true is not None
    eps = np.finfo(float).eps
    p = np.clip(rows.scores / rows.scores.sum(axis=1, keepdims=True), eps, 1 - eps)
    return (weights @ -np.log(p[np.arange(rows.n), rows.true])) / total


def _roc_auc(rows: Rows, weights: FloatArray) -> FloatArray | None:
    if rows.score_groups is None:
        return None
    assert rows.true is not None
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


def _class_counts(rows: Rows, weights: FloatArray, memo: dict[str, FloatArray]) -> FloatArray:
    """Per-class (true positives, support, predicted) under each resample, computed once per batch."""
    if "counts" not in memo:
        assert rows.by_hit is not None and rows.by_true is not None and rows.by_pred is not None
        counts = np.zeros((weights.shape[0], 3, rows.n_labels + 1))
        for i, groups in enumerate((rows.by_hit, rows.by_true, rows.by_pred)):
            counts[:, i, np.asarray(groups.keys, dtype=np.intp)] = groups.sums(weights)
        memo["counts"] = counts[:, :, : rows.n_labels]  # drop the "missed" bucket
    return memo["counts"]


def _metric(
    metric: str,
    rows: Rows,
    weights: FloatArray,
    present: BoolArray,
    memo: dict[str, FloatArray] | None = None,
) -> FloatArray | None:
    """The metric under each row of resampling ``weights`` (batch, n), or None if not computable."""
    total = weights.sum(axis=1)
    if rows.task == "regression":
        return _regression_metric(metric, rows, weights, total)
    if metric in ("roc_auc", "log_loss") and rows.scores is None:
        return None
    if metric == "log_loss":
        return _log_loss(rows, weights, total)
    if metric == "roc_auc":
        return _roc_auc(rows, weights)
    return _from_counts(metric, _class_counts(rows, weights, {} if memo is None else memo), present)


def _present(*sides: Rows) -> BoolArray:
    present = np.zeros(max(s.n_labels for s in sides), dtype=bool)
    for side in sides:
        for groups in (side.by_true, side.by_pred):
            if groups is not None:
                present[np.asarray(groups.keys, dtype=np.intp)] = True
    return present


def metric_on_rows(metric: str, evaluation: Evaluation) -> float | None:
    """Recompute a metric from one evaluation's per-row predictions (no resampling)."""
    rows = encode_rows(evaluation, class_labels(evaluation))
    if rows is None:
        return None
    value = _metric(metric, rows, np.ones((1, rows.n)), _present(rows))
    return None if value is None or not np.isfinite(value[0]) else float(value[0])


def metric_on_resamples(metric: str, evaluation: Evaluation, indices: npt.ArrayLike) -> FloatArray | None:
    """The metric on each row of ``indices`` (resamples of row numbers), as the bootstrap computes it."""
    rows = encode_rows(evaluation, class_labels(evaluation))
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
    base: Rows,
    head: Rows,
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
