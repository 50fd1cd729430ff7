"""Worker pool: claims jobs from the durable queue and runs them, with heartbeats and a draining stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

from bot import logs, metrics
from bot.errors import is_transient
from bot.github.redact import redact
from bot.store.queue import ClaimedJob, JobQueue

log = logging.getLogger(__name__)

JobRunner = Callable[[ClaimedJob], Awaitable[None]]


_MIN_HEARTBEAT_GAP_S = 0.2


class WorkerPool:
    def __init__(
        self,
        queue: JobQueue,
        runners: Mapping[str, JobRunner],
        *,
        concurrency: int = 2,
        poll_seconds: float = 1.0,
        drain_seconds: float = 20.0,
    ) -> None:
        self.queue = queue
        self.runners = runners
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.drain_seconds = drain_seconds
        self.worker_prefix = f"{socket.gethostname()}:{os.getpid()}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: dict[int, tuple[str, asyncio.Task[None]]] = {}
        self._recheck = asyncio.Event()  # replaced on every set, so each heartbeat sees the poke once

    def wake(self) -> None:
        """Called when new jobs were committed, so idle workers claim them without waiting a poll."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Jobs this process is running, including cancelled ones that have not reached a heartbeat yet."""
        return len(self._inflight)

    @property
    def alive(self) -> int:
        return sum(1 for t in self._tasks if not t.done())

    def start(self) -> None:
        if self.concurrency == 0:
            return
        self._tasks = [
            asyncio.create_task(self._loop(f"{self.worker_prefix}:{i}"), name=f"worker-{i}")
            for i in range(self.concurrency)
        ]
        metrics.WORKERS_ALIVE.set(self.concurrency)

    async def stop(self) -> None:
        """Stop claiming; give in-flight jobs drain_seconds to finish, then release them to the queue."""
        self._stopping.set()
        self._wake.set()
        if self._inflight:
            await asyncio.wait([t for _, t in self._inflight.values()], timeout=self.drain_seconds)
        for job_id, (worker_id, task) in list(self._inflight.items()):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                await self.queue.release(job_id, worker_id)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        metrics.WORKERS_ALIVE.set(0)

    async def _loop(self, worker_id: str) -> None:
        while not self._stopping.is_set():
            try:
                job = await self.queue.claim(worker_id)
            except Exception:
                log.exception("claiming a job failed; retrying")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
                continue
            task = asyncio.create_task(self._run(worker_id, job))
            self._inflight[job.id] = (worker_id, task)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
            finally:
                self._inflight.pop(job.id, None)

    async def _run(self, worker_id: str, job: ClaimedJob) -> None:
        logs.job_id.set(job.id)
        runner = self.runners.get(job.kind)
        started = time.monotonic()
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job.id, worker_id, asyncio.current_task(), lost))
        outcome = "done"
        try:
            if runner is None:
                raise LookupError(f"no runner for job kind {job.kind!r}")
            await runner(job)
            await self.queue.complete(job.id, worker_id)
        except asyncio.CancelledError:
            if not lost.is_set():
                outcome = "released"
                raise
            # The job was cancelled (superseded) or its lease went to another worker: stop quietly.
            outcome = "superseded"
            log.info("job %s (%s) stopped: it was cancelled or its lease was lost", job.id, job.kind)
        except Exception as exc:
            error = redact(f"{type(exc).__name__}: {exc}")
            outcome = await self.queue.fail(job, worker_id, error, transient=is_transient(exc))
            log.warning(
                "job %s (%s) failed: %s",
                job.id,
                job.kind,
                error,
                extra={"state": outcome},
                exc_info=outcome == "parked",
            )
        finally:
            heartbeat.cancel()
            metrics.JOB_DURATION.labels(job.kind, outcome).observe(time.monotonic() - started)
            # A job may have queued follow-up jobs (a webhook queues a review or a deploy) or freed its
            # PR's serial key: let idle workers look now rather than at their next poll. It may also
            # have cancelled a running job (a push supersedes a review): its heartbeat looks now, so
            # the old review stops and frees the sandbox instead of running for another interval.
            self._wake.set()
            self._recheck.set()
            self._recheck = asyncio.Event()

    async def _heartbeat(
        self, job_id: int, worker_id: str, task: asyncio.Task[object] | None, lost: asyncio.Event
    ) -> None:
        interval = max(0.2, min(5.0, self.queue.lease.total_seconds() / 3))
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._recheck.wait(), interval)
            if not await self.queue.heartbeat(job_id, worker_id) and task is not None:
                lost.set()
                task.cancel()
                return
            await asyncio.sleep(_MIN_HEARTBEAT_GAP_S)  # a burst of finished jobs is one look, not hundreds
