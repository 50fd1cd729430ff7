"""The analysis state machine: what each kind of answer does to the counts and the decision."""

from __future__ import annotations

import json
import math

import pytest

from bot.config.repo import Guard, RepoConfig, RepoConfigError, parse_repo_config
from bot.guard.analysis import (
    CheckConfig,
    CheckState,
    Decision,
    OnNoData,
    Verdict,
    analyse,
    worst,
)
from bot.guard.prometheus import QueryResult
from bot.guard.watcher import guard_checks

ERROR_RATE = CheckConfig(template="error_rate", max=0.02, failure_limit=3, consecutive_error_limit=2, initial_delay=0)
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
    config = CheckConfig(template="error_rate", max=0.02, failure_limit=3, on_no_data=on_no_data, initial_delay=0)
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
    config = CheckConfig(template="accuracy", min=0.9, failure_limit=1, initial_delay=0)
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


def test_a_check_is_read_from_the_validated_repository_config() -> None:
    """bot.config.repo validates once; the guard takes its values, defaults included (no second validator)."""
    config = parse_repo_config(GUARDED.format(check="{template: latency_p95, max: 0.05, window: 2m}"))
    [check] = guard_checks(guarded(config))
    assert (check.template, check.max, check.on_no_data) == ("latency_p95", 0.05, OnNoData.INCONCLUSIVE)
    assert (check.failure_limit, check.consecutive_error_limit, check.initial_delay) == (3, 5, 60.0)
    by_hand = CheckConfig(template="latency_p95", max=0.05, window=check.window, name=check.name)
    assert by_hand == check, "a check built by hand has the schema's defaults"


@pytest.mark.parametrize(
    "check, fragment",
    [
        ("{template: error_rate}", "needs a threshold: add max or min"),
        ("{template: error_rate, max: 1, min: 2}", "min 2 is above its max 1"),
        ("{template: error_rate, max: high}", "max"),
        ("{template: error_rate, max: 1, window: 5 minutes}", "window"),
        ("{template: error_rate, max: 1, query: up}", "query"),
        ("{max: 1}", "template"),
    ],
)
def test_a_bad_check_names_the_key_to_fix(check: str, fragment: str) -> None:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(GUARDED.format(check=check))
    assert "environments.production.guard.checks[0]" in str(caught.value) and fragment in str(caught.value)


def guarded(config: RepoConfig) -> Guard:
    guard = config.environments["production"].guard
    assert guard is not None
    return guard


GUARDED = """version: 1
models:
  - {{name: iris, path: models/iris.onnx, task: classification, dataset: {{path: data/iris.csv, target: y}}}}
deploy: {{repository: acme/deploy}}
environments:
  production:
    guard:
      checks:
        - {check}
"""
