"""The collaborators a handler or job runner receives. Built once by the entry point."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.github.git import TokenSource
from bot.store.queue import JobQueue


class GitHubAppPort(Protocol):
    """What the service needs from the GitHub App client (bot.github.app.GitHubApp)."""

    async def for_installation(self, installation_id: int) -> GitHubAPI: ...

    def git_token(self, installation_id: int) -> TokenSource: ...

    async def clone_url(self, full_name: str, installation_id: int) -> str: ...

    def remember_repository(self, repository: object) -> None: ...


@dataclass
class Services:
    engine: AsyncEngine
    queue: JobQueue
    github: GitHubAppPort
    app_slug: str
    data_dir: Path
    extras: dict[str, Any] = field(default_factory=dict)  # feature services (sandbox, deploy, guard…)
    # MODELSHIP_DEPLOY_ROOT, normalised: every reader of `.modelship.yml` checks deploy.path_template against it.
    deploy_root: str = "environments/"

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"
