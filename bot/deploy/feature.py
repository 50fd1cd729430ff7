"""Deploy as a feature of the running service: the DeployService from settings, its `deploy` job runner,
and live tracking (bot.deploy.live) as a background loop."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bot.artifacts.registry import OciRegistry
from bot.context import Feature, Services, need
from bot.deploy.chart import ModelServerChart
from bot.deploy.live import LiveTracker, RolloutReader
from bot.deploy.service import KIND, DeployService
from bot.github.app import git_base_url
from bot.guard.prometheus import PrometheusHTTP
from bot.guard.templates import load_templates
from bot.settings import Settings

log = logging.getLogger(__name__)


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
        live_tracking=bool(settings.prometheus_url),  # live is judged from Prometheus (bot.deploy.live)
    )


def feature(service: DeployService) -> Feature:
    return Feature(runners={KIND: service.on_merge}, on_final_failure={KIND: service.on_final_failure})


def live_feature(
    services: Services, settings: Settings, *, reader: RolloutReader | None = None
) -> tuple[LiveTracker, Feature]:
    """Live tracking as a background loop (after the guard is built: it rolls back through the guard's path
    and reads configs through the guard's cache). Without Prometheus nothing can be judged: rows carry no
    rollout, a commit is ``success`` at once, and the loop finds nothing to do."""
    deploy = need(services.deploy, "deploy")
    guard = need(services.guard, "guard")
    feature = Feature()
    provider, template = None, None
    if settings.prometheus_url:
        session = aiohttp.ClientSession()
        feature.closers.append(session.close)
        provider = PrometheusHTTP(settings.prometheus_url, session)
        (template,) = load_templates(settings.promql_dir / "live").values()
    else:
        log.info("live tracking off: MODELSHIP_PROMETHEUS_URL is not set, so a deploy is `success` at its commit")

    async def github_for(repo: str) -> Any:
        installation = await deploy.installations(repo)
        if installation is None:
            raise LookupError(f"the GitHub App is not installed on {repo}")
        return await services.github.for_installation(installation)

    tracker = LiveTracker(
        services.engine,
        deploy.records,
        configs=guard.rollbacks.github,
        github_for=github_for,
        provider=provider,
        template=template,
        rollbacks=guard.rollbacks,
        listeners=services.deploy_listeners,  # the list itself: listeners added later are heard too
        interval=settings.live_interval_seconds,
        reader=reader,
    )
    deploy.tracker = tracker
    guard.rollbacks.live_tracking = provider is not None
    deploy.records.on_deployed = tracker.wake  # merged deploy PRs and rollbacks are seen at the next round
    feature.background.append(tracker.run)
    return tracker, feature
