"""Gates: the repository config's pass/fail rules per metric, judged on the head value or the delta.

Missing data never passes a gate; a delta rule is skipped (not failed) when there is no base to
compare with, and every rule fails when the head itself failed to evaluate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

GateStatus = Literal["pass", "fail", "skipped"]
Rule = Literal["min", "max", "min_delta", "max_delta"]
RULES: tuple[Rule, ...] = ("min", "max", "min_delta", "max_delta")


class GateLike(Protocol):
    """One gate of the repository config (bot.config.repo.Gate satisfies it)."""

    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...
    @property
    def min_delta(self) -> float | None: ...
    @property
    def max_delta(self) -> float | None: ...


class Measured(Protocol):
    """A metric's head value and head − base delta (compare.MetricComparison satisfies it)."""

    @property
    def head(self) -> float | None: ...
    @property
    def delta(self) -> float | None: ...


@dataclass(frozen=True)
class GateResult:
    metric: str
    rule: Rule
    threshold: float
    value: float | None
    status: GateStatus
    reason: str

    @property
    def passed(self) -> bool:
        return self.status != "fail"


def _why_not_judged(is_delta: bool, status: str, base_error: str | None) -> tuple[GateStatus, str] | None:
    """A rule the comparison's status decides before any value is looked at."""
    if status == "head_failed":
        return "fail", "head model failed to evaluate"
    if is_delta and status == "new":
        return "skipped", "no base model to compare"
    if is_delta and status == "base_failed":
        return "skipped", f"base model failed to evaluate: {base_error}"
    return None


def judge(
    metric: str, rule: Rule, threshold: float, row: Measured | None, status: str, base_error: str | None = None
) -> GateResult:
    """One rule of one gate. ``status`` is the comparison's (compared, new, head_failed, base_failed)."""
    is_delta = rule.endswith("delta")
    decided = _why_not_judged(is_delta, status, base_error)
    if decided is not None:
        return GateResult(metric, rule, threshold, None, *decided)
    value = None if row is None else (row.delta if is_delta else row.head)
    if value is None:
        side = "base or head" if is_delta else "head"
        return GateResult(metric, rule, threshold, None, "fail", f"{metric} was not reported for the {side}")
    label = f"Δ {metric}" if is_delta else metric
    sign = "≥" if rule.startswith("min") else "≤"
    ok = value >= threshold if rule.startswith("min") else value <= threshold
    reason = (
        f"{label} = {value:.4g} {sign} {threshold:g}" if ok else f"{label} = {value:.4g}, required {sign} {threshold:g}"
    )
    return GateResult(metric, rule, threshold, value, "pass" if ok else "fail", reason)


def gate_results(
    gates: Mapping[str, GateLike], rows: Mapping[str, Measured], status: str, base_error: str | None = None
) -> tuple[GateResult, ...]:
    """Every rule set in ``gates``, in config order and min, max, min_delta, max_delta within a gate."""
    return tuple(
        judge(metric, rule, threshold, rows.get(metric), status, base_error)
        for metric, gate in gates.items()
        for rule in RULES
        if (threshold := getattr(gate, rule)) is not None
    )
