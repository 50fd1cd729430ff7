"""Durable delivery intake with group commit.

Each webhook request hands its delivery to one writer task, which stores every delivery waiting at
that moment, with its jobs, in a single transaction. Requests are acknowledged only after that commit,
so nothing acknowledged is ever lost, while the cost of a commit is shared by concurrent deliveries.

On SQLite the batch runs in one dedicated thread through the synchronous driver: one thread hop per
batch instead of one per statement (aiosqlite's per-statement hops cost ~GIL switch intervals each).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.intake import Delivery, Plan
from bot.store.db import sqlite_pragmas
from bot.store.models import Delivery as DeliveryRow
from bot.store.queue import JOBS, job_row

DELIVERIES = cast(Table, DeliveryRow.__table__)


@dataclass
class _Pending:
    delivery: Delivery
    plan: Plan
    done: asyncio.Future[bool]


class DeliveryWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_attempts: int = 5,
        max_batch: int = 512,
        on_jobs: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.max_batch = max_batch
        self.on_jobs = on_jobs
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert = (sqlite if self._sqlite else postgresql).insert(DELIVERIES)
        self._thread: ThreadPoolExecutor | None = None
        self._sqlite_conn: sqlite3.Connection | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        if self._sqlite:
            self._sqlite_path = str(engine.url.database)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-writer")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-writer")
        if self._thread is not None:
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="wal-checkpointer")

    async def stop(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            if self._sqlite_conn is not None:
                conn, self._sqlite_conn = self._sqlite_conn, None
                self._thread.submit(conn.close).result()
            self._thread.shutdown(wait=True)

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
                results: list[bool | BaseException] = list(await self._write(batch))
            except Exception as exc:
                # One bad row must not fail the requests it happened to share a commit with: write
                # each row alone, so only the offending one fails (its request answers 503).
                results = [exc] if len(batch) == 1 else [await self._write_alone(p) for p in batch]
            for p, result in zip(batch, results, strict=True):
                if p.done.done():
                    continue
                if isinstance(result, BaseException):
                    p.done.set_exception(result)
                else:
                    p.done.set_result(result)
            if any(result is True and p.plan.queued for p, result in zip(batch, results, strict=True)):
                self.on_jobs()

    async def _write_alone(self, pending: _Pending) -> bool | BaseException:
        try:
            return (await self._write([pending]))[0]
        except Exception as exc:
            return exc

    async def _write(self, batch: Sequence[_Pending]) -> list[bool]:
        if self._thread is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, self._write_sync, batch)
        async with self.engine.begin() as conn:
            results = []
            for p in batch:
                delivery_id = (await conn.execute(self._delivery_insert(p))).scalar()
                if delivery_id is not None and (rows := self._job_rows(p, delivery_id)):
                    await conn.execute(JOBS.insert(), rows)
                results.append(delivery_id is not None)
            return results

    async def _checkpoint_loop(self, every: float = 1.0) -> None:
        """Fold the WAL into the database file once a second from a connection of its own.

        A PASSIVE checkpoint never blocks the writer, so a commit never waits for the database
        file's sync (with autocheckpoint, every ~1000 pages one unlucky batch would).
        """
        checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-checkpointer")
        loop = asyncio.get_running_loop()
        conn: sqlite3.Connection | None = None
        try:
            while True:
                await asyncio.sleep(every)
                if conn is None:
                    conn = await loop.run_in_executor(checkpointer, self._checkpoint_connection)
                await loop.run_in_executor(checkpointer, _checkpoint, conn)
        finally:
            if conn is not None:
                checkpointer.submit(conn.close)
            checkpointer.shutdown(wait=False)

    def _checkpoint_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._sqlite_path, timeout=30, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(conn)
        return conn

    def _write_sync(self, batch: Sequence[_Pending]) -> list[bool]:
        # Plain sqlite3 on the writer's own thread: building SQLAlchemy statements per row would cost
        # more than SQLite's insert itself.
        if self._sqlite_conn is None:
            self._sqlite_conn = sqlite3.connect(self._sqlite_path, timeout=30, isolation_level=None)
            sqlite_pragmas(self._sqlite_conn)
            # A checkpoint inside a commit stalls every request of the batch (it syncs the database
            # file); the checkpointer does it beside the writer instead.
            self._sqlite_conn.execute("PRAGMA wal_autocheckpoint=0")
        conn = self._sqlite_conn
        results = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for p in batch:
                d = p.delivery
                row = conn.execute(
                    _SQLITE_DELIVERY,
                    (
                        d.hook_id,
                        d.guid,
                        d.event,
                        d.action,
                        d.repository,
                        d.installation_id,
                        d.sender,
                        _sqlite_time(d.received_at),
                        p.plan.outcome,
                        d.body,
                    ),
                ).fetchone()
                if row is not None and (rows := self._job_rows(p, row[0])):
                    conn.executemany(
                        _SQLITE_JOB,
                        [
                            (
                                r["kind"],
                                r["delivery_id"],
                                r["serial_key"],
                                json.dumps(r["payload"]),
                                r["state"],
                                r["attempts"],
                                r["max_attempts"],
                                _sqlite_time(r["run_after"]),
                                _sqlite_time(r["created_at"]),
                                _sqlite_time(r["updated_at"]),
                            )
                            for r in rows
                        ],
                    )
                results.append(row is not None)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return results

    def _delivery_insert(self, pending: _Pending) -> Any:
        d, plan = pending.delivery, pending.plan
        # ON CONFLICT DO NOTHING: a redelivery of a stored (hook id, GUID) returns no id and creates nothing.
        return (
            self._insert.values(
                hook_id=d.hook_id,
                guid=d.guid,
                event=d.event,
                action=d.action,
                repository=d.repository,
                installation_id=d.installation_id,
                sender=d.sender,
                received_at=d.received_at,
                outcome=plan.outcome,
                body=d.body,
            )
            .on_conflict_do_nothing(index_elements=["hook_id", "guid"])
            .returning(DELIVERIES.c.id)
        )

    def _job_rows(self, pending: _Pending, delivery_id: int) -> list[dict[str, Any]]:
        d = pending.delivery
        return [
            job_row(
                kind,
                d.serial_key(),
                delivery_id=delivery_id,
                max_attempts=self.max_attempts,
                payload={"event": d.event, "action": d.action},
            )
            for kind in pending.plan.jobs
        ]


_SQLITE_DELIVERY = (
    "INSERT INTO deliveries (hook_id, guid, event, action, repository, installation_id, sender, received_at,"
    " outcome, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hook_id, guid) DO NOTHING RETURNING id"
)
_SQLITE_JOB = (
    "INSERT INTO jobs (kind, delivery_id, serial_key, payload, state, attempts, max_attempts, run_after,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy's SQLite DateTime stores (UTC), so the queue's comparisons hold."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _checkpoint(conn: sqlite3.Connection) -> None:
    # Read the pragma's row: an unread cursor keeps a statement open on the connection.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
