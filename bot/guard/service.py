"""The guard as a feature of the running service: the watcher loop, chat-ops ``rollback`` and its status section."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from bot.chatops.service import CommandContext, Outcome
from bot.context import Feature, Services, need
from bot.deploy.chart import ModelServerChart
from bot.guard.github import AppGitHub
from bot.guard.prometheus import PrometheusHTTP
from bot.guard.rollback import RollbackError, RollbackRequest, RollbackResult, Rollbacks
from bot.guard.status import status_text
from bot.guard.templates import load_templates
from bot.guard.watcher import Watcher
from bot.settings import Settings
from bot.store.deployments import DeploymentView

log = logging.getLogger(__name__)


@dataclass
class Guard:
    rollbacks: Rollbacks
    watcher: Watcher | None  # None when no Prometheus is configured

    async def status(self, repo: str | None = None) -> str:
        return await status_text(self.rollbacks.engine, repo)


def render_results(results: Sequence[RollbackResult]) -> str:
    lines = []
    for r in results:
        if r.incident is None:
            lines.append(r.preview.rstrip())
            continue
        i = r.incident
        again = "" if r.created else " (already in progress: no second PR)"
        where = f"[#{i.pr_number}]({i.pr_url})" if i.pr_url else "a pull request (not opened yet)"
        state = {"merged": "merged", "open": "open, waiting for a merge", "closed": "closed"}.get(i.state, i.state)
        line = (
            f"Rollback of {i.model} `{i.bad_version[:7]}` -> `{i.target_version[:7]}` in {i.environment}{again}: "
            f"{where} in {i.deploy_repo}, {state}; the version is pinned."
        )
        if i.last_error:
            line += f" Last error (retried each guard round): {i.last_error}"
        lines.append(line)
    return "\n\n".join(lines)


def make_rollbacks(services: Services, settings: Settings, chart: ModelServerChart | None) -> Rollbacks:
    """The one way to rollbacks, for the service's guard and `modelship rollback` alike; ``chart``: the
    model-server chart the composition root loaded once (None: rollbacks are not validated against it)."""
    github = AppGitHub(
        services.github,
        services.engine,
        config_ttl=settings.guard_interval_seconds,
        deploy_root=settings.deploy_root,
    )
    return Rollbacks(
        services.engine,
        github,
        settings.data_dir / "guard" / "deploy",
        chart=chart,
        bot_login=services.bot_login,
        allowlist=settings.deploy_pairs,
        emit=services.emit,
    )


def setup(services: Services, settings: Settings, chart: ModelServerChart | None) -> tuple[Guard, Feature]:
    """The guard and what it plugs into the service: the watcher loop (with Prometheus) and its session."""
    rollbacks = make_rollbacks(services, settings, chart)
    feature = Feature()
    watcher = None
    if settings.prometheus_url:
        session = aiohttp.ClientSession()
        feature.closers.append(session.close)

        async def show_verdict(deployment: DeploymentView) -> None:
            """The PR that shipped the version shows the guard's verdict in its dossier (the Deploy comment)."""
            deploy = services.deploy
            installation = await deploy.installations(deployment.repo) if deploy is not None else None
            if deploy is None or installation is None or not deployment.source_pr:
                return
            gh = await services.github.for_installation(installation)
            await deploy.update_sticky(gh, deployment.repo, deployment.source_pr)

        watcher = Watcher(
            services.engine,
            PrometheusHTTP(settings.prometheus_url, session),
            rollbacks,
            templates=load_templates(settings.promql_dir),
            default_interval=settings.guard_interval_seconds,
            on_verdict=show_verdict,
        )
        feature.background.append(watcher.run)
    else:
        log.info("guard: MODELSHIP_PROMETHEUS_URL is not set, so no deployment is watched (rollback still works)")
    return Guard(rollbacks, watcher), feature


async def run_rollback(ctx: CommandContext) -> Outcome:
    """`/modelship rollback <env> [to <version>]`."""
    guard = need(ctx.services.guard, "guard")
    cmd = ctx.command
    if cmd.env is None:
        return Outcome(False, ctx.reply("Say which environment: `/modelship rollback <env> [to <version>]`."), "no env")
    request = RollbackRequest(
        repo=ctx.repo,
        environment=cmd.env,
        to=cmd.args.get("version"),
        actor=ctx.actor,
        reason=f"/modelship rollback by {ctx.actor} in {ctx.repo}#{ctx.number}",
        dry_run=cmd.dry_run,
    )
    try:
        results = await guard.rollbacks.request(request)
    except RollbackError as exc:
        return Outcome(False, ctx.reply(f"Cannot roll back: {exc}"), f"refused: {exc}"[:200])
    body = render_results(results)
    if cmd.dry_run:
        body = f"Dry run, nothing written:\n\n```diff\n{body}\n```"
    return Outcome(True, ctx.reply(body), "dry run" if cmd.dry_run else "rollback requested")


async def status_section(ctx: CommandContext) -> str:
    """The guard's section of `/modelship status`."""
    return await need(ctx.services.guard, "guard").status(ctx.repo)
