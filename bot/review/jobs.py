"""The review job: what a pull_request event, `/modelship evaluate` or `ok-to-test` enqueues.

A newer review of the same PR supersedes older ones: they are cancelled (a running one in this process
stops as soon as the job that cancelled it ends; one in another process at its next heartbeat), so a
new push never waits behind an evaluation of a stale head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.base import utcnow
from bot.store.queue import JOBS, enqueue, job_row

KIND = "review"


@dataclass(frozen=True)
class ReviewRequest:
    repo: str
    number: int
    installation_id: int
    head_sha: str
    base_sha: str
    base_ref: str
    trigger: str  # "pull_request" | "evaluate" | "optimize" | "ok-to-test"
    actor: str
    model: str | None = None  # only this model (from `/modelship evaluate <model>`)
    optimize: bool = True

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ReviewRequest:
        return cls(**{k: payload[k] for k in cls.__dataclass_fields__ if k in payload})

    @property
    def serial_key(self) -> str:
        # One running review per PR, but not behind the PR's webhook jobs: `/modelship cancel` must be able
        # to run (and stop this review) while the review is in progress.
        return f"{self.repo}#{self.number}:review"


async def enqueue_review(conn: AsyncConnection, request: ReviewRequest, *, max_attempts: int = 3) -> None:
    """Cancel superseded reviews of this PR and queue this one, in the caller's transaction."""
    await conn.execute(
        update(JOBS)
        .where(JOBS.c.serial_key == request.serial_key, JOBS.c.kind == KIND, JOBS.c.state.in_(("queued", "running")))
        .values(
            state="cancelled",
            last_error=f"superseded by {request.trigger} at {request.head_sha[:12]}",
            finished_at=utcnow(),
            updated_at=utcnow(),
        )
    )
    await enqueue(conn, [job_row(KIND, request.serial_key, payload=asdict(request), max_attempts=max_attempts)])
