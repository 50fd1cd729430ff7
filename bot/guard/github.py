"""The guard's narrow view of GitHub: repository config, deploy-repo git access, pull requests, comments.

``AppGitHub`` answers it with the GitHub App (an installation per repository, found by the lookup the
deploy shares: bot.github.installations).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config.repo import DEFAULT_DEPLOY_ROOT, RepoConfig, RepoConfigError
from bot.context import GitHubAppPort
from bot.deploy.gitops import DeployRepo
from bot.github.contents import read_repo_config
from bot.github.installations import Installations, from_table
from bot.github.pulls import open_or_update_pull


class GuardError(Exception):
    """Something the guard needs from GitHub is missing; the message says what to fix."""


class GuardGitHub(Protocol):
    async def installation(self, repo: str) -> int | None: ...

    async def read_config(self, repo: str) -> RepoConfig | RepoConfigError | None: ...

    async def deploy_repo(self, full_name: str, workdir: Path) -> DeployRepo: ...

    async def open_or_update_pr(
        self, repo: str, branch: str, base: str, title: str, body: str
    ) -> dict[str, Any] | None: ...

    async def pull(self, repo: str, number: int) -> dict[str, Any]: ...

    async def merge_pr(self, repo: str, number: int, title: str) -> str: ...

    async def comment(self, repo: str, number: int, body: str) -> None: ...

    async def comments(self, repo: str, number: int) -> list[str]: ...


class AppGitHub:
    """GuardGitHub through the GitHub App; repository configs are cached for ``config_ttl`` seconds."""

    def __init__(
        self,
        app: GitHubAppPort,
        engine: AsyncEngine,
        *,
        config_ttl: float = 30.0,
        deploy_root: str | None = DEFAULT_DEPLOY_ROOT,
    ) -> None:
        self._app = app
        self._engine = engine
        self._ttl = config_ttl
        self._deploy_root = deploy_root
        self._configs: dict[str, tuple[float, RepoConfig | RepoConfigError | None]] = {}
        self._installations = Installations(app, from_table(engine))

    async def installation(self, repo: str) -> int | None:
        return await self._installations(repo)

    async def _installation(self, repo: str) -> int:
        installation = await self._installations(repo)
        if installation is None:
            raise GuardError(
                f"the GitHub App is not installed on {repo}: install it there (contents and pull requests: write)"
            )
        return installation

    async def _gh(self, repo: str) -> GitHubAPI:
        return await self._app.for_installation(await self._installation(repo))

    async def read_config(self, repo: str) -> RepoConfig | RepoConfigError | None:
        cached = self._configs.get(repo)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        config = await self._read_config(repo)
        self._configs[repo] = (time.monotonic(), config)
        return config

    async def _read_config(self, repo: str) -> RepoConfig | RepoConfigError | None:
        # No ref: the default branch, which is where the policy lives.
        return await read_repo_config(await self._gh(repo), repo, deploy_root=self._deploy_root)

    async def deploy_repo(self, full_name: str, workdir: Path) -> DeployRepo:
        installation = await self._installation(full_name)
        # The token travels in a header set per command (bot.github.git), never in the URL.
        url = await self._app.clone_url(full_name, installation)
        return DeployRepo(url, workdir, token=self._app.git_token(installation))

    async def open_or_update_pr(
        self, repo: str, branch: str, base: str, title: str, body: str
    ) -> dict[str, Any] | None:
        return await open_or_update_pull(await self._gh(repo), repo, branch, base, title, body)

    async def pull(self, repo: str, number: int) -> dict[str, Any]:
        gh = await self._gh(repo)
        pull: dict[str, Any] = await gh.getitem(f"/repos/{repo}/pulls/{number}")
        return pull

    async def merge_pr(self, repo: str, number: int, title: str) -> str:
        gh = await self._gh(repo)
        result = await gh.put(
            f"/repos/{repo}/pulls/{number}/merge", data={"merge_method": "merge", "commit_title": title}
        )
        return str((result or {}).get("sha", ""))

    async def comment(self, repo: str, number: int, body: str) -> None:
        gh = await self._gh(repo)
        await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": body})

    async def comments(self, repo: str, number: int) -> list[str]:
        gh = await self._gh(repo)
        return [
            str(c.get("body") or "") async for c in gh.getiter(f"/repos/{repo}/issues/{number}/comments?per_page=100")
        ]
