"""Deploy as a feature of the running service: the DeployService from settings and its `deploy` job runner."""

from __future__ import annotations

from bot.artifacts.registry import OciRegistry
from bot.context import Feature, Services
from bot.deploy.chart import ModelServerChart
from bot.deploy.service import KIND, DeployService
from bot.github.app import git_base_url
from bot.settings import Settings


def web_url(api_url: str) -> str:
    """Where people look at repositories, commits and PRs (github.com for api.github.com)."""
    return git_base_url(api_url)


def make_service(
    services: Services, settings: Settings, chart: ModelServerChart, registry: OciRegistry | None = None
) -> DeployService:
    return DeployService(
        services,
        chart=chart,  # loaded once by bot.app
        registry=registry,  # MODELSHIP_REGISTRY, built once by bot.app
        web_url=web_url(settings.github_api_url),
        allowlist=settings.deploy_pairs,
    )


def feature(service: DeployService) -> Feature:
    return Feature(runners={KIND: service.on_merge}, on_final_failure={KIND: service.on_final_failure})
