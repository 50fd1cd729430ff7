"""Chat-ops commands `deploy`, `promote` and `unpin` and the Deployments status section (bot.app lists them).

Authorization (write access, the environment's ``allowed`` and ``requires``) was decided by chat-ops
before these run; they read the base branch's config, act through the DeployService and answer.
"""

from __future__ import annotations

from gidgethub import GitHubException

from bot.chatops.service import CommandContext, Outcome
from bot.config.repo import CONFIG_PATH, RepoConfig, RepoConfigError
from bot.context import need
from bot.deploy.gitops import DeployError
from bot.deploy.render import describe, render_status
from bot.deploy.service import DeployService
from bot.deploy.targets import DeployFailure, Result
from bot.store.deployments import of_repo


async def _config(ctx: CommandContext) -> RepoConfig | str:
    pull = await ctx.lookups.pull()
    config = await ctx.lookups.config(pull["base"]["ref"])
    if config is None:
        return f"there is no `{CONFIG_PATH}` on the base branch, so there is no environment to deploy to."
    if isinstance(config, RepoConfigError):
        return f"`{CONFIG_PATH}` on the base branch is invalid: " + "; ".join(str(p) for p in config.problems[:5])
    return config


def _outcome(ctx: CommandContext, service: DeployService, config: RepoConfig, results: list[Result]) -> Outcome:
    assert config.deploy is not None
    body = describe(results, service.web_url, config.deploy.repository)
    ok = all(r.ok for r in results)
    summary = ", ".join(f"{r.env}/{r.model}: {r.state}" for r in results) or "nothing to do"
    forced = [r for r in results if r.detail.startswith("forced past")]
    if forced:  # the audit log's line says who overrode what (the detail starts "forced past `review_passed` by …")
        summary = f"OVERRIDE {forced[0].detail.partition(':')[0].removeprefix('forced past ')}; {summary}"
    return Outcome(ok, ctx.reply(body), summary[:200])


async def _run(ctx: CommandContext, action: str) -> Outcome:
    service = need(ctx.services.deploy, "deploy")
    config = await _config(ctx)
    if isinstance(config, str):
        return Outcome(False, ctx.reply(config), "config problem")
    env = ctx.command.env or ""
    command = ctx.command
    try:
        if action == "deploy":
            results = await service.deploy_head(
                ctx.gh,
                ctx.repo,
                ctx.number,
                config,
                env,
                installation_id=ctx.installation_id,
                actor=ctx.actor,
                variant=command.variant,
                dry_run=command.dry_run,
                force=command.force,
            )
        elif action == "promote":
            results = await service.promote(
                ctx.gh,
                ctx.repo,
                config,
                env,
                installation_id=ctx.installation_id,
                actor=ctx.actor,
                dry_run=command.dry_run,
                number=ctx.number,
            )
        else:
            results = await service.unpin(
                ctx.gh, ctx.repo, config, env, installation_id=ctx.installation_id, actor=ctx.actor
            )
            if not results:
                return Outcome(True, ctx.reply(f"Nothing in `{env}` is pinned; nothing changed."), "not pinned")
    except DeployFailure as exc:
        return Outcome(False, ctx.reply(str(exc)), "refused")
    except (DeployError, GitHubException) as exc:
        text = f"The deploy repository could not be written: {exc}. Nothing was changed; try again later."
        return Outcome(False, ctx.reply(text), "failed")
    return _outcome(ctx, service, config, results)


async def run_deploy(ctx: CommandContext) -> Outcome:
    return await _run(ctx, "deploy")


async def run_promote(ctx: CommandContext) -> Outcome:
    return await _run(ctx, "promote")


async def run_unpin(ctx: CommandContext) -> Outcome:
    return await _run(ctx, "unpin")


async def status_section(ctx: CommandContext) -> str:
    async with ctx.services.engine.connect() as conn:
        return render_status(await of_repo(conn, ctx.repo))
