"""The worker pool over the real queue (SQLite and PostgreSQL): cancelled jobs stop without delay; a job that
ends without a result calls its kind's final-failure hook, once, and a broken hook cannot loop."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import metrics
from bot.errors import Failure, RetriesExhausted
from bot.store.models import Job
from bot.store.queue import ClaimedJob, JobQueue, enqueue, job_row
from bot.worker import JobFailure, WorkerPool


async def test_a_job_cancelled_by_another_job_stops_at_once_not_at_its_next_heartbeat(engine: AsyncEngine) -> None:
    # A 60 s lease puts heartbeats 5 s apart; a push that supersedes a running review must not leave
    # the old review running (holding the sandbox, its check run open) for up to that long.
    queue = JobQueue(engine, lease_seconds=60)
    slow_started, slow_stopped = asyncio.Event(), asyncio.Event()

    async def slow(job: ClaimedJob) -> None:
        slow_started.set()
        try:
            await asyncio.sleep(60)
        finally:
            slow_stopped.set()

    async def supersede(job: ClaimedJob) -> None:  # what enqueue_review does in a webhook's job
        async with engine.begin() as conn:
            await conn.execute(update(Job).where(Job.kind == "slow").values(state="cancelled"))

    pool = WorkerPool(queue, {"slow": slow, "supersede": supersede}, concurrency=2, poll_seconds=0.05)
    async with engine.begin() as conn:
        await enqueue(conn, [job_row("slow", "o/r#1:review")])
    pool.start()
    try:
        await asyncio.wait_for(slow_started.wait(), 10)
        async with engine.begin() as conn:
            await enqueue(conn, [job_row("supersede", "o/r#1")])
        pool.wake()
        await asyncio.wait_for(slow_stopped.wait(), 2.5)  # well inside the 5 s heartbeat interval
    finally:
        await pool.stop()
    assert await queue.depth() == {"cancelled": 1, "done": 1}


async def _run_until_settled(engine: AsyncEngine, pool: WorkerPool, timeout: float = 10) -> None:
    pool.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            depth = await pool.queue.depth()
            if not depth.get("queued") and not depth.get("running") and not pool.in_flight:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(await pool.queue.depth())
    finally:
        await pool.stop()


async def test_a_parked_job_calls_its_kinds_final_failure_hook_once_with_the_reason(engine: AsyncEngine) -> None:
    queue = JobQueue(engine)
    told: list[tuple[int, JobFailure]] = []

    async def broken(job: ClaimedJob) -> None:
        raise RetriesExhausted("git fetch of o/r", 5, ConnectionResetError(104, "reset by peer"))

    async def done(job: ClaimedJob) -> None:
        pass

    async def hook(job: ClaimedJob, failure: JobFailure) -> None:
        told.append((job.id, failure))

    async with engine.begin() as conn:
        await enqueue(conn, [job_row("review", "o/r#1:review"), job_row("review", "o/r#2:review")])
        await enqueue(conn, [job_row("other", "o/r#3")])
    pool = WorkerPool(queue, {"review": broken, "other": done}, poll_seconds=0.05, on_final_failure={"review": hook})
    await _run_until_settled(engine, pool)
    assert await queue.depth() == {"parked": 2, "done": 1}
    assert sorted(job_id for job_id, _ in told) == [1, 2]  # once each, and never for a job that succeeded
    failure = told[0][1]
    assert failure.failure is Failure.INFRASTRUCTURE and failure.attempts == 1
    assert failure.error.startswith("RetriesExhausted: git fetch of o/r: gave up after 5 attempts")


async def test_a_transient_failure_is_retried_by_the_queue_and_the_hook_waits_for_the_last_attempt(
    engine: AsyncEngine,
) -> None:
    queue = JobQueue(engine)
    told: list[JobFailure] = []
    runs = 0

    async def flaky(job: ClaimedJob) -> None:
        nonlocal runs
        runs += 1
        raise ConnectionResetError(104, "reset by peer")

    async def hook(job: ClaimedJob, failure: JobFailure) -> None:
        told.append(failure)

    async with engine.begin() as conn:
        await enqueue(conn, [job_row("deploy", "o/r#1:deploy", max_attempts=2)])
    pool = WorkerPool(queue, {"deploy": flaky}, poll_seconds=0.05, on_final_failure={"deploy": hook})
    # The queue's own back-off after attempt 1 is 1-2 s.
    await _run_until_settled(engine, pool, timeout=15)
    assert runs == 2
    assert [(f.failure, f.attempts) for f in told] == [(Failure.TRANSIENT, 2)]


async def test_a_hook_that_fails_or_hangs_is_logged_and_the_job_stays_parked(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    queue = JobQueue(engine)
    calls: list[str] = []

    async def bug(job: ClaimedJob) -> None:
        raise KeyError("pull_request")

    async def failing_hook(job: ClaimedJob, failure: JobFailure) -> None:
        calls.append(f"fails {failure.error}")
        raise RuntimeError("GitHub is down too")

    async def hanging_hook(job: ClaimedJob, failure: JobFailure) -> None:
        calls.append("hangs")
        await asyncio.sleep(60)

    async with engine.begin() as conn:
        await enqueue(conn, [job_row("a", "o/r#1"), job_row("b", "o/r#2")])
    pool = WorkerPool(
        queue,
        {"a": bug, "b": bug},
        poll_seconds=0.05,
        on_final_failure={"a": failing_hook, "b": hanging_hook},
        hook_timeout_seconds=0.5,
    )
    before = metrics.FINAL_FAILURE_HOOK_ERRORS.labels("a")._value.get()
    await _run_until_settled(engine, pool)
    assert sorted(calls) == ["fails KeyError: 'pull_request'", "hangs"]  # each once: no loop
    assert await queue.depth() == {"parked": 2}
    assert metrics.FINAL_FAILURE_HOOK_ERRORS.labels("a")._value.get() == before + 1
    assert "final-failure hook of job" in caplog.text and "GitHub is down too" in caplog.text


async def test_a_job_whose_worker_kept_dying_is_parked_and_its_hook_told(engine: AsyncEngine) -> None:
    queue = JobQueue(engine, lease_seconds=1)
    told: list[JobFailure] = []

    async def hook(job: ClaimedJob, failure: JobFailure) -> None:
        told.append(failure)

    async with engine.begin() as conn:
        await enqueue(conn, [job_row("review", "o/r#1:review", max_attempts=1)])
    assert await queue.claim("a-worker-that-dies") is not None
    await asyncio.sleep(1.2)  # its lease expires
    pool = WorkerPool(queue, {}, poll_seconds=0.05, on_final_failure={"review": hook})
    await _run_until_settled(engine, pool)
    assert [(f.failure, f.error_type) for f in told] == [(Failure.INFRASTRUCTURE, "WorkerLost")]
    assert await queue.depth() == {"parked": 1}
