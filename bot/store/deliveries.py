"""Durable delivery intake with group commit.

Each webhook request hands its delivery to one writer task, which stores every delivery waiting at
that moment, with its jobs, in a single transaction. Requests are acknowledged only after that commit,
so nothing acknowledged is ever lost, while the cost of a commit is shared by concurrent deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.intake import Delivery, Plan
from bot.store.models import Delivery as DeliveryRow
from bot.store.queue import enqueue, job_row

DELIVERIES = DeliveryRow.__table__


@dataclass
class _Pending:
    delivery: Delivery
    plan: Plan
    done: asyncio.Future[bool]


class DeliveryWriter:
    def __init__(self, engine: AsyncEngine, *, max_attempts: int = 5, max_batch: int = 512,
                 on_jobs: Callable[[], None] = lambda: None) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self.on_jobs = on_jobs
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._insert = dialect.insert(DELIVERIES)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def store(self, delivery: Delivery, plan: Plan) -> bool:
        """Persist a delivery and its jobs; True if new, False if (hook id, GUID) was already stored."""
        if self._task is None or self._task.done():
            raise RuntimeError("delivery writer is not running")
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(delivery, plan, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self.engine.begin() as conn:
                    results = [await self._write(conn, p) for p in batch]
            except Exception as exc:  # a failed commit fails every request of the batch (they answer 503)
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            for p, new in zip(batch, results, strict=True):
                if not p.done.done():
                    p.done.set_result(new)
            if any(new and p.plan.queued for p, new in zip(batch, results, strict=True)):
                self.on_jobs()

    async def _write(self, conn: AsyncConnection, pending: _Pending) -> bool:
        d, plan = pending.delivery, pending.plan
        stmt = (
            self._insert.values(
                hook_id=d.hook_id, guid=d.guid, event=d.event, action=d.action, repository=d.repository,
                installation_id=d.installation_id, sender=d.sender, received_at=d.received_at,
                outcome=plan.outcome, body=d.body,
            )
            .on_conflict_do_nothing(index_elements=["hook_id", "guid"])
            .returning(DELIVERIES.c.id)
        )
        delivery_id = (await conn.execute(stmt)).scalar()
        if delivery_id is None:
            return False  # a redelivery: stored already, create nothing
        rows: list[dict[str, Any]] = [
            job_row(kind, d.serial_key(), delivery_id=delivery_id, max_attempts=self.max_attempts,
                    payload={"event": d.event, "action": d.action})
            for kind in plan.jobs
        ]
        await enqueue(conn, rows)
        return True
