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

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.config.repo import GUARD_DEFAULTS
from bot.guard.prometheus import Outcome, QueryResult

MAX_OBSERVATIONS = 30  # recent values kept for the evidence chart of a rollback PR


class OnNoData(StrEnum):
    INCONCLUSIVE = "inconclusive"
    PASS = "pass"
    FAIL = "fail"


_DEFAULT_ON_NO_DATA = OnNoData(GUARD_DEFAULTS.on_no_data)


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


@dataclass(frozen=True)
class CheckConfig:
    """One check of a validated ``guard`` section (bot.watcher.guard_checks builds it from bot.config.repo,
    the one validator of `.modelship.yml`); the defaults are that schema's, so a check built by hand
    (tests, bench) behaves like one the repository left at its defaults."""

    template: str
    window: str = "5m"
    max: float | None = None
    min: float | None = None
    failure_limit: int = GUARD_DEFAULTS.failure_limit
    initial_delay: float = GUARD_DEFAULTS.initial_delay  # seconds
    on_no_data: OnNoData = _DEFAULT_ON_NO_DATA
    consecutive_error_limit: int = GUARD_DEFAULTS.consecutive_error_limit
    name: str | None = None

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
