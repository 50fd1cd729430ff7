"""Named leases: with several replicas on one database, exactly one holds a lease and runs a loop.

The guard's watcher and the deploy's live tracker each take their own lease (a row of ``guard_leases``,
by name). The holder renews it every round; a lease left to expire (its holder died) is taken by the
next replica that asks, and a holder shutting down hands it back at once.
"""

from __future__ import annotations

import contextlib
import socket
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.base import utcnow
from bot.store.guard_models import GuardLease


async def take_lease(conn: AsyncConnection, name: str, holder: str, ttl_s: float, now: datetime | None = None) -> bool:
    """Hold or renew the lease ``name`` for ``ttl_s``; False while another holder's lease is unexpired.

    One conditional UPDATE (PostgreSQL re-checks its WHERE on the locked row, so two replicas racing
    for an expired lease cannot both win), else an INSERT that loses quietly to a concurrent one.
    """
    now = now or utcnow()
    until = now + timedelta(seconds=ttl_s)
    table = cast(Table, GuardLease.__table__)
    renewed = await conn.execute(
        update(table)
        .where(table.c.name == name, or_(table.c.holder == holder, table.c.expires_at <= now))
        .values(holder=holder, expires_at=until)
    )
    if renewed.rowcount:
        return True
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = await conn.execute(
        dialect.insert(table).values(name=name, holder=holder, expires_at=until).on_conflict_do_nothing()
    )
    return bool(inserted.rowcount)


async def drop_lease(conn: AsyncConnection, name: str, holder: str) -> None:
    table = cast(Table, GuardLease.__table__)
    await conn.execute(delete(table).where(table.c.name == name, table.c.holder == holder))


class Lease:
    """One named lease as held by this process (``holder``: the host, so a bot restarted in place takes
    its lease straight back)."""

    def __init__(self, engine: AsyncEngine, name: str, *, ttl: float, holder: str | None = None) -> None:
        self.engine = engine
        self.name = name
        self.ttl = ttl
        self.holder = holder or socket.gethostname()

    async def take(self) -> bool:
        """Hold or renew it for another ``ttl``; False while another replica holds it."""
        async with self.engine.begin() as conn:
            return await take_lease(conn, self.name, self.holder, self.ttl)

    async def resign(self) -> None:
        """Hand it back (at shutdown), so another replica takes over from its next round."""
        with contextlib.suppress(Exception):
            async with self.engine.begin() as conn:
                await drop_lease(conn, self.name, self.holder)
