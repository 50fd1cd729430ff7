"""A per-user token bucket: a burst is allowed, a flood is answered once, tokens come back over time;
kept in the database, a bucket survives a restart and is shared by replicas."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.chatops.ratelimit import Bucket, MemoryBuckets, RateLimiter, Verdict, step
from bot.chatops.store import BUCKETS, SqlBuckets

ALLOW, NOTIFY, DENY = Verdict.ALLOW, Verdict.DENY_AND_NOTIFY, Verdict.DENY


async def checks(limiter: RateLimiter, user: str, now: float, n: int) -> list[Verdict]:
    return [await limiter.check(user, now) for _ in range(n)]


async def test_a_burst_up_to_capacity_is_allowed_then_the_flood_is_answered_once() -> None:
    limiter = RateLimiter(capacity=3, per_second=1 / 10)
    assert await checks(limiter, "mallory", 0.0, 8) == [ALLOW, ALLOW, ALLOW, NOTIFY, DENY, DENY, DENY, DENY]


async def test_tokens_refill_with_time_and_a_later_flood_is_answered_again() -> None:
    limiter = RateLimiter(capacity=2, per_second=1 / 10)
    assert await checks(limiter, "u", 0.0, 3) == [ALLOW, ALLOW, NOTIFY]
    assert await limiter.check("u", 5.0) == DENY  # half a token
    assert await limiter.check("u", 10.0) == ALLOW
    assert await limiter.check("u", 10.0) == NOTIFY


async def test_users_have_separate_buckets() -> None:
    limiter = RateLimiter(capacity=1, per_second=1 / 60)
    assert await limiter.check("alice", 0.0) == ALLOW
    assert await limiter.check("alice", 0.0) == NOTIFY
    assert await limiter.check("bob", 0.0) == ALLOW


async def test_retry_after_says_when_a_token_is_back() -> None:
    limiter = RateLimiter(capacity=1, per_second=1 / 12)
    assert await limiter.retry_after("u", 0.0) == 0.0
    await limiter.check("u", 0.0)
    assert await limiter.retry_after("u", 0.0) == pytest.approx(12.0)
    assert await limiter.retry_after("u", 9.0) == pytest.approx(3.0)


def test_a_clock_going_backwards_neither_refills_nor_crashes() -> None:
    bucket, verdict = step(Bucket(tokens=0.0, updated=100.0), 50.0, capacity=5, per_second=1.0)
    assert verdict == NOTIFY
    assert bucket.tokens == 0.0


async def test_full_buckets_are_forgotten_when_there_are_too_many_users() -> None:
    memory = MemoryBuckets(max_users=2)
    limiter = RateLimiter(memory, capacity=1, per_second=1.0)
    await limiter.check("a", 0.0)
    await limiter.check("b", 0.0)
    assert len(memory) == 2
    await limiter.check("c", 10.0)  # a and b are full again by now
    assert len(memory) == 1
    assert await limiter.check("c", 10.0) == NOTIFY  # c's own state is kept


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        RateLimiter(capacity=0)
    with pytest.raises(ValueError, match="per_second"):
        RateLimiter(per_second=0)


async def test_a_flood_cannot_be_replayed_after_a_restart_or_spread_over_replicas(engine: AsyncEngine) -> None:
    first = RateLimiter(SqlBuckets(engine), capacity=2, per_second=1 / 60)
    assert await checks(first, "mallory", 1000.0, 3) == [ALLOW, ALLOW, NOTIFY]
    restarted = RateLimiter(SqlBuckets(engine), capacity=2, per_second=1 / 60)  # or a second replica
    assert await restarted.check("mallory", 1001.0) == DENY  # already told, still empty
    assert await restarted.retry_after("mallory", 1001.0) == pytest.approx(59.0)
    assert await restarted.check("alice", 1001.0) == ALLOW
    # Two minutes on, both buckets are full again: the rows are forgotten as the next user comes.
    assert await restarted.check("bob", 1122.0) == ALLOW
    async with engine.connect() as conn:
        logins = (await conn.execute(select(BUCKETS.c.login).order_by(BUCKETS.c.login))).scalars().all()
        assert logins == ["bob"]
        assert (await conn.execute(select(func.count()).select_from(BUCKETS))).scalar_one() == 1
