"""Compare a base and a head evaluation of one model: deltas, intervals, verdicts and gates.

A pure core: documents are read by bot.review.parse, intervals and tests come from bot.review.stats,
gates are judged by bot.review.gates; this module decides what each row of the PR's table says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.review.gates import GateLike, GateResult, gate_results
from bot.review.parse import Evaluation, parse_evaluation
from bot.review.stats import Interval, McNemar, Rows, bootstrap_deltas, class_labels, encode_rows, mcnemar
from contract.metrics import higher_is_better

Verdict = Literal["better", "worse", "within_noise", "failed", "n/a"]
Status = Literal["compared", "new", "head_failed", "base_failed"]

# Shown for every model whatever its config: what serving it costs.
ALWAYS_SHOWN = ("latency_p95_ms", "size_mb")
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


class ModelPolicy(Protocol):
    """What the comparison needs from a model's config (bot.config.repo.ModelSpec satisfies it)."""

    @property
    def name(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def metrics(self) -> Sequence[str]: ...
    @property
    def gates(self) -> Mapping[str, GateLike]: ...


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


def _dataset_warning(base: Evaluation, head: Evaluation) -> str | None:
    b, h = base.dataset, head.dataset
    if b is None or h is None or b.sha256 is None or h.sha256 is None or b.sha256 == h.sha256:
        return None
    return (
        f"Base and head were evaluated on different datasets (sha256 {b.sha256[:12]} with {b.rows} rows "
        f"vs {h.sha256[:12]} with {h.rows} rows): the deltas mix the model change with the data change."
    )


def _by_name(rows: Sequence[MetricComparison]) -> dict[str, MetricComparison]:
    return {r.name: r for r in rows}


def _head_failed(
    policy: ModelPolicy, names: Sequence[str], base: Evaluation | None, head: Evaluation
) -> ModelComparison:
    base_metrics = base.metrics if base is not None and not base.error else {}
    rows = tuple(
        MetricComparison(m, base_metrics.get(m), None, None, None, "failed", higher_is_better(m), note=head.error)
        for m in names
    )
    gates = gate_results(policy.gates, {}, "head_failed")
    return ModelComparison(policy.name, policy.task, "head_failed", rows, gates, base, head, error=head.error)


def _without_base(
    policy: ModelPolicy, names: Sequence[str], base: Evaluation | None, head: Evaluation
) -> ModelComparison:
    """A model the PR adds (no base) or whose base failed: head values only, delta gates skipped."""
    status: Status = "new" if base is None else "base_failed"
    base_error = None if base is None else base.error
    note = "new model" if base is None else f"base failed: {base_error}"
    rows = tuple(
        MetricComparison(m, None, head.metrics.get(m), None, None, "n/a", higher_is_better(m), note=note) for m in names
    )
    gates = gate_results(policy.gates, _by_name(rows), status, base_error)
    return ModelComparison(policy.name, policy.task, status, rows, gates, base, head)


def _row(metric: str, base: Evaluation, head: Evaluation, ci: Interval | None, *, resampled: bool) -> MetricComparison:
    """One metric of two evaluations that both succeeded."""
    b, h = base.metrics.get(metric), head.metrics.get(metric)
    if b is None or h is None:
        missing = "base and head" if b is None and h is None else ("base" if b is None else "head")
        why = f"not reported for the {missing}"
        return MetricComparison(metric, b, h, None, None, "n/a", higher_is_better(metric), note=why)
    note = None
    if ci is None and metric not in RELATIVE_NOISE:
        note = "no per-row scores to resample for this metric" if resampled else "no per-row predictions to resample"
    delta = h - b
    return MetricComparison(metric, b, h, delta, ci, _verdict(metric, b, h, delta, ci), higher_is_better(metric), note)


@dataclass(frozen=True)
class _Sides:
    """Both sides' rows when both carry per-row predictions; paired when they are the same rows."""

    base: Rows
    head: Rows
    paired: bool


def _sides(base: Evaluation, head: Evaluation, *, same_dataset: bool) -> _Sides | None:
    labels = class_labels(base, head)
    base_rows, head_rows = encode_rows(base, labels), encode_rows(head, labels)
    if base_rows is None or head_rows is None:
        return None
    paired = same_dataset and base_rows.n == head_rows.n and base.y_true == head.y_true
    return _Sides(base_rows, head_rows, paired)


def _compared(
    policy: ModelPolicy,
    names: Sequence[str],
    base: Evaluation,
    head: Evaluation,
    *,
    resamples: int,
    seed: int,
    confidence: float,
) -> ModelComparison:
    warning = _dataset_warning(base, head)
    sides = _sides(base, head, same_dataset=warning is None)
    intervals: dict[str, Interval | None] = {}
    if sides is not None:
        sampled = [m for m in names if m not in RELATIVE_NOISE and m in base.metrics and m in head.metrics]
        intervals = bootstrap_deltas(
            sampled, sides.base, sides.head, paired=sides.paired, resamples=resamples, seed=seed, confidence=confidence
        )
    rows = tuple(_row(m, base, head, intervals.get(m), resampled=sides is not None) for m in names)
    test = None
    if sides is not None and sides.paired and sides.base.correct is not None:
        assert sides.head.correct is not None
        test = mcnemar(sides.base.correct, sides.head.correct)
    return ModelComparison(
        policy.name,
        policy.task,
        "compared",
        rows,
        gate_results(policy.gates, _by_name(rows), "compared"),
        base,
        head,
        mcnemar=test,
        paired=sides is not None and sides.paired,
        dataset_warning=warning,
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
    names = list(dict.fromkeys([*policy.metrics, *policy.gates, *ALWAYS_SHOWN]))
    if head is None:
        head = Evaluation(policy.name, policy.task, {}, error="no evaluation result for the head")
    if head.error is not None:
        return _head_failed(policy, names, base, head)
    if base is None or base.error is not None:
        return _without_base(policy, names, base, head)
    return _compared(policy, names, base, head, resamples=resamples, seed=seed, confidence=confidence)


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
