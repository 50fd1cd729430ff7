"""The installations table, read: which app installation covers a repository (kept by bot.handlers.installation)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.models import Installation


async def installation_for(engine: AsyncEngine, full_name: str) -> int | None:
    """The app installation that covers ``full_name`` (from the installation webhooks we stored)."""
    owner = full_name.split("/", 1)[0].lower()
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Installation.id, Installation.account, Installation.repositories)
            .where(Installation.deleted.is_(False), Installation.suspended.is_(False))
            .order_by(Installation.id.desc())
        )
        for row in rows:
            repos = row.repositories or {}
            names = {n.lower() for n in repos.get("names", [])}
            if full_name.lower() in names or (repos.get("all") and row.account.lower() == owner):
                return int(row.id)
    return None


async def active_installations(engine: AsyncEngine) -> list[int]:
    """The ids of the App's installations that are neither deleted nor suspended."""
    async with engine.connect() as conn:
        rows = await conn.scalars(
            select(Installation.id)
            .where(Installation.deleted.is_(False), Installation.suspended.is_(False))
            .order_by(Installation.id)
        )
        return [int(i) for i in rows]
