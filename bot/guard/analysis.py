"""The guard's decision as a pure state machine: (check, previous state, query result, now) -> verdict.

Rules, in the order they apply:

- During ``initial_delay`` (from the state's ``first_seen``) nothing counts: the verdict is inconclusive.
- A query error (Prometheus down, bad query) counts toward ``consecutive_error_limit``; reaching it
  raises an alert once per streak. Errors never roll back.
- NaN and ±Inf are inconclusive. An empty result follows ``on_no_data`` (default inconclusive), so
  missing data never rolls back unless the repository asked for ``on_no_data: fail``.
- An inconclusive result neither breaks nor extends a run of breaches.
- A pass ends the run of breaches and closes the incident; ``failure_limit`` breaches in a row open
  an incident and decide ROLLBACK exactly once for it; later breaches are only DEGRADED.

The state is a frozen dataclass of plain values: ``to_dict``/``from_dict`` round-trip it through JSON.
Keep one state per (environment, model, version, check); start a fresh one when the version changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.guard.prometheus import Outcome, QueryResult
from bot.guard.templates import DURATION_RE

MAX_OBSERVATIONS = 30  # recent values kept for the evidence chart of a rollback PR
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class OnNoData(StrEnum):
    INCONCLUSIVE = "inconclusive"
    PASS = "pass"
    FAIL = "fail"


class Decision(StrEnum):
    HEALTHY = "healthy"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    ERROR_ALERT = "error-alert"
    DEGRADED = "degraded"
    ROLLBACK = "rollback"

    @property
    def health(self) -> str:
        """What a status page shows: healthy, degraded, inconclusive or error."""
        return {
            Decision.ROLLBACK: "degraded",
            Decision.ERROR_ALERT: "error",
        }.get(self, self.value)


# Worst first: the deployment's overall decision is the worst of its checks'.
_SEVERITY = [
    Decision.ROLLBACK,
    Decision.DEGRADED,
    Decision.ERROR_ALERT,
    Decision.ERROR,
    Decision.INCONCLUSIVE,
    Decision.HEALTHY,
]


def worst(decisions: Iterable[Decision]) -> Decision:
    return min(decisions, key=_SEVERITY.index, default=Decision.INCONCLUSIVE)


class CheckConfigError(ValueError):
    """A check in the repository config is invalid; ``problems`` name the keys to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_seconds(value: Any, key: str) -> float:
    """``30``, ``"30s"``, ``"5m"``, ``"1h30m"`` -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and DURATION_RE.match(value):
        parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", value)
        return sum(int(n) * _UNITS[unit] for n, unit in parts)
    raise CheckConfigError([f"{key}: {value!r} is not a duration like 30s, 5m or 1h"])


@dataclass(frozen=True)
class CheckConfig:
    template: str
    window: str = "5m"
    max: float | None = None
    min: float | None = None
    failure_limit: int = 3
    initial_delay: float = 0.0  # seconds
    on_no_data: OnNoData = OnNoData.INCONCLUSIVE
    consecutive_error_limit: int = 3
    name: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.max is None and self.min is None:
            problems.append(f"check {self.template!r}: set max or min (the threshold)")
        if self.max is not None and self.min is not None and self.min > self.max:
            problems.append(f"check {self.template!r}: min {self.min} is above max {self.max}")
        if self.failure_limit < 1:
            problems.append(f"check {self.template!r}: failure_limit must be at least 1")
        if self.consecutive_error_limit < 1:
            problems.append(f"check {self.template!r}: consecutive_error_limit must be at least 1")
        if self.initial_delay < 0:
            problems.append(f"check {self.template!r}: initial_delay must not be negative")
        if not DURATION_RE.match(self.window):
            problems.append(f"check {self.template!r}: window {self.window!r} is not a duration like 5m")
        if problems:
            raise CheckConfigError(problems)

    @property
    def key(self) -> str:
        return self.name or self.template

    def threshold(self) -> str:
        bounds = [
            f"max {self.max:g}" if self.max is not None else "",
            f"min {self.min:g}" if self.min is not None else "",
        ]
        return " and ".join(b for b in bounds if b)

    def breached_by(self, value: float) -> bool:
        return (self.max is not None and value > self.max) or (self.min is not None and value < self.min)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "check") -> CheckConfig:
        """Build from a repository-config mapping; errors name ``where.key``."""
        known = {
            "template",
            "window",
            "max",
            "min",
            "failure_limit",
            "initial_delay",
            "on_no_data",
            "consecutive_error_limit",
            "name",
        }
        problems = [f"{where}.{k}: unknown key (known: {', '.join(sorted(known))})" for k in data if k not in known]
        kwargs: dict[str, Any] = {}
        if not isinstance(data.get("template"), str):
            problems.append(f"{where}.template: name one of the server's PromQL templates, e.g. error_rate")
        else:
            kwargs["template"] = data["template"]
        for key in ("max", "min"):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    problems.append(f"{where}.{key}: must be a finite number, got {value!r}")
                else:
                    kwargs[key] = float(value)
        for key in ("failure_limit", "consecutive_error_limit"):
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    problems.append(f"{where}.{key}: must be a whole number ≥ 1, got {value!r}")
                else:
                    kwargs[key] = value
        if "window" in data:
            kwargs["window"] = str(data["window"])
        if "initial_delay" in data:
            try:
                kwargs["initial_delay"] = parse_seconds(data["initial_delay"], f"{where}.initial_delay")
            except CheckConfigError as exc:
                problems.extend(exc.problems)
        if "on_no_data" in data:
            try:
                kwargs["on_no_data"] = OnNoData(data["on_no_data"])
            except ValueError:
                problems.append(f"{where}.on_no_data: must be inconclusive, pass or fail, got {data['on_no_data']!r}")
        if "name" in data:
            kwargs["name"] = str(data["name"])
        if problems:
            raise CheckConfigError(problems)
        try:
            return cls(**kwargs)
        except CheckConfigError as exc:
            raise CheckConfigError([f"{where}: {p}" for p in exc.problems]) from exc


@dataclass(frozen=True)
class CheckState:
    first_seen: float | None = None  # epoch seconds; preset it to the deploy time if known
    consecutive_failures: int = 0
    consecutive_errors: int = 0
    incident_open: bool = False
    alert_open: bool = False
    last_checked: float | None = None
    last_outcome: str | None = None
    last_value: float | None = None  # finite values only, so the state stays strict JSON
    last_error: str | None = None
    observations: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["observations"] = [list(o) for o in self.observations]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckState:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["observations"] = tuple((float(t), float(v)) for t, v in fields.get("observations", ()))
        return cls(**fields)


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    state: CheckState
    reason: str


def analyse(config: CheckConfig, state: CheckState, result: QueryResult, now: float) -> Verdict:
    first_seen = state.first_seen if state.first_seen is not None else now
    seen = replace(state, first_seen=first_seen, last_checked=now, last_outcome=result.outcome.value)
    name = config.key

    if now - first_seen < config.initial_delay:
        left = config.initial_delay - (now - first_seen)
        return Verdict(Decision.INCONCLUSIVE, seen, f"{name}: initial delay, checks count in {left:.0f}s")

    if result.outcome is Outcome.ERROR:
        errors = state.consecutive_errors + 1
        raise_alert = errors >= config.consecutive_error_limit and not state.alert_open
        new = replace(
            seen,
            consecutive_errors=errors,
            alert_open=state.alert_open or raise_alert,
            last_error=result.error,
        )
        limit = config.consecutive_error_limit
        reason = f"{name}: query failed {errors} time(s) in a row (alert at {limit}): {result.error}"
        return Verdict(Decision.ERROR_ALERT if raise_alert else Decision.ERROR, new, reason)

    answered = replace(seen, consecutive_errors=0, alert_open=False, last_error=None)
    if result.outcome is Outcome.VALUE and result.value is not None:
        observations = (*state.observations, (now, result.value))[-MAX_OBSERVATIONS:]
        answered = replace(answered, last_value=result.value, observations=observations)
        breached = config.breached_by(result.value)
        observed = f"{result.value:g} against {config.threshold()}"
    elif result.outcome is Outcome.NO_DATA and config.on_no_data is not OnNoData.INCONCLUSIVE:
        breached = config.on_no_data is OnNoData.FAIL
        observed = f"no data, counted as {config.on_no_data.value} (on_no_data)"
    else:
        why = "no data" if result.outcome is Outcome.NO_DATA else f"value is {result.describe()}"
        return Verdict(Decision.INCONCLUSIVE, answered, f"{name}: inconclusive, {why}")

    if not breached:
        healed = replace(answered, consecutive_failures=0, incident_open=False)
        return Verdict(Decision.HEALTHY, healed, f"{name}: {observed}, passing")

    failures = state.consecutive_failures + 1
    roll_back = failures >= config.failure_limit and not state.incident_open
    failing = replace(answered, consecutive_failures=failures, incident_open=state.incident_open or roll_back)
    reason = f"{name}: {observed}, breach {failures} of {config.failure_limit} in a row"
    if roll_back:
        reason += ": rolling back"
    elif state.incident_open:
        reason += " (incident already open)"
    return Verdict(Decision.ROLLBACK if roll_back else Decision.DEGRADED, failing, reason)
