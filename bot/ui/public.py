"""Public repositories the bot serves: readable by every signed-in user, though ``GET /user/repos`` lists only
what a user owns, collaborates on or reaches through an org.

The list comes from each installation's repository list (``GET /installation/repositories``, the App's own
token), taking a repository as public only when GitHub says so (``visibility: public``, or ``private:
false`` where visibility is absent; ``internal`` and anything unknown stay hidden). It is kept for a short
TTL (a repository made private stops showing within it) and read again by one caller at a time. When GitHub
cannot be asked, the dashboard fails closed: no public repository is added until it can.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.context import GitHubAppPort

log = logging.getLogger(__name__)

MAX_REPOS = 10_000  # per installation; more is cut, never guessed
RETRY = 5.0  # seconds before a failed listing is tried again


def is_public(repo: Mapping[str, Any]) -> bool:
    """GitHub's repository object says anyone may read it."""
    visibility = repo.get("visibility")
    if visibility is not None:
        return visibility == "public"
    return repo.get("private") is False


class PublicRepos:
    def __init__(
        self,
        installations: Callable[[], Awaitable[list[int]]],
        github: GitHubAppPort,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.installations = installations  # the App's live installations (bot.store.installations)
        self.github = github
        self.ttl = ttl
        self.clock = clock
        self._found: tuple[float, frozenset[str]] | None = None
        self._lock = asyncio.Lock()

    async def names(self) -> frozenset[str]:
        found = self._found
        if found is not None and self.clock() - found[0] < self.ttl:
            return found[1]
        async with self._lock:  # one listing for every request that finds the list stale
            found = self._found
            if found is not None and self.clock() - found[0] < self.ttl:
                return found[1]
            names = await self._list()
            # a failed listing (None) is asked again after RETRY seconds, with nothing public meanwhile
            stamp = self.clock() if names is not None else self.clock() - self.ttl + RETRY
            self._found = (stamp, names or frozenset())
            return names or frozenset()

    async def _list(self) -> frozenset[str] | None:
        names: set[str] = set()
        try:
            for installation in await self.installations():
                gh = await self.github.for_installation(installation)
                count = 0
                async for repo in gh.getiter("/installation/repositories?per_page=100", iterable_key="repositories"):
                    if isinstance(repo, dict) and is_public(repo) and isinstance(repo.get("full_name"), str):
                        names.add(repo["full_name"])
                    count += 1
                    if count >= MAX_REPOS:
                        break
        except Exception as exc:  # fail closed: without a fresh answer no repository is shown as public
            log.warning("dashboard: could not list the installations' public repositories: %s", type(exc).__name__)
            return None
        return frozenset(names)
