"""The review's full comparison as the `reviews.report` column keeps it, so that the dashboard shows what
the PR comment shows (metrics with intervals, gates, the optimization table) without GitHub.

Pure: ``report_to_json`` is written with the review record (bot.store.reviews.save_review), and
``report_from_json`` reads it back leniently (a row written by an older version, or none, is ``None``).
Per-row predictions and confusion matrices are left out: they are large and the comment's folded
details section keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from bot.review.compare import MetricComparison, ModelComparison, ReviewComparison
from bot.review.gates import GateResult
from bot.review.stats import Interval

VERSION = 1


@dataclass(frozen=True)
class StoredReport:
    comparison: ReviewComparison
    optimization: Mapping[str, Any] | None
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _metric(row: MetricComparison) -> dict[str, Any]:
    return {
        "name": row.name,
        "base": row.base,
        "head": row.head,
        "delta": row.delta,
        "ci": [row.ci.low, row.ci.high] if row.ci else None,
        "verdict": row.verdict,
        "higher_is_better": row.higher_is_better,
        "note": row.note,
    }


def _gate(gate: GateResult) -> dict[str, Any]:
    return {
        "metric": gate.metric,
        "rule": gate.rule,
        "threshold": gate.threshold,
        "value": gate.value,
        "status": gate.status,
        "reason": gate.reason,
    }


def report_to_json(
    comparison: ReviewComparison,
    optimization: Mapping[str, Any] | None,
    notes: Sequence[str] = (),
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "models": [
            {
                "name": m.name,
                "task": m.task,
                "status": m.status,
                "paired": m.paired,
                "dataset_warning": m.dataset_warning,
                "error": m.error,
                "metrics": [_metric(r) for r in m.metrics],
                "gates": [_gate(g) for g in m.gates],
            }
            for m in comparison.models
        ],
        "optimization": dict(optimization) if optimization else None,
        "notes": list(notes),
        "problems": list(problems),
    }


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _metric_from(doc: Mapping[str, Any]) -> MetricComparison:
    ci = doc.get("ci")
    low, high = (_float(ci[0]), _float(ci[1])) if isinstance(ci, list) and len(ci) == 2 else (None, None)
    return MetricComparison(
        name=str(doc.get("name", "?")),
        base=_float(doc.get("base")),
        head=_float(doc.get("head")),
        delta=_float(doc.get("delta")),
        ci=Interval(low, high) if low is not None and high is not None else None,
        verdict=cast(Any, doc.get("verdict") if doc.get("verdict") in _VERDICTS else "n/a"),
        higher_is_better=doc.get("higher_is_better") is not False,
        note=str(doc["note"]) if doc.get("note") else None,
    )


def _gate_from(doc: Mapping[str, Any]) -> GateResult:
    return GateResult(
        metric=str(doc.get("metric", "?")),
        rule=cast(Any, doc.get("rule") if doc.get("rule") in ("min", "max", "min_delta", "max_delta") else "min"),
        threshold=_float(doc.get("threshold")) or 0.0,
        value=_float(doc.get("value")),
        status=cast(Any, doc.get("status") if doc.get("status") in ("pass", "fail", "skipped") else "skipped"),
        reason=str(doc.get("reason") or ""),
    )


_VERDICTS = ("better", "worse", "within_noise", "failed", "n/a")
_STATUSES = ("compared", "new", "head_failed", "base_failed")


def report_from_json(doc: Any) -> StoredReport | None:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("models"), list):
        return None
    models = tuple(
        ModelComparison(
            name=str(m.get("name", "?")),
            task=str(m.get("task", "")),
            status=cast(Any, m.get("status") if m.get("status") in _STATUSES else "compared"),
            metrics=tuple(_metric_from(r) for r in _list(m.get("metrics")) if isinstance(r, Mapping)),
            gates=tuple(_gate_from(g) for g in _list(m.get("gates")) if isinstance(g, Mapping)),
            base=None,
            head=None,
            paired=m.get("paired") is True,
            dataset_warning=str(m["dataset_warning"]) if m.get("dataset_warning") else None,
            error=str(m["error"]) if m.get("error") else None,
        )
        for m in doc["models"]
        if isinstance(m, Mapping)
    )
    optimization = doc.get("optimization")
    return StoredReport(
        ReviewComparison(models),
        optimization if isinstance(optimization, Mapping) else None,
        tuple(str(n) for n in _list(doc.get("notes"))),
        tuple(str(p) for p in _list(doc.get("problems"))),
    )
