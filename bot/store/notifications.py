"""The ``notify_events`` table's one reader and writer: the notification outbox.

An event is written inside the transaction of what it reports (or right after it), keyed so that the
same event emitted twice — a retried job, a redelivered webhook, a second replica — is one row. Sending
is a separate job (bot.notify), so a slow or failing receiver never holds up the work that emitted it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.base import utcnow
from bot.store.notify_models import NotifyEvent

EVENTS = cast(Table, NotifyEvent.__table__)


@dataclass(frozen=True)
class StoredEvent:
    id: int
    key: str
    kind: str
    payload: dict[str, Any]
    delivered: tuple[str, ...]
    created_at: str  # ISO 8601, UTC


async def add_event(conn: AsyncConnection, *, key: str, kind: str, payload: Mapping[str, Any]) -> int | None:
    """Insert the event unless its key exists; its id when this call created it, else None."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(EVENTS)
        .values(key=key[:300], kind=kind, payload=dict(payload), delivered=[], created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(EVENTS.c.id)
    )
    return cast(int | None, (await conn.execute(statement)).scalar())


async def get_event(conn: AsyncConnection, event_id: int) -> StoredEvent | None:
    row = (await conn.execute(select(EVENTS).where(EVENTS.c.id == event_id))).first()
    if row is None:
        return None
    created = row.created_at.isoformat().replace("+00:00", "Z") if row.created_at else ""
    return StoredEvent(row.id, row.key, row.kind, dict(row.payload), tuple(row.delivered or ()), created)


async def mark_delivered(conn: AsyncConnection, event_id: int, sink: str, *, complete: bool) -> None:
    """Record that ``sink`` has the event (``complete``: every sink that wants it has it now)."""
    event = await get_event(conn, event_id)
    if event is None or sink in event.delivered:
        return
    values: dict[str, Any] = {"delivered": [*event.delivered, sink]}
    if complete:
        values["sent_at"] = utcnow()
    await conn.execute(update(EVENTS).where(EVENTS.c.id == event_id).values(**values))


async def events(conn: AsyncConnection, *, limit: int = 200) -> list[StoredEvent]:
    """The newest events, oldest first (for tests and `modelship status`-like views)."""
    rows = (await conn.execute(select(EVENTS.c.id).order_by(EVENTS.c.id.desc()).limit(limit))).scalars().all()
    found = [await get_event(conn, i) for i in reversed(rows)]
    return [e for e in found if e is not None]
