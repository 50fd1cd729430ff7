"""Worker pool: claims jobs from the durable queue and runs them, with heartbeats and a draining stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bot import logs, metrics
from bot.errors import Failure, classify
from bot.github.redact import redact
from bot.store.queue import ClaimedJob, JobQueue

log = logging.getLogger(__name__)

JobRunner = Callable[[ClaimedJob], Awaitable[None]]


@dataclass(frozen=True)
class JobFailure:
    """Why a job ended without a result, for its kind's final-failure hook to tell users."""

    failure: Failure  # bot.errors.classify of the last error (infrastructure for a worker that kept dying)
    error: str  # "Type: message", credentials redacted
    attempts: int
    max_attempts: int

    @property
    def error_type(self) -> str:
        return self.error.split(":", 1)[0]


FinalFailureHook = Callable[[ClaimedJob, JobFailure], Awaitable[None]]
"""Called once when a job of its kind ends for good without a result (parked: a permanent error, a bug,
transient errors through every attempt, or a worker that died on every attempt). It tells GitHub (a
completed check run, an ``error`` deployment status, a comment). It must not raise; if it does, or takes
longer than the pool's ``hook_timeout_seconds``, that is logged and the job stays parked: never a loop."""


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
        on_final_failure: Mapping[str, FinalFailureHook] | None = None,
        hook_timeout_seconds: float = 60.0,
    ) -> None:
        self.queue = queue
        self.runners = runners
        self.on_final_failure = dict(on_final_failure or {})
        self.hook_timeout_seconds = hook_timeout_seconds
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
                await self._abandon_exhausted()
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
            kind = classify(exc)
            if kind is not Failure.TRANSIENT or job.attempts >= job.max_attempts:
                # Users are told before the job is parked (its lease still held, its heartbeat running),
                # so "parked" means "and GitHub says so"; a crash in between runs the hook again.
                try:
                    await self._final_failure(job, JobFailure(kind, error, job.attempts, job.max_attempts))
                except asyncio.CancelledError:
                    if not lost.is_set():
                        outcome = "released"
                        raise  # shutting down: the job goes back to the queue, the hook runs again later
                    log.info("job %s (%s) was cancelled while its final-failure hook ran", job.id, job.kind)
                    return  # (the finally below still runs)
            outcome = await self.queue.fail(job, worker_id, error, transient=kind is Failure.TRANSIENT)
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

    async def _final_failure(self, job: ClaimedJob, failure: JobFailure) -> None:
        hook = self.on_final_failure.get(job.kind)
        if hook is None:
            return
        try:
            await asyncio.wait_for(hook(job, failure), self.hook_timeout_seconds)
        except Exception:
            # Never retried: a hook that fails (GitHub down too) must not turn one failure into a loop.
            metrics.FINAL_FAILURE_HOOK_ERRORS.labels(job.kind).inc()
            log.exception("the final-failure hook of job %s (%s) failed; the job stays parked", job.id, job.kind)

    async def _abandon_exhausted(self) -> None:
        """Park the jobs whose worker died on every attempt, and tell users through their hooks."""
        try:
            abandoned = await self.queue.abandon_exhausted()
        except Exception:
            log.exception("looking for abandoned jobs failed; retrying at the next poll")
            return
        for job in abandoned:
            log.warning("job %s (%s) parked: its worker stopped on each of %d attempts", job.id, job.kind, job.attempts)
            error = "WorkerLost: the worker running this job stopped before it finished, on every attempt"
            await self._final_failure(job, JobFailure(Failure.INFRASTRUCTURE, error, job.attempts, job.max_attempts))

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
