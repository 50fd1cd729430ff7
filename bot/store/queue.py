"""The durable job queue: enqueue, claim with a lease, complete, retry with backoff, park, release.

One running job per ``serial_key`` (a PR) at a time. A job whose lease expired (its worker died) is
claimable again, so work survives a crash; handlers make their effects idempotent, so a re-run after a
crash has its effect once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from bot.store.base import utcnow
from bot.store.models import Job

JOBS = cast(Table, Job.__table__)
# What a claimed (or abandoned) job carries back to its worker: the fields of ClaimedJob, in order.
CLAIMED_COLUMNS = (
    JOBS.c.id,
    JOBS.c.kind,
    JOBS.c.serial_key,
    JOBS.c.delivery_id,
    JOBS.c.payload,
    JOBS.c.attempts,
    JOBS.c.max_attempts,
)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    serial_key: str
    delivery_id: int | None
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def backoff_seconds(attempt: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with full jitter (AWS style): uniform in [cap/2, cap] of the step."""
    step = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(step / 2, step)


def job_row(
    kind: str,
    serial_key: str,
    *,
    payload: dict[str, Any] | None = None,
    delivery_id: int | None = None,
    max_attempts: int = 5,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    return {
        "kind": kind,
        "serial_key": serial_key,
        "payload": payload or {},
        "delivery_id": delivery_id,
        "state": "queued",
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_after": now,
        "created_at": now,
        "updated_at": now,
    }


async def enqueue(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert jobs inside the caller's transaction (so a delivery and its jobs commit together)."""
    if rows:
        await conn.execute(JOBS.insert(), list(rows))


def _claimable(now: datetime) -> Any:
    # A job whose lease expired (its worker died) runs again, unless it has used all its attempts:
    # then ``abandon_exhausted`` parks it, so a job that kills its worker cannot loop for ever.
    expired = and_(JOBS.c.state == "running", JOBS.c.lease_expires_at <= now, JOBS.c.attempts < JOBS.c.max_attempts)
    return and_(or_(JOBS.c.state == "queued", expired), JOBS.c.run_after <= now)


def _key_busy(now: datetime) -> Any:
    other = aliased(JOBS)
    return exists().where(
        other.c.serial_key == JOBS.c.serial_key,
        other.c.id != JOBS.c.id,
        other.c.state == "running",
        other.c.lease_expires_at > now,
    )


class JobQueue:
    def __init__(self, engine: AsyncEngine, *, lease_seconds: float = 60.0) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_seconds)
        self._postgres = engine.dialect.name == "postgresql"

    async def claim(self, worker_id: str, *, now: datetime | None = None) -> ClaimedJob | None:
        now = now or utcnow()
        async with self.engine.begin() as conn:
            query = (
                select(JOBS.c.id, JOBS.c.serial_key)
                .where(_claimable(now), ~_key_busy(now))
                .order_by(JOBS.c.run_after, JOBS.c.id)
                .limit(8)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True, of=JOBS)
            for job_id, key in (await conn.execute(query)).all():
                if self._postgres:
                    # Two claimers could each see the key free and take two jobs of one PR; a
                    # transaction-scoped advisory lock on the key makes the check-and-set atomic.
                    locked = await conn.scalar(text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": key})
                    if not locked:
                        continue
                # SQLite serialises writers, so the guarded UPDATE is the atomic check-and-set there.
                result = await conn.execute(
                    update(JOBS)
                    .where(JOBS.c.id == job_id, _claimable(now), ~_key_busy(now))
                    .values(
                        state="running",
                        leased_by=worker_id,
                        lease_expires_at=now + self.lease,
                        attempts=JOBS.c.attempts + 1,
                        claimed_at=func.coalesce(JOBS.c.claimed_at, now),
                        updated_at=now,
                    )
                    .returning(*CLAIMED_COLUMNS)
                )
                row = result.first()
                if row is not None:
                    return ClaimedJob(*row)
        return None

    async def _finish(self, job_id: int, worker_id: str, **values: Any) -> bool:
        """Update a job this worker still holds; False when the lease was lost to another worker."""
        values.setdefault("updated_at", utcnow())
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.leased_by == worker_id, JOBS.c.state == "running")
                .values(**values)
            )
            return bool(result.rowcount)

    async def complete(self, job_id: int, worker_id: str) -> bool:
        now = utcnow()
        return await self._finish(
            job_id, worker_id, state="done", finished_at=now, lease_expires_at=None, last_error=None
        )

    async def fail(
        self, job: ClaimedJob, worker_id: str, error: str, *, transient: bool, rng: random.Random | None = None
    ) -> str:
        """Record a failure: retry later when transient and attempts remain, else park. Returns the new state,
        or "lost" when another worker holds the job now (its lease expired) and this failure is not final."""
        now = utcnow()
        if transient and job.attempts < job.max_attempts:
            delay = backoff_seconds(job.attempts, rng=rng)
            kept = await self._finish(
                job.id,
                worker_id,
                state="queued",
                last_error=error[:4000],
                leased_by=None,
                lease_expires_at=None,
                run_after=now + timedelta(seconds=delay),
            )
            return "queued" if kept else "lost"
        kept = await self._finish(
            job.id, worker_id, state="parked", last_error=error[:4000], lease_expires_at=None, finished_at=now
        )
        return "parked" if kept else "lost"

    async def abandon_exhausted(self, *, now: datetime | None = None) -> list[ClaimedJob]:
        """Park jobs whose lease expired on their last attempt (the worker died each time) and return them,
        so their kind's final-failure hook can tell users. Each job is returned to one caller only."""
        now = now or utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.state == "running",
                    JOBS.c.lease_expires_at <= now,
                    JOBS.c.attempts >= JOBS.c.max_attempts,
                )
                .values(
                    state="parked",
                    last_error="WorkerLost: the worker running this job stopped before it finished, on every attempt",
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
                .returning(*CLAIMED_COLUMNS)
            )
            return [ClaimedJob(*row) for row in result.all()]

    async def release(self, job_id: int, worker_id: str) -> bool:
        """Give a job back without counting the attempt (graceful shutdown)."""
        return await self._finish(
            job_id, worker_id, state="queued", leased_by=None, lease_expires_at=None, attempts=JOBS.c.attempts - 1
        )

    async def heartbeat(self, job_id: int, worker_id: str) -> bool:
        return await self._finish(job_id, worker_id, lease_expires_at=utcnow() + self.lease)

    async def retry_parked(self, job_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.state == "parked")
                .values(state="queued", attempts=0, run_after=utcnow(), finished_at=None, updated_at=utcnow())
            )
            return bool(result.rowcount)

    async def get(self, job_id: int) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(JOBS).where(JOBS.c.id == job_id))).mappings().first()
            return dict(row) if row is not None else None

    async def cancel_one(self, job_id: int, actor: str) -> bool:
        """Cancel one queued, running or parked job (a running worker stops at its heartbeat)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.state.in_(("queued", "running", "parked")))
                .values(state="cancelled", last_error=f"cancelled by {actor}", finished_at=now, updated_at=now)
            )
            return bool(result.rowcount)

    async def list(
        self, states: Sequence[str] = ("queued", "running", "parked"), limit: int = 200, *, newest_first: bool = False
    ) -> list[dict[str, Any]]:
        """Jobs in ``states``, oldest first (``newest_first``: the most recently updated first, e.g. the
        jobs that finished last)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(
                    JOBS.c.id,
                    JOBS.c.kind,
                    JOBS.c.serial_key,
                    JOBS.c.state,
                    JOBS.c.attempts,
                    JOBS.c.max_attempts,
                    JOBS.c.run_after,
                    JOBS.c.lease_expires_at,
                    JOBS.c.last_error,
                    JOBS.c.created_at,
                    JOBS.c.finished_at,
                )
                .where(JOBS.c.state.in_(states))
                .order_by(*((JOBS.c.updated_at.desc(), JOBS.c.id.desc()) if newest_first else (JOBS.c.id,)))
                .limit(limit)
            )
            return [dict(r._mapping) for r in rows]

    async def depth(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(JOBS.c.state, func.count()).group_by(JOBS.c.state))
            return {state: count for state, count in rows.all()}
