"""The outbox and its delivery job, on a real database (SQLite and PostgreSQL) and a real HTTP receiver."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import is_transient
from bot.notify.service import KIND, Notifier, NotifyFailed, Sink
from bot.store import notifications
from bot.store.models import Job
from bot.store.queue import JobQueue
from tests.notify.receiver import receiver

SECRET = b"receiver-secret"
DATA = {"repo": "acme/models", "environment": "staging", "model": "churn", "version": "b" * 40}


async def notify_jobs(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        return [dict(p) for p in (await conn.execute(select(Job.payload).where(Job.kind == KIND))).scalars()]


async def run_all(engine: AsyncEngine, notifier: Notifier) -> list[Exception]:
    """Claim and run every due notify job once (what a worker does), collecting their errors."""
    queue, errors = JobQueue(engine), []
    while (job := await queue.claim("test")) is not None:
        try:
            await notifier.deliver(job)
            await queue.complete(job.id, "test")
        except Exception as exc:
            errors.append(exc)
            await queue.fail(job, "test", str(exc), transient=is_transient(exc))
    return errors


async def test_one_event_is_one_row_and_one_job_however_often_it_is_emitted(engine: AsyncEngine) -> None:
    notifier = Notifier(engine, [Sink("webhook", "http://127.0.0.1:9/never", secret=SECRET)])

    for _ in range(3):  # a retried job, a redelivered webhook, another replica
        async with engine.begin() as conn:
            await notifier(conn, "deploy.live", "deploy:1:live", DATA)

    async with engine.connect() as conn:
        stored = await notifications.events(conn)
    assert [(e.key, e.kind) for e in stored] == [("deploy:1:live", "deploy.live")]
    assert len(await notify_jobs(engine)) == 1


async def test_an_event_no_sink_wants_is_not_even_stored(engine: AsyncEngine) -> None:
    notifier = Notifier(engine, [Sink("webhook", "http://127.0.0.1:9/never", ("guard.*",), SECRET)])

    async with engine.begin() as conn:
        await notifier(conn, "deploy.live", "deploy:1:live", DATA)

    async with engine.connect() as conn:
        assert await notifications.events(conn) == []
    assert await notify_jobs(engine) == []


async def test_a_rolled_back_transaction_emits_nothing(engine: AsyncEngine) -> None:
    notifier = Notifier(engine, [Sink("webhook", "http://127.0.0.1:9/never", secret=SECRET)])

    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await notifier(conn, "deploy.failed", "deploy:2:failed", DATA)
            raise RuntimeError("the transition itself failed")

    async with engine.connect() as conn:
        assert await notifications.events(conn) == []
    assert await notify_jobs(engine) == []


async def test_a_sink_that_failed_is_retried_alone_and_each_sink_gets_the_event_once(engine: AsyncEngine) -> None:
    async with receiver() as flaky, receiver() as steady:
        flaky.fail_next = 2
        notifier = Notifier(
            engine, [Sink("webhook", flaky.url, secret=SECRET), Sink("slack", steady.url)], max_attempts=5
        )
        async with engine.begin() as conn:
            await notifier(conn, "guard.alert", "guard.alert:3:error_rate:1", {**DATA, "reason": "queries failing"})
        queue = JobQueue(engine)
        try:
            attempts = []
            for _ in range(3):
                async with engine.begin() as conn:  # make the retry due now instead of after its back-off
                    await conn.execute(Job.__table__.update().values(run_after=Job.created_at))
                attempts.append(await run_all(engine, notifier))
        finally:
            await notifier.close()

        assert [len(a) for a in attempts] == [1, 1, 0]
        assert all(isinstance(e, NotifyFailed) and "webhook: HTTP 503" in str(e) for a in attempts for e in a)
        assert flaky.refused == 2 and len(flaky.accepted) == 1 and flaky.accepted[0].verified(SECRET)
        assert not flaky.accepted[0].verified(b"another-secret")
        assert len(steady.accepted) == 1  # Slack had it after the first attempt: never sent again
        assert steady.accepted[0].doc == {
            "text": "Guard alert for *churn* `bbbbbbb` in *staging* (acme/models): queries failing"
        }
        async with engine.connect() as conn:
            [event] = await notifications.events(conn)
        assert sorted(event.delivered) == ["slack", "webhook"]
        assert (await queue.list(("parked", "queued", "running"))) == []


async def test_a_failure_never_puts_the_url_in_the_error(engine: AsyncEngine) -> None:
    secret_url = "http://127.0.0.1:9/T000/B000/XXXXsecret"  # nothing listens on port 9
    notifier = Notifier(engine, [Sink("slack", secret_url)], timeout_seconds=2)
    async with engine.begin() as conn:
        await notifier(conn, "deploy.live", "deploy:4:live", DATA)
    try:
        [error] = await run_all(engine, notifier)
    finally:
        await notifier.close()

    assert isinstance(error, NotifyFailed) and is_transient(error)
    assert "XXXXsecret" not in str(error) and "slack:" in str(error)


@dataclass(frozen=True)
class Transition:
    """Shaped like live tracking's bot.context.DeployTransition (its fields and key)."""

    deployment_id: int
    phase: str
    repo: str = "acme/models"
    environment: str = "staging"
    model: str = "churn"
    version: str = "c" * 40
    variant: str = "original"
    sha256: str = "d" * 64
    deploy_repo: str = "acme/deploy"
    deploy_commit: str | None = "e" * 40
    source_pr: int | None = 7
    at: datetime = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)
    committed_at: datetime | None = datetime(2026, 12, 6, 18, 58, tzinfo=UTC)
    live_at: datetime | None = None
    reason: str = ""

    @property
    def key(self) -> str:
        return f"deploy:{self.deployment_id}:{self.phase}"


async def test_rollout_transitions_become_deploy_events_under_their_own_keys(engine: AsyncEngine) -> None:
    notifier = Notifier(engine, [Sink("webhook", "http://127.0.0.1:9/never", secret=SECRET)])

    async with engine.begin() as conn:
        await notifier(conn, "deploy.committed", "deploy:5:committed", DATA)  # told at commit time (records)
        for phase in ("committed", "rolling_out", "failed"):
            await notifier.on_deploy_transition(conn, Transition(5, phase, reason="old sha256 still served"))

    async with engine.connect() as conn:
        stored = await notifications.events(conn)
    assert [(e.key, e.kind) for e in stored] == [
        ("deploy:5:committed", "deploy.committed"),  # the same event from both places: one row
        ("deploy:5:failed", "deploy.failed"),
    ]
    assert stored[1].payload["reason"] == "old sha256 still served" and stored[1].payload["at"].startswith("2026-12-06")
