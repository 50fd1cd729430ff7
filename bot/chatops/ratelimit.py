"""A per-user token bucket for chat-ops commands. The clock is passed in, so it is deterministic;
the buckets live behind a small store (bot.chatops.store keeps them in the database).

A flood is answered once: the first denied command gets a reply, the rest of the flood is dropped
silently until the user has a token again (otherwise the bot's replies would become the flood).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, replace
from typing import Protocol


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY_AND_NOTIFY = "deny-and-notify"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated: float
    notified: bool = False


def step(bucket: Bucket | None, now: float, *, capacity: float, per_second: float) -> tuple[Bucket, Verdict]:
    """The bucket after one command at ``now``, and what to do with that command."""
    if bucket is None:
        bucket = Bucket(tokens=capacity, updated=now)
    # A clock that goes backwards (it should not) refills nothing rather than draining the bucket.
    elapsed = max(0.0, now - bucket.updated)
    tokens = min(capacity, bucket.tokens + elapsed * per_second)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), Verdict.ALLOW
    if bucket.notified:
        return replace(bucket, tokens=tokens, updated=now), Verdict.DENY
    return Bucket(tokens, now, notified=True), Verdict.DENY_AND_NOTIFY


class BucketStore(Protocol):
    """Where buckets live between comments: memory (one process) or the database (restarts, replicas)."""

    async def get(self, user: str) -> Bucket | None: ...

    async def put(self, user: str, bucket: Bucket, *, stale_before: float) -> None:
        """Keep ``bucket``; buckets untouched since ``stale_before`` are full again and may be forgotten."""
        ...


class MemoryBuckets:
    """One process's buckets (unit tests, a single process); past max_users, full ones are forgotten."""

    def __init__(self, max_users: int = 10_000) -> None:
        self.max_users = max_users
        self._buckets: dict[str, Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    async def get(self, user: str) -> Bucket | None:
        return self._buckets.get(user)

    async def put(self, user: str, bucket: Bucket, *, stale_before: float) -> None:
        self._buckets[user] = bucket
        if len(self._buckets) > self.max_users:
            # A full bucket carries no state worth keeping: forgetting it changes no future verdict.
            self._buckets = {u: b for u, b in self._buckets.items() if b.updated >= stale_before}


class RateLimiter:
    """Buckets by user key. Default: a burst of 5 commands, then one every 12 s (5 a minute)."""

    def __init__(
        self, buckets: BucketStore | None = None, *, capacity: float = 5.0, per_second: float = 5.0 / 60.0
    ) -> None:
        if capacity < 1 or per_second <= 0:
            raise ValueError("capacity must be >= 1 and per_second > 0")
        self.buckets: BucketStore = buckets if buckets is not None else MemoryBuckets()
        self.capacity = capacity
        self.per_second = per_second
        # One check at a time in this process: a read-modify-write of the user's bucket.
        self._lock = asyncio.Lock()

    async def check(self, user: str, now: float) -> Verdict:
        async with self._lock:
            bucket, verdict = step(
                await self.buckets.get(user), now, capacity=self.capacity, per_second=self.per_second
            )
            await self.buckets.put(user, bucket, stale_before=now - self.capacity / self.per_second)
        return verdict

    async def retry_after(self, user: str, now: float) -> float:
        """Seconds until ``user`` has a token again (0 when they have one now)."""
        bucket = await self.buckets.get(user)
        if bucket is None:
            return 0.0
        tokens = min(self.capacity, bucket.tokens + max(0.0, now - bucket.updated) * self.per_second)
        return max(0.0, (1.0 - tokens) / self.per_second)
