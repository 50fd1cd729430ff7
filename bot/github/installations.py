"""Which GitHub App installation covers a repository: the one lookup the deploy and the guard share.

GitHub answers ``GET /repos/{owner}/{repo}/installation`` to the app itself (JWT). A client without
app-level access falls back to ``known`` (the installations table the installation webhooks keep).
The answer feeds the tenancy decision (bot.deploy.tenancy), so "not installed" is a value (None),
not an exception: the caller says which rule refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine


@runtime_checkable
class AppClient(Protocol):
    """App-level (JWT) access, to find the installation on a repository."""

    async def app_client(self) -> GitHubAPI: ...


Known = Callable[[str], Awaitable[int | None]]


class Installations:
    """``await lookup(repo)`` -> installation id or None; found ids are cached (an installation id is
    stable, and a repository that moves to another account has another full name)."""

    def __init__(self, github: object, known: Known | None = None) -> None:
        self._github = github
        self._known = known
        self._found: dict[str, int] = {}

    async def __call__(self, repo: str) -> int | None:
        key = repo.lower()
        if key in self._found:
            return self._found[key]
        found: int | None = None
        if isinstance(self._github, AppClient):
            app = await self._github.app_client()
            try:
                found = int((await app.getitem(f"/repos/{repo}/installation"))["id"])
            except BadRequest as exc:
                if exc.status_code != 404:
                    raise
        elif self._known is not None:
            found = await self._known(repo)
        if found is not None:
            self._found[key] = found
        return found


def from_table(engine: AsyncEngine) -> Known:
    """The installations the webhooks told us about (bot.store.installations)."""
    from bot.store.installations import installation_for

    async def known(repo: str) -> int | None:
        return await installation_for(engine, repo)

    return known
