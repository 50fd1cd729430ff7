"""Live tracking's pure core: what the replicas serve → committed, rolling out, live or failed, and why."""

from __future__ import annotations

import pytest

from bot.deploy.rollout import Rollout, Serving, describe, duration, judge

NEW, OLD, ODD = "a" * 64, "b" * 64, "c" * 64
T0 = 1_000_000.0


def rollout(phase: str = "committed", previous: str | None = OLD, deadline: float = 600.0) -> Rollout:
    return Rollout(phase=phase, sha256=NEW, previous_sha256=previous, committed_at=T0, deadline=deadline)


def test_right_after_the_commit_the_old_replicas_still_serving_keep_it_committed() -> None:
    step = judge(rollout(), Serving({OLD: 2}), T0 + 5)

    assert step.phase == "committed"
    assert (
        step.detail
        == "0 of 2 ready replicas serve the new file aaaaaaaaaaaa; 2 replicas still serve the old file bbbbbbbbbbbb"
    )


def test_one_replica_on_the_new_file_and_one_on_the_old_is_rolling_out_not_live() -> None:
    step = judge(rollout(), Serving({NEW: 1, OLD: 1}), T0 + 30)

    assert step.phase == "rolling_out"
    assert "1 of 2 ready replicas serve the new file" in step.detail
    assert "1 replica still serves the old file bbbbbbbbbbbb" in step.detail


def test_every_ready_replica_on_the_new_file_is_live() -> None:
    assert judge(rollout("rolling_out"), Serving({NEW: 2}), T0 + 40).phase == "live"
    # A first deploy (nothing ran before) is live as soon as its replicas serve it.
    assert judge(rollout(previous=None), Serving({NEW: 1}), T0 + 5).phase == "live"


def test_live_wins_even_at_the_deadline() -> None:
    assert judge(rollout(), Serving({NEW: 3}), T0 + 600).phase == "live"


def test_once_rolling_out_it_never_goes_back_to_committed() -> None:
    # All replicas restarting at once: nothing up for a moment.
    assert judge(rollout("rolling_out"), Serving({}), T0 + 20).phase == "rolling_out"
    assert judge(rollout("committed"), Serving({}), T0 + 20).phase == "committed"


def test_a_replica_serving_a_third_file_counts_as_movement() -> None:
    step = judge(rollout(), Serving({OLD: 1, ODD: 1}), T0 + 20)

    assert step.phase == "rolling_out"
    assert "1 replica serves cccccccccccc, which is neither the new nor the old file" in step.detail


@pytest.mark.parametrize(
    ("serving", "reason"),
    [
        (
            Serving({OLD: 2}),
            "not live after 10m: 0 of 2 ready replicas serve the new file aaaaaaaaaaaa; "
            "2 replicas still serve the old file bbbbbbbbbbbb",
        ),
        (Serving({}), "not live after 10m: no replica is up"),
        (
            Serving({NEW: 1, OLD: 1}),
            "not live after 10m: 1 of 2 ready replicas serve the new file aaaaaaaaaaaa; "
            "1 replica still serves the old file",
        ),
        (
            Serving({ODD: 1}),
            "not live after 10m: 0 of 1 ready replicas serve the new file aaaaaaaaaaaa; "
            "1 replica serves cccccccccccc, which is neither",
        ),
    ],
)
def test_not_live_by_the_deadline_fails_saying_what_the_bot_saw(serving: Serving, reason: str) -> None:
    step = judge(rollout(), serving, T0 + 600)

    assert step.phase == "failed" and step.certain
    assert step.detail.startswith(reason)


def test_one_second_before_the_deadline_it_is_still_waiting() -> None:
    assert judge(rollout(), Serving({OLD: 2}), T0 + 599).phase == "committed"


def test_when_prometheus_fails_the_phase_stays_and_a_late_failure_is_uncertain() -> None:
    blind = Serving.failed("Prometheus at http://prom is unreachable")

    early = judge(rollout("rolling_out"), blind, T0 + 10)
    late = judge(rollout(), blind, T0 + 700)

    assert (
        early.phase == "rolling_out" and "the bot cannot tell: Prometheus at http://prom is unreachable" in early.detail
    )
    assert late.phase == "failed" and not late.certain
    assert late.detail == "not live after 10m: the bot cannot tell: Prometheus at http://prom is unreachable"


def test_a_redeploy_of_the_same_file_is_live_when_it_is_served() -> None:
    same = Rollout(phase="committed", sha256=NEW, previous_sha256=NEW, committed_at=T0, deadline=60)

    assert judge(same, Serving({NEW: 2}), T0 + 1).phase == "live"
    assert describe(same, Serving({NEW: 1})) == "1 of 1 ready replicas serve the new file aaaaaaaaaaaa"


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (45, "45s"), (68, "1m 8s"), (600, "10m"), (3720, "1h 2m")])
def test_durations_read_the_way_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text
