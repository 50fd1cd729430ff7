"""The analysis state machine: what each kind of answer does to the counts and the decision."""

from __future__ import annotations

import json
import math

import pytest

from bot.guard.analysis import (
    CheckConfig,
    CheckConfigError,
    CheckState,
    Decision,
    OnNoData,
    Verdict,
    analyse,
    parse_seconds,
    worst,
)
from bot.guard.prometheus import QueryResult

ERROR_RATE = CheckConfig(template="error_rate", max=0.02, failure_limit=3, consecutive_error_limit=2)
BREACH = QueryResult.of(0.5)
PASS = QueryResult.of(0.001)
NO_DATA = QueryResult.no_data()
NAN = QueryResult.of(math.nan)
INF = QueryResult.of(math.inf)
DOWN = QueryResult.failed("Prometheus at http://127.0.0.1:1 is unreachable")


def run(config: CheckConfig, results: list[QueryResult], state: CheckState | None = None) -> list[Verdict]:
    """Feed one result per 30 s interval, carrying the state along as the watcher would."""
    verdicts = []
    state = state or CheckState(first_seen=0.0)
    for i, result in enumerate(results):
        verdict = analyse(config, state, result, now=30.0 * (i + 1))
        verdicts.append(verdict)
        state = verdict.state
    return verdicts


def decisions(config: CheckConfig, results: list[QueryResult]) -> list[Decision]:
    return [v.decision for v in run(config, results)]


D = Decision


@pytest.mark.parametrize(
    "results, expected",
    [
        ([PASS, PASS], [D.HEALTHY, D.HEALTHY]),
        ([BREACH, BREACH], [D.DEGRADED, D.DEGRADED]),
        ([BREACH, BREACH, BREACH], [D.DEGRADED, D.DEGRADED, D.ROLLBACK]),
        ([BREACH, BREACH, PASS, BREACH, BREACH], [D.DEGRADED, D.DEGRADED, D.HEALTHY, D.DEGRADED, D.DEGRADED]),
        (
            [BREACH, BREACH, BREACH, BREACH, BREACH],
            [D.DEGRADED, D.DEGRADED, D.ROLLBACK, D.DEGRADED, D.DEGRADED],
        ),
        ([NO_DATA] * 5, [D.INCONCLUSIVE] * 5),
        ([NAN, INF, QueryResult.of(-math.inf)], [D.INCONCLUSIVE] * 3),
        ([DOWN, DOWN, DOWN, DOWN], [D.ERROR, D.ERROR_ALERT, D.ERROR, D.ERROR]),
        ([DOWN, PASS, DOWN, DOWN], [D.ERROR, D.HEALTHY, D.ERROR, D.ERROR_ALERT]),
        # Inconclusive answers neither break nor extend a run of breaches.
        (
            [BREACH, NAN, BREACH, NO_DATA, BREACH],
            [D.DEGRADED, D.INCONCLUSIVE, D.DEGRADED, D.INCONCLUSIVE, D.ROLLBACK],
        ),
        ([BREACH, DOWN, BREACH, BREACH], [D.DEGRADED, D.ERROR, D.DEGRADED, D.ROLLBACK]),
    ],
    ids=[
        "passes",
        "breaches-below-failure-limit",
        "breaches-reach-failure-limit",
        "a-pass-resets-the-run",
        "one-rollback-per-incident",
        "no-data",
        "nan-and-inf",
        "prometheus-down-alerts-once-never-rolls-back",
        "an-answer-ends-the-error-streak",
        "inconclusive-holds-the-count",
        "errors-hold-the-count",
    ],
)
def test_decision_sequence(results: list[QueryResult], expected: list[Decision]) -> None:
    assert decisions(ERROR_RATE, results) == expected


def test_missing_data_never_rolls_back_by_default_however_long_it_lasts() -> None:
    assert ERROR_RATE.on_no_data is OnNoData.INCONCLUSIVE
    assert Decision.ROLLBACK not in decisions(ERROR_RATE, [NO_DATA, NAN, INF, DOWN] * 10)


@pytest.mark.parametrize(
    "on_no_data, expected",
    [
        (OnNoData.PASS, [D.DEGRADED, D.HEALTHY, D.DEGRADED]),
        (OnNoData.FAIL, [D.DEGRADED, D.DEGRADED, D.ROLLBACK]),
        (OnNoData.INCONCLUSIVE, [D.DEGRADED, D.INCONCLUSIVE, D.DEGRADED]),
    ],
)
def test_on_no_data_is_the_repositorys_explicit_choice(on_no_data: OnNoData, expected: list[Decision]) -> None:
    config = CheckConfig(template="error_rate", max=0.02, failure_limit=3, on_no_data=on_no_data)
    assert decisions(config, [BREACH, NO_DATA, BREACH]) == expected


