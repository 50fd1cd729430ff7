"""installation and installation_repositories: the installations table follows the App's installs (who
installed it, on which repositories, suspended or deleted). Nothing is queued and GitHub is never called."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.context import Services
from bot.handlers.installation import TABLE
from tests.handlers.conftest import FakeGH, deliver, jobs

ACME = {"login": "acme", "type": "Organization"}


def repo(name: str) -> dict[str, Any]:
    return {"id": 1000 + len(name), "name": name.split("/")[1], "full_name": name, "private": True}


def installation_event(action: str, *, selection: str = "selected", repos: list[str] | None = None) -> dict[str, Any]:
    """A GitHub `installation` webhook (the docs' shape, trimmed to what the handler reads)."""
    payload: dict[str, Any] = {
        "action": action,
        "installation": {"id": 42, "account": ACME, "repository_selection": selection},
        "sender": {"login": "alice", "type": "User"},
    }
    if repos is not None:
        payload["repositories"] = [repo(r) for r in repos]
    return payload


def repositories_event(*, added: list[str], removed: list[str], selection: str = "selected") -> dict[str, Any]:
    return {
        "action": "added" if added else "removed",
        "installation": {"id": 42, "account": ACME},
        "repository_selection": selection,
        "repositories_added": [repo(r) for r in added],
        "repositories_removed": [repo(r) for r in removed],
        "sender": {"login": "alice", "type": "User"},
    }


async def recorded(services: Services) -> list[dict[str, Any]]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(TABLE.c.id, TABLE.c.account, TABLE.c.repositories, TABLE.c.suspended, TABLE.c.deleted)
        )
        return [dict(r._mapping) for r in rows]


async def test_a_new_installation_is_recorded_with_its_repositories(services: Services) -> None:
    gh = FakeGH()
    await deliver("installation", installation_event("created", repos=["acme/models", "acme/deploy"]), gh, services)
    assert await recorded(services) == [
        {
            "id": 42,
            "account": "acme",
            "repositories": {"all": False, "names": ["acme/deploy", "acme/models"]},
            "suspended": False,
            "deleted": False,
        }
    ]
    assert gh.calls == [] and await jobs(services) == []


async def test_suspension_and_deletion_are_flags_on_the_same_row(services: Services) -> None:
    gh = FakeGH()
    await deliver("installation", installation_event("created", selection="all", repos=[]), gh, services)
    await deliver("installation", installation_event("suspend", selection="all"), gh, services)
    [row] = await recorded(services)
    assert row["suspended"] and not row["deleted"] and row["repositories"]["all"]
    await deliver("installation", installation_event("deleted", selection="all"), gh, services)
    [row] = await recorded(services)
    assert row["deleted"] and not row["suspended"]
    assert gh.calls == [] and await jobs(services) == []


async def test_repositories_added_and_removed_update_the_list(services: Services) -> None:
    gh = FakeGH()
    await deliver("installation", installation_event("created", repos=["acme/models"]), gh, services)
    await deliver("installation_repositories", repositories_event(added=["acme/deploy"], removed=[]), gh, services)
    await deliver("installation_repositories", repositories_event(added=[], removed=["acme/models"]), gh, services)
    [row] = await recorded(services)
    assert row["repositories"] == {"all": False, "names": ["acme/deploy"]}
    assert gh.calls == [] and await jobs(services) == []


async def test_repositories_of_an_installation_not_seen_before_start_its_row(services: Services) -> None:
    """The bot may be started after the App was installed: the first event it hears creates the row."""
    await deliver("installation_repositories", repositories_event(added=["acme/models"], removed=[]), None, services)
    assert [r["repositories"]["names"] for r in await recorded(services)] == [["acme/models"]]
