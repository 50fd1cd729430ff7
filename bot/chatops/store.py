"""Chat-ops state in the database: the audit log, ok-to-test approvals, holds, and the PR's jobs.

Every function takes the caller's connection, so a command's effect and its audit row can share a
transaction. Writes are idempotent: a re-run job approves, holds or cancels once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.chatops.ratelimit import Bucket
from bot.chatops.trust import HeadEvent
from bot.store.base import utcnow
from bot.store.chatops_models import ChatopsApproval, ChatopsAudit, ChatopsHold, ChatopsRateBucket
from bot.store.models import Delivery
from bot.store.queue import JOBS

AUDIT = cast(Table, ChatopsAudit.__table__)
APPROVALS = cast(Table, ChatopsApproval.__table__)
HOLDS = cast(Table, ChatopsHold.__table__)
BUCKETS = cast(Table, ChatopsRateBucket.__table__)

# The webhook job that is running this very command shares the PR's serial key: never list or cancel it.
_OWN_KIND = "webhook"
_ACTIVE = ("queued", "running")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    repo: str
    pr: int
    actor: str
    comment_id: int | None
    command: str
    line: str
    args: dict[str, Any]
    decision: str
    result: str
    ok: bool
    at: datetime | None = None
    id: int | None = None  # the row's id once stored (the audit page pages by it)


@dataclass(frozen=True, slots=True)
class JobView:
    id: int
    kind: str
    state: str
    attempts: int
    last_error: str | None
    trigger: str | None


@dataclass(frozen=True, slots=True)
class Hold:
    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Approval:
    sha: str
    approver: str
    at: datetime


def serial_key(repo: str, pr: int) -> str:
    return f"{repo}#{pr}"


def _of_pr(repo: str, pr: int) -> Any:
    """The PR's jobs: its serial key, or a sub-key (``owner/repo#12:review``) a feature may queue under."""
    key = serial_key(repo, pr)
    return or_(JOBS.c.serial_key == key, JOBS.c.serial_key.startswith(f"{key}:", autoescape=True))


async def record(conn: AsyncConnection, entries: Sequence[AuditEntry]) -> None:
    if not entries:
        return
    now = utcnow()
    rows = [
        {
            "at": e.at or now,
            "repo": e.repo,
            "pr": e.pr,
            "actor": e.actor,
            "comment_id": e.comment_id,
            "command": e.command,
            "line": e.line,
            "args": e.args,
            "decision": e.decision[:2000],
            "result": e.result[:2000],
            "ok": e.ok,
        }
        for e in entries
    ]
    await conn.execute(insert(AUDIT), rows)


async def recent(conn: AsyncConnection, repo: str, pr: int, limit: int = 10) -> list[AuditEntry]:
    """The newest ``limit`` commands of the PR, oldest first."""
    rows = await conn.execute(
        select(AUDIT).where(AUDIT.c.repo == repo, AUDIT.c.pr == pr).order_by(AUDIT.c.id.desc()).limit(limit)
    )
    entries = [
        AuditEntry(r.repo, r.pr, r.actor, r.comment_id, r.command, r.line, r.args, r.decision, r.result, r.ok, r.at)
        for r in rows
    ]
    return entries[::-1]


async def approvals(conn: AsyncConnection, repo: str, pr: int) -> list[Approval]:
    rows = await conn.execute(
        select(APPROVALS.c.sha, APPROVALS.c.approver, APPROVALS.c.created_at)
        .where(APPROVALS.c.repo == repo, APPROVALS.c.pr == pr)
        .order_by(APPROVALS.c.id)
    )
    return [Approval(*r) for r in rows]


async def approve(conn: AsyncConnection, repo: str, pr: int, sha: str, approver: str) -> bool:
    """Record an ok-to-test for ``sha``; False when it was approved already."""
    exists = await conn.scalar(
        select(APPROVALS.c.id).where(APPROVALS.c.repo == repo, APPROVALS.c.pr == pr, APPROVALS.c.sha == sha)
    )
    if exists is not None:
        return False
    await conn.execute(insert(APPROVALS).values(repo=repo, pr=pr, sha=sha, approver=approver, created_at=utcnow()))
    return True


async def hold(conn: AsyncConnection, repo: str, pr: int, actor: str) -> bool:
    """Put the PR on hold; False when it was on hold already."""
    if await held(conn, repo, pr):
        return False
    await conn.execute(insert(HOLDS).values(repo=repo, pr=pr, actor=actor, created_at=utcnow()))
    return True


async def unhold(conn: AsyncConnection, repo: str, pr: int) -> bool:
    """Lift the hold; False when there was none."""
    result = await conn.execute(delete(HOLDS).where(HOLDS.c.repo == repo, HOLDS.c.pr == pr))
    return bool(result.rowcount)


async def held(conn: AsyncConnection, repo: str, pr: int) -> Hold | None:
    row = (
        await conn.execute(select(HOLDS.c.actor, HOLDS.c.created_at).where(HOLDS.c.repo == repo, HOLDS.c.pr == pr))
    ).first()
    return Hold(*row) if row is not None else None


async def is_held(engine: AsyncEngine, repo: str, pr: int) -> bool:
    """For the deploy feature: a held PR must not be deployed."""
    async with engine.connect() as conn:
        return await held(conn, repo, pr) is not None


