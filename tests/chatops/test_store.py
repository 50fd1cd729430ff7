"""Chat-ops state on SQLite and PostgreSQL: approvals, holds, cancelling a PR's jobs, the audit log."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.chatops import store
from bot.store.models import Job
from bot.store.queue import JobQueue, enqueue, job_row

REPO = "acme/churn"


def entry(command: str, *, pr: int = 1, ok: bool = True) -> store.AuditEntry:
    return store.AuditEntry(REPO, pr, "alice", 7, command, f"/modelship {command}", {}, "allowed", "done", ok)


async def test_approvals_and_holds_are_idempotent(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await store.approve(conn, REPO, 1, "a" * 40, "alice")
        assert not await store.approve(conn, REPO, 1, "a" * 40, "bob"), "the same head is approved once"
        assert await store.hold(conn, REPO, 1, "alice")
        assert not await store.hold(conn, REPO, 1, "bob")
    assert await store.is_held(engine, REPO, 1) and not await store.is_held(engine, REPO, 2)
    async with engine.begin() as conn:
        assert [(a.sha, a.approver) for a in await store.approvals(conn, REPO, 1)] == [("a" * 40, "alice")]
        assert (await store.held(conn, REPO, 1)).actor == "alice"  # type: ignore[union-attr]
        assert await store.unhold(conn, REPO, 1)
        assert not await store.unhold(conn, REPO, 1)
    assert not await store.is_held(engine, REPO, 1)


async def test_cancel_takes_the_prs_feature_jobs_but_never_a_webhook_delivery(engine: AsyncEngine) -> None:
    key = store.serial_key(REPO, 1)
    async with engine.begin() as conn:
        await enqueue(
            conn,
            [
                job_row("review", key, payload={"trigger": "evaluate"}),
                job_row("webhook", key),  # the delivery whose handler is cancelling
                job_row("review", store.serial_key(REPO, 2)),
            ],
        )
    running = await JobQueue(engine).claim("w1")
    assert running is not None and running.kind == "review"
    async with engine.begin() as conn:
        await enqueue(conn, [job_row("deploy", f"{key}:deploy"), job_row("review", f"{key}0")])
        cancelled = await store.cancel(conn, REPO, 1, "alice")
        again = await store.cancel(conn, REPO, 1, "alice")
    assert [(j.kind, j.state, j.trigger) for j in cancelled] == [
        ("review", "running", "evaluate"),
        ("deploy", "queued", None),
    ]
    assert again == []
    async with engine.connect() as conn:
        states = (await conn.execute(select(Job.serial_key, Job.kind, Job.state).order_by(Job.id))).all()
        shown = await store.jobs(conn, REPO, 1)
    assert [tuple(r) for r in states] == [
        (key, "review", "cancelled"),
        (key, "webhook", "queued"),
        (f"{REPO}#2", "review", "queued"),
        (f"{key}:deploy", "deploy", "cancelled"),
        (f"{REPO}#10", "review", "queued"),
    ]
    assert [j.kind for j in shown] == ["review", "deploy"], "status lists feature jobs, not deliveries"
    assert all(j.last_error == "cancelled by alice" for j in shown)


async def test_the_audit_log_keeps_the_newest_commands_in_order(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await store.record(conn, [entry(f"c{i}") for i in range(12)] + [entry("other", pr=2)])
    async with engine.connect() as conn:
        recent = await store.recent(conn, REPO, 1, limit=3)
    assert [e.command for e in recent] == ["c9", "c10", "c11"]
    assert all(e.at is not None and e.actor == "alice" for e in recent)
