"""Keep the installations table current: which accounts installed the app, on which repositories."""

from __future__ import annotations

from typing import Any, cast

from gidgethub import routing
from gidgethub.abc import GitHubAPI
from gidgethub.sansio import Event
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

from bot.context import Services
from bot.store.base import utcnow
from bot.store.models import Installation

router = routing.Router()
TABLE = cast(Table, Installation.__table__)


def _repo_names(repos: list[dict[str, Any]] | None) -> list[str]:
    return sorted(r["full_name"] for r in repos or [] if isinstance(r, dict) and "full_name" in r)


async def _upsert(services: Services, installation_id: int, values: dict[str, Any]) -> None:
    dialect = postgresql if services.engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(TABLE).values(id=installation_id, updated_at=utcnow(), **values)
    stmt = stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": utcnow()})
    async with services.engine.begin() as conn:
        await conn.execute(stmt)


@router.register("installation")
async def on_installation(event: Event, gh: GitHubAPI | None, services: Services) -> None:
    inst = event.data["installation"]
    action = event.data.get("action")
    repos = {"all": inst.get("repository_selection") == "all", "names": _repo_names(event.data.get("repositories"))}
    await _upsert(
        services,
        inst["id"],
        {
            "account": inst.get("account", {}).get("login", ""),
            "repositories": repos,
            "suspended": action == "suspend",
            "deleted": action == "deleted",
        },
    )


@router.register("installation_repositories")
async def on_installation_repositories(event: Event, gh: GitHubAPI | None, services: Services) -> None:
    from sqlalchemy import select

    inst = event.data["installation"]
    async with services.engine.connect() as conn:
        current = await conn.scalar(select(TABLE.c.repositories).where(TABLE.c.id == inst["id"]))
    names = set((current or {}).get("names", []))
    names |= set(_repo_names(event.data.get("repositories_added")))
    names -= set(_repo_names(event.data.get("repositories_removed")))
    await _upsert(
        services,
        inst["id"],
        {
            "account": inst.get("account", {}).get("login", ""),
            "repositories": {"all": event.data.get("repository_selection") == "all", "names": sorted(names)},
        },
    )