def test_nothing_counts_during_the_initial_delay() -> None:
    config = CheckConfig(template="error_rate", max=0.02, failure_limit=2, initial_delay=90)
    verdicts = run(config, [BREACH, BREACH, BREACH, BREACH])  # at 30, 60, 90, 120 s after first_seen
    assert [v.decision for v in verdicts] == [D.INCONCLUSIVE, D.INCONCLUSIVE, D.DEGRADED, D.ROLLBACK]
    assert "initial delay" in verdicts[0].reason


def test_first_seen_is_set_by_the_first_check_when_not_preset() -> None:
    config = CheckConfig(template="error_rate", max=0.02, initial_delay=60)
    verdict = analyse(config, CheckState(), BREACH, now=1000.0)
    assert verdict.state.first_seen == 1000.0 and verdict.decision is D.INCONCLUSIVE


def test_a_min_threshold_breaches_below_it() -> None:
    config = CheckConfig(template="accuracy", min=0.9, failure_limit=1)
    assert decisions(config, [QueryResult.of(0.95), QueryResult.of(0.5)]) == [D.HEALTHY, D.ROLLBACK]


def test_the_rollback_reason_carries_the_observed_value_and_threshold() -> None:
    reason = run(ERROR_RATE, [BREACH] * 3)[-1].reason
    assert "0.5 against max 0.02" in reason and "breach 3 of 3" in reason


def test_the_state_survives_a_json_round_trip_mid_incident() -> None:
    """A restart between breaches loses no counts: the lead persists to_dict() and reloads it."""
    before = run(ERROR_RATE, [BREACH, BREACH])[-1].state
    restored = CheckState.from_dict(json.loads(json.dumps(before.to_dict())))
    assert restored == before
    after = analyse(ERROR_RATE, restored, BREACH, now=90.0)
    assert after.decision is D.ROLLBACK
    again = analyse(ERROR_RATE, CheckState.from_dict(json.loads(json.dumps(after.state.to_dict()))), BREACH, 120.0)
    assert again.decision is D.DEGRADED  # the incident is already open: no second rollback


def test_state_keeps_only_finite_values_for_the_evidence_chart() -> None:
    state = run(ERROR_RATE, [PASS, NAN, BREACH, INF])[-1].state
    assert state.observations == ((30.0, 0.001), (90.0, 0.5))
    assert state.last_value == 0.5
    json.dumps(state.to_dict(), allow_nan=False)  # strict JSON: no NaN or Infinity in the state


def test_the_worst_check_decides_for_the_deployment() -> None:
    assert worst([D.HEALTHY, D.ERROR_ALERT, D.DEGRADED]) is D.DEGRADED
    assert worst([D.HEALTHY, D.ROLLBACK]) is D.ROLLBACK
    assert worst([]) is D.INCONCLUSIVE
    assert D.ROLLBACK.health == "degraded" and D.ERROR_ALERT.health == "error"


def test_a_check_is_read_from_repository_config() -> None:
    check = CheckConfig.from_mapping(
        {"template": "latency_p95", "max": 0.05, "window": "2m", "initial_delay": "1m", "on_no_data": "pass"}
    )
    assert (check.max, check.window, check.initial_delay, check.on_no_data) == (
        0.05,
        "2m",
        60.0,
        OnNoData.PASS,
    )
    assert check.failure_limit == 3 and check.consecutive_error_limit == 3


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"template": "error_rate"}, "set max or min"),
        ({"template": "error_rate", "max": 1, "failure_limit": 0}, "guard.checks[0].failure_limit"),
        ({"template": "error_rate", "max": "high"}, "guard.checks[0].max: must be a finite number"),
        ({"template": "error_rate", "max": 1, "on_no_data": "rollback"}, "inconclusive, pass or fail"),
        ({"template": "error_rate", "max": 1, "window": "5 minutes"}, "window"),
        ({"template": "error_rate", "max": 1, "query": "up"}, "guard.checks[0].query: unknown key"),
        ({"max": 1}, "guard.checks[0].template"),
    ],
)
def test_a_bad_check_names_the_key_to_fix(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(CheckConfigError) as caught:
        CheckConfig.from_mapping(data, where="guard.checks[0]")
    assert fragment in str(caught.value)


def test_durations_parse_to_seconds() -> None:
    assert [parse_seconds(v, "k") for v in ("30s", "5m", "1h30m", 45, "500ms")] == [30, 300, 5400, 45, 0.5]
    with pytest.raises(CheckConfigError, match="k: 'soon'"):
        parse_seconds("soon", "k")