async def jobs(conn: AsyncConnection, repo: str, pr: int, limit: int = 10) -> list[JobView]:
    """The PR's newest feature jobs (reviews, deploys…), oldest first; webhook deliveries are plumbing."""
    rows = await conn.execute(
        select(JOBS.c.id, JOBS.c.kind, JOBS.c.state, JOBS.c.attempts, JOBS.c.last_error, JOBS.c.payload)
        .where(_of_pr(repo, pr), JOBS.c.kind != _OWN_KIND)
        .order_by(JOBS.c.id.desc())
        .limit(limit)
    )
    return [_job_view(r) for r in rows][::-1]


async def cancel(conn: AsyncConnection, repo: str, pr: int, actor: str) -> list[JobView]:
    """Mark the PR's queued and running feature jobs cancelled (a running worker stops when the
    cancelling job ends, or at its next heartbeat in another process); returns them as they were."""
    rows = await conn.execute(
        select(JOBS.c.id, JOBS.c.kind, JOBS.c.state, JOBS.c.attempts, JOBS.c.last_error, JOBS.c.payload)
        .where(_of_pr(repo, pr), JOBS.c.kind != _OWN_KIND, JOBS.c.state.in_(_ACTIVE))
        .order_by(JOBS.c.id)
    )
    found = [_job_view(r) for r in rows]
    if found:
        now = utcnow()
        await conn.execute(
            update(JOBS)
            .where(JOBS.c.id.in_([j.id for j in found]), JOBS.c.state.in_(_ACTIVE))
            .values(state="cancelled", last_error=f"cancelled by {actor}", finished_at=now, updated_at=now)
        )
    return found


def _job_view(row: Any) -> JobView:
    payload = row.payload if isinstance(row.payload, dict) else {}
    trigger = payload.get("trigger")
    return JobView(
        row.id, row.kind, row.state, row.attempts, row.last_error, trigger if isinstance(trigger, str) else None
    )


class SqlBuckets:
    """bot.chatops.ratelimit.BucketStore in the database: a restart or another replica sees the same
    bucket, so a flood cannot be replayed by waiting for a deploy or spread over replicas. (Two replicas
    checking one user at the same instant may both let one more command through: a limiter, not a lock.)"""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, user: str) -> Bucket | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(BUCKETS.c.tokens, BUCKETS.c.updated, BUCKETS.c.notified).where(BUCKETS.c.login == user)
                )
            ).first()
        return Bucket(float(row.tokens), float(row.updated), bool(row.notified)) if row is not None else None

    async def put(self, user: str, bucket: Bucket, *, stale_before: float) -> None:
        values = {"tokens": bucket.tokens, "updated": bucket.updated, "notified": bucket.notified}
        async with self.engine.begin() as conn:
            await conn.execute(delete(BUCKETS).where(BUCKETS.c.updated < stale_before))
            changed = await conn.execute(update(BUCKETS).where(BUCKETS.c.login == user).values(**values))
            if not changed.rowcount:
                await conn.execute(insert(BUCKETS).values(login=user, **values))


# The events that set a PR's head; an edit or a label never moves it.
_HEAD_ACTIONS = ("opened", "reopened", "synchronize")
_HEAD_HISTORY = 500  # recent pull_request deliveries of the repository to look through


async def head_events(conn: AsyncConnection, repo: str, number: int) -> list[HeadEvent]:
    """Which commit became the PR's head when, by GitHub's own ``updated_at`` on the stored deliveries.

    Deliveries are recorded at intake whatever happens to them later, so this is the bot's own record
    of what GitHub announced; a push whose event has not arrived yet is simply not in it.
    """
    rows = (
        await conn.execute(
            select(Delivery.body)
            .where(Delivery.event == "pull_request", Delivery.repository == repo, Delivery.action.in_(_HEAD_ACTIONS))
            .order_by(Delivery.id.desc())
            .limit(_HEAD_HISTORY)
        )
    ).all()
    events: list[HeadEvent] = []
    for (body,) in reversed(rows):
        try:
            pull = json.loads(body)["pull_request"]
            if int(pull["number"]) != number:
                continue
            events.append(HeadEvent(str(pull["head"]["sha"]), epoch_seconds(str(pull["updated_at"]))))
        except (ValueError, KeyError, TypeError):
            continue  # not the shape GitHub sends: no evidence either way
    return events


def epoch_seconds(stamp: str) -> int:
    """GitHub's ``2026-12-06T16:30:00Z`` as whole epoch seconds."""
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


async def search(
    conn: AsyncConnection,
    repos: Sequence[str],
    *,
    actor: str | None = None,
    command: str | None = None,
    repo: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[AuditEntry]:
    """The newest audit rows of ``repos`` (the dashboard's audit page), filtered, newest first; ``before``
    (a row id) asks for the page of older rows. A page, not the whole log: rendering is what a request costs."""
    if not repos:
        return []
    query = select(AUDIT).where(AUDIT.c.repo.in_(list(repos)))
    if before is not None:
        query = query.where(AUDIT.c.id < before)
    if actor:
        query = query.where(AUDIT.c.actor == actor)
    if command:
        query = query.where(AUDIT.c.command == command)
    if repo:
        query = query.where(AUDIT.c.repo == repo)
    rows = await conn.execute(query.order_by(AUDIT.c.id.desc()).limit(limit))
    return [
        AuditEntry(
            r.repo, r.pr, r.actor, r.comment_id, r.command, r.line, r.args, r.decision, r.result, r.ok, r.at, r.id
        )
        for r in rows
    ]
