"""What chat-ops asks GitHub before deciding: permissions, team memberships, the PR, its reviews and
the base branch's ``.modelship.yml``. One ``PrLookups`` per comment memoises the answers, so several
commands in one comment cost one round of requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import quote

import aiohttp
from gidgethub import GitHubException
from gidgethub.abc import GitHubAPI

from bot.chatops.authz import Permission, PrState
from bot.config.repo import DEFAULT_DEPLOY_ROOT, RepoConfig, RepoConfigError
from bot.github.contents import read_repo_config

_KNOWN: tuple[Permission, ...] = ("admin", "maintain", "write", "triage", "read", "none")
_LOOKUP_ERRORS = (GitHubException, aiohttp.ClientError, asyncio.TimeoutError)
# GitHub computes `mergeable` in the background and answers null until it is done.
_MERGEABLE_RETRIES = 3
_MERGEABLE_DELAY = 0.5


async def collaborator_permission(gh: GitHubAPI, repo: str, user: str) -> Permission | None:
    """The user's role on the repository; None when GitHub would not say (which denies)."""
    try:
        data = await gh.getitem(f"/repos/{repo}/collaborators/{quote(user, safe='')}/permission")
    except _LOOKUP_ERRORS:
        return None
    # role_name tells maintain and triage apart; `permission` folds them into write and read.
    for key in ("role_name", "permission"):
        value = data.get(key) if isinstance(data, dict) else None
        if value in _KNOWN:
            return cast(Permission, value)
    return None


def from_fork(pull: dict[str, Any]) -> bool:
    head_repo = (pull.get("head") or {}).get("repo")
    base_repo = (pull.get("base") or {}).get("repo") or {}
    # A deleted fork has head.repo null: it is still untrusted.
    return head_repo is None or head_repo.get("full_name") != base_repo.get("full_name")


def team_refs(allowed: Iterable[str], default_org: str) -> set[tuple[str, str]]:
    """(org, slug) for every ``team:[org/]slug`` entry of an environment's ``allowed`` list."""
    refs = set()
    for entry in allowed:
        kind, _, name = entry.partition(":")
        if kind.strip().lower() != "team" or not name.strip():
            continue
        org, _, slug = name.strip().rpartition("/")
        refs.add((org or default_org, slug))
    return refs


class PrLookups:
    def __init__(self, gh: GitHubAPI, repo: str, number: int, *, deploy_root: str | None = DEFAULT_DEPLOY_ROOT) -> None:
        self.gh = gh
        self.deploy_root = deploy_root
        self.repo = repo
        self.number = number
        self._pull: dict[str, Any] | None = None
        self._permissions: dict[str, Permission | None] = {}
        self._teams: dict[tuple[str, str, str], bool] = {}
        self._approved: bool | None = None
        self._config: dict[str, RepoConfig | RepoConfigError | None] = {}

    async def pull(self, *, need_mergeable: bool = False) -> dict[str, Any]:
        if self._pull is None or (need_mergeable and self._pull.get("mergeable") is None):
            self._pull = await self._get_pull(need_mergeable)
        return self._pull

    async def _get_pull(self, need_mergeable: bool) -> dict[str, Any]:
        pull: dict[str, Any] = await self.gh.getitem(f"/repos/{self.repo}/pulls/{self.number}")
        for _ in range(_MERGEABLE_RETRIES if need_mergeable else 0):
            if pull.get("mergeable") is not None:
                break
            await asyncio.sleep(_MERGEABLE_DELAY)
            pull = await self.gh.getitem(f"/repos/{self.repo}/pulls/{self.number}")
        return pull

    async def permission(self, user: str) -> Permission | None:
        if user not in self._permissions:
            self._permissions[user] = await collaborator_permission(self.gh, self.repo, user)
        return self._permissions[user]

    async def teams(self, user: str, refs: Iterable[tuple[str, str]]) -> frozenset[str]:
        """The slugs among ``refs`` that ``user`` is an active member of; a failed lookup is "not a member"."""
        member = set()
        for org, slug in sorted(refs):
            key = (org.lower(), slug.lower(), user.lower())
            if key not in self._teams:
                self._teams[key] = await self._is_member(org, slug, user)
            if self._teams[key]:
                member.add(slug.lower())
        return frozenset(member)

    async def _is_member(self, org: str, slug: str, user: str) -> bool:
        path = f"/orgs/{quote(org, safe='')}/teams/{quote(slug, safe='')}/memberships/{quote(user, safe='')}"
        try:
            data = await self.gh.getitem(path)
        except _LOOKUP_ERRORS:
            return False
        return isinstance(data, dict) and data.get("state") == "active"

    async def approved(self) -> bool:
        """At least one approving review, and no reviewer whose latest word is "changes requested"."""
        if self._approved is None:
            latest: dict[str, str] = {}
            async for review in self.gh.getiter(f"/repos/{self.repo}/pulls/{self.number}/reviews?per_page=100"):
                state = str(review.get("state", "")).upper()
                login = (review.get("user") or {}).get("login", "")
                if state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                    latest[login] = state
            states = set(latest.values())
            self._approved = "APPROVED" in states and "CHANGES_REQUESTED" not in states
        return self._approved

    async def config(self, ref: str) -> RepoConfig | RepoConfigError | None:
        """The base branch's config, the reason it is invalid, or None when there is none."""
        if ref not in self._config:
            self._config[ref] = await self._read_config(ref)
        return self._config[ref]

    async def _read_config(self, ref: str) -> RepoConfig | RepoConfigError | None:
        return await read_repo_config(self.gh, self.repo, ref, deploy_root=self.deploy_root)

    async def pr_state(self, *, need_approved: bool, need_mergeable: bool, need_author: bool) -> PrState:
        pull = await self.pull(need_mergeable=need_mergeable)
        author = (pull.get("user") or {}).get("login", "")
        return PrState(
            approved=await self.approved() if need_approved else False,
            mergeable=pull.get("mergeable"),
            from_fork=from_fork(pull),
            author_permission=await self.permission(author) if need_author and author else None,
        )
