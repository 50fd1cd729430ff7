"""Plugs deploy into the service: the `deploy` job runner and the chat-ops commands."""

from __future__ import annotations

from bot.app import Feature
from bot.context import Services
from bot.deploy.chart import ModelServerChart
from bot.deploy.commands import register_commands
from bot.deploy.service import EXTRAS_KEY, KIND, DeployService
from bot.github.app import git_base_url
from bot.settings import Settings
from bot.store.queue import ClaimedJob


def web_url(api_url: str) -> str:
    """Where people look at repositories, commits and PRs (github.com for api.github.com)."""
    return git_base_url(api_url)


async def setup(services: Services, settings: Settings) -> Feature:
    service = DeployService(
        services,
        chart=ModelServerChart.load(settings.charts_dir),
        web_url=web_url(settings.github_api_url),
        allowlist=settings.deploy_pairs,
    )
    services.extras[EXTRAS_KEY] = service
    register_commands(services)

    async def run(job: ClaimedJob) -> None:
        await service.on_merge(job)

    return Feature(runners={KIND: run}, on_final_failure={KIND: service.on_final_failure})
