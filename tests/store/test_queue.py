"""The durable queue on SQLite and PostgreSQL: leases, one job per PR, retries, parking, release."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.base import utcnow
from bot.store.models import Job
from bot.store.queue import JobQueue, backoff_seconds, enqueue, job_row


async def _enqueue(engine: AsyncEngine, *rows: dict) -> None:
    async with engine.begin() as conn:
        await enqueue(conn, rows)


async def test_a_claimed_job_is_not_claimed_twice(engine: AsyncEngine) -> None:
    queue = JobQueue(engine)
    await _enqueue(engine, job_row("webhook", "o/r#1"))
    first = await queue.claim("w1")
    assert first is not None and first.attempts == 1
    assert await queue.claim("w2") is None
    assert await queue.complete(first.id, "w1")
    assert await queue.claim("w2") is None


async def test_one_running_job_per_pull_request(engine: AsyncEngine) -> None:
    queue = JobQueue(engine)
    await _enqueue(engine, job_row("webhook", "o/r#1"), job_row("webhook", "o/r#1"), job_row("webhook", "o/r#2"))
    a = await queue.claim("w1")
    b = await queue.claim("w2")
    assert a is not None and b is not None
    assert {a.serial_key, b.serial_key} == {"o/r#1", "o/r#2"}
    assert await queue.claim("w3") is None  # the second job of #1 waits for the first
    await queue.complete(a.id if a.serial_key == "o/r#1" else b.id, "w1" if a.serial_key == "o/r#1" else "w2")
    c = await queue.claim("w3")
    assert c is not None and c.serial_key == "o/r#1"


async def test_concurrent_claimers_never_run_two_jobs_of_one_pr(engine: AsyncEngine) -> None:
    queue = JobQueue(engine)
    await _enqueue(engine, *[job_row("webhook", f"o/r#{i % 5}") for i in range(40)])
    claimed = await asyncio.gather(*[queue.claim(f"w{i}") for i in range(20)])
    keys = [j.serial_key for j in claimed if j is not None]
    assert len(keys) == len(set(keys)) == 5


async def test_an_expired_lease_is_claimed_again_and_the_old_worker_is_fenced(engine: AsyncEngine) -> None:
    queue = JobQueue(engine, lease_seconds=30)
    await _enqueue(engine, job_row("webhook", "o/r#1"))
    job = await queue.claim("dead-worker")
    assert job is not None
    assert await queue.claim("w2") is None
    later = utcnow() + timedelta(seconds=31)
    again = await queue.claim("w2", now=later)
    assert again is not None and again.id == job.id and again.attempts == 2
    assert not await queue.complete(job.id, "dead-worker")  # a zombie cannot overwrite the new owner
    assert await queue.complete(job.id, "w2")


async def test_the_first_claim_is_when_the_queue_wait_ended_and_a_reclaim_keeps_it(engine: AsyncEngine) -> None:
    queue = JobQueue(engine, lease_seconds=30)
    await _enqueue(engine, job_row("review", "o/r#1"))
    claimed_at = utcnow() + timedelta(seconds=5)
    job = await queue.claim("w1", now=claimed_at)
    assert job is not None
    assert await queue.claim("w2", now=claimed_at + timedelta(seconds=31)) is not None  # w1's lease ran out

    async with engine.connect() as conn:
        created, claimed = (await conn.execute(select(Job.created_at, Job.claimed_at).where(Job.id == job.id))).one()
    assert claimed is not None and abs((claimed - created).total_seconds() - 5) < 1  # the queue wait: ~5 s


async def test_transient_failures_retry_with_backoff_then_park_with_the_error(engine: AsyncEngine) -> None:
    queue = JobQueue(engine)
    await _enqueue(engine, job_row("webhook", "o/r#1", max_attempts=2))
    job = await queue.claim("w")
    assert job is not None
    assert await queue.fail(job, "w", "GitHubBroken: 502", transient=True) == "queued"
    assert await queue.claim("w") is None  # not before its backoff
    job = await queue.claim("w", now=utcnow() + timedelta(minutes=10))
    assert job is not None and job.attempts == 2
    assert await queue.fail(job, "w", "GitHubBroken: 502 again", transient=True) == "parked"
    parked = await queue.list(["parked"])
    assert [j["last_error"] for j in parked] == ["GitHubBroken: 502 again"]
    assert await queue.retry_parked(parked[0]["id"])
    assert (await queue.depth()).get("queued") == 1


async def test_a_permanent_failure_parks_at_once(engine: AsyncEngine) -> None:
    queue = JobQueue(engine)
    await _enqueue(engine, job_row("webhook", "o/r#1"))
    job = await queue.claim("w")
    assert job is not None
    assert await queue.fail(job, "w", "KeyError: 'pull_request'", transient=False) == "parked"


async def test_release_gives_the_job_back_without_spending_an_attempt(engine: AsyncEngine) -> None:
    queue = JobQueue(engine)
    await _enqueue(engine, job_row("webhook", "o/r#1"))
    job = await queue.claim("w")
    assert job is not None and await queue.release(job.id, "w")
    again = await queue.claim("w2")
    assert again is not None and again.attempts == 1


def test_backoff_is_capped_exponential_with_jitter() -> None:
    rng = random.Random(7)
    waits = [backoff_seconds(n, base=2, cap=60, rng=rng) for n in range(1, 10)]
    assert 1 <= waits[0] <= 2 and 2 <= waits[1] <= 4
    assert all(30 <= w <= 60 for w in waits[6:])
    assert len({round(w, 6) for w in waits}) == len(waits)


async def test_a_job_whose_worker_died_on_its_last_attempt_is_parked_once_not_run_again(engine: AsyncEngine) -> None:
    queue = JobQueue(engine, lease_seconds=30)
    await _enqueue(engine, job_row("review", "o/r#1:review", max_attempts=1))
    job = await queue.claim("dies")
    assert job is not None
    later = utcnow() + timedelta(seconds=31)
    assert await queue.claim("w2", now=later) is None  # no second run of a job that kills its worker
    abandoned = await queue.abandon_exhausted(now=later)
    assert [(j.id, j.kind, j.attempts) for j in abandoned] == [(job.id, "review", 1)]
    assert await queue.abandon_exhausted(now=later) == []  # handed to one caller only
    parked = await queue.list(["parked"])
    assert [p["last_error"] for p in parked] == [
        "WorkerLost: the worker running this job stopped before it finished, on every attempt"
    ]


async def test_a_failure_reported_by_a_worker_that_lost_its_lease_changes_nothing(engine: AsyncEngine) -> None:
    queue = JobQueue(engine, lease_seconds=30)
    await _enqueue(engine, job_row("review", "o/r#1:review", max_attempts=1))
    job = await queue.claim("slow")
    assert job is not None
    async with engine.begin() as conn:  # another worker took it over meanwhile
        from sqlalchemy import update

        from bot.store.models import Job

        await conn.execute(update(Job).where(Job.id == job.id).values(leased_by="other"))
    assert await queue.fail(job, "slow", "KeyError: 'x'", transient=False) == "lost"
    assert (await queue.depth()) == {"running": 1}


async def test_finished_jobs_are_listed_newest_first_and_a_retried_one_comes_back_on_top(engine: AsyncEngine) -> None:
    """The dashboard's "Recently finished": what ended last first (a parked job retried to done included)."""
    queue = JobQueue(engine)
    await _enqueue(engine, job_row("deploy", "o/r#1:deploy"), job_row("webhook", "o/r#2"))
    first = await queue.claim("w")
    assert first is not None and first.kind == "deploy"
    assert await queue.fail(first, "w", "DeployRepoUnreachable: gave up", transient=False) == "parked"
    second = await queue.claim("w")
    assert second is not None and await queue.complete(second.id, "w")
    assert [j["id"] for j in await queue.list(["done"], newest_first=True)] == [second.id]

    assert await queue.retry_parked(first.id)
    again = await queue.claim("w")
    assert again is not None and again.id == first.id and await queue.complete(first.id, "w")
    finished = await queue.list(["done", "cancelled"], newest_first=True)
    assert [j["id"] for j in finished] == [first.id, second.id] and finished[0]["finished_at"] is not None
    assert [j["id"] for j in await queue.list(["done"])] == [first.id, second.id]  # the default: by id
