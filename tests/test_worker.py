"""The worker pool over the real queue (SQLite and PostgreSQL): cancelled jobs stop without delay."""

from __future__ import annotations

import asyncio

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.models import Job
from bot.store.queue import ClaimedJob, JobQueue, enqueue, job_row
from bot.worker import WorkerPool


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
