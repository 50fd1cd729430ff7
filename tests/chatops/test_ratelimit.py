"""A per-user token bucket: a burst is allowed, a flood is answered once, tokens come back over time."""

from __future__ import annotations

import pytest

from bot.chatops.ratelimit import Bucket, RateLimiter, Verdict, step

ALLOW, NOTIFY, DENY = Verdict.ALLOW, Verdict.DENY_AND_NOTIFY, Verdict.DENY


def test_a_burst_up_to_capacity_is_allowed_then_the_flood_is_answered_once() -> None:
    limiter = RateLimiter(capacity=3, per_second=1 / 10)
    verdicts = [limiter.check("mallory", now=0.0) for _ in range(8)]
    assert verdicts == [ALLOW, ALLOW, ALLOW, NOTIFY, DENY, DENY, DENY, DENY]


def test_tokens_refill_with_time_and_a_later_flood_is_answered_again() -> None:
    limiter = RateLimiter(capacity=2, per_second=1 / 10)
    assert [limiter.check("u", 0.0) for _ in range(3)] == [ALLOW, ALLOW, NOTIFY]
    assert limiter.check("u", 5.0) == DENY  # half a token
    assert limiter.check("u", 10.0) == ALLOW
    assert limiter.check("u", 10.0) == NOTIFY


def test_users_have_separate_buckets() -> None:
    limiter = RateLimiter(capacity=1, per_second=1 / 60)
    assert limiter.check("alice", 0.0) == ALLOW
    assert limiter.check("alice", 0.0) == NOTIFY
    assert limiter.check("bob", 0.0) == ALLOW


def test_retry_after_says_when_a_token_is_back() -> None:
    limiter = RateLimiter(capacity=1, per_second=1 / 12)
    assert limiter.retry_after("u", 0.0) == 0.0
    limiter.check("u", 0.0)
    assert limiter.retry_after("u", 0.0) == pytest.approx(12.0)
    assert limiter.retry_after("u", 9.0) == pytest.approx(3.0)


def test_a_clock_going_backwards_neither_refills_nor_crashes() -> None:
    bucket, verdict = step(Bucket(tokens=0.0, updated=100.0), 50.0, capacity=5, per_second=1.0)
    assert verdict == NOTIFY
    assert bucket.tokens == 0.0


def test_full_buckets_are_forgotten_when_there_are_too_many_users() -> None:
    limiter = RateLimiter(capacity=1, per_second=1.0, max_users=2)
    limiter.check("a", 0.0)
    limiter.check("b", 0.0)
    assert len(limiter) == 2
    limiter.check("c", 10.0)  # a and b are full again by now
    assert len(limiter) == 1
    assert limiter.check("c", 10.0) == NOTIFY  # c's own state is kept


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RateLimiter(capacity=0)
