"""`modelship promote` and `modelship deploy`: the chat-ops deploy commands for operators.

They act with the GitHub App's own credentials and reuse the DeployService the bot runs, so a
deploy from the command line is the same commit, history row and GitHub Deployment as one from a PR
comment. They skip chat-ops authorization: whoever holds the app's key is an operator.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable

import click
from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.config.repo import CONFIG_PATH, RepoConfig, RepoConfigError
from bot.context import need
from bot.deploy.gitops import DeployError
from bot.deploy.render import describe
from bot.deploy.service import DeployService
from bot.deploy.targets import DeployFailure, Result
from bot.settings import Settings

Action = Callable[[DeployService, GitHubAPI, RepoConfig, int, str], Awaitable[list[Result]]]


async def _run(settings: Settings, repo: str, action: Action) -> tuple[str, bool]:
    from bot.app import StartupError, operator_services  # the composition root builds what the bot runs

    try:
        async with operator_services(settings) as services:
            service = need(services.deploy, "deploy")
            try:
                installation = await service.installations(repo)
                if installation is None:
                    return f"the Modelship app is not installed on {repo}: install it there first", False
                gh = await services.github.for_installation(installation)
                branch = (await gh.getitem(f"/repos/{repo}"))["default_branch"]
                config = await service.config_at(gh, repo, branch)
            except RepoConfigError as exc:
                return f"{CONFIG_PATH} on the default branch of {repo} is invalid:\n{exc}", False
            except BadRequest as exc:
                return f"GitHub refused to show {repo}: {exc}", False
            if config is None or config.deploy is None:
                return f"{repo} has no {CONFIG_PATH} with a deploy section on its default branch", False
            results = await action(service, gh, config, installation, f"{getpass.getuser()} (modelship cli)")
            return describe(results, service.web_url, config.deploy.repository), all(r.ok for r in results)
    except StartupError as exc:
        return str(exc), False
    except (DeployFailure, DeployError) as exc:
        return str(exc), False


def _finish(text: str, ok: bool) -> None:
    click.echo(text, err=not ok)
    sys.exit(0 if ok else 1)


_REPO = click.option("--repo", required=True, help="The model repository, OWNER/NAME.")
_ENV = click.option("--env", "env", required=True, help="Environment from .modelship.yml.")
_DRY = click.option("--dry-run", is_flag=True, help="Print the diff of the deploy repository; write nothing.")


@click.command()
@_REPO
@_ENV
@_DRY
def promote(repo: str, env: str, dry_run: bool) -> None:
    """Copy the version running in ENV's upstream environment into ENV."""
    from bot.cli import _settings

    async def action(service: DeployService, gh: GitHubAPI, config: RepoConfig, inst: int, actor: str) -> list[Result]:
        return await service.promote(gh, repo, config, env, installation_id=inst, actor=actor, dry_run=dry_run)

    _finish(*asyncio.run(_run(_settings(), repo, action)))


@click.command()
@_REPO
@click.option("--pr", "number", type=int, required=True, help="The pull request whose head to deploy.")
@_ENV
@click.option("--variant", type=click.Choice(["original", "fp32", "int8"]), help="Which artefact to serve.")
@_DRY
@click.option(
    "--force",
    is_flag=True,
    help="Deploy even though the head's review did not pass (environments.<ENV>.requires: review_passed); "
    "written into the commit's Modelship-Override trailer.",
)
def deploy(repo: str, number: int, env: str, variant: str | None, dry_run: bool, force: bool) -> None:
    """Deploy the head of pull request PR (the models it changes) to ENV."""
    from bot.cli import _settings

    async def action(service: DeployService, gh: GitHubAPI, config: RepoConfig, inst: int, actor: str) -> list[Result]:
        return await service.deploy_head(
            gh,
            repo,
            number,
            config,
            env,
            installation_id=inst,
            actor=actor,
            variant=variant,
            dry_run=dry_run,
            force=force,
        )

    _finish(*asyncio.run(_run(_settings(), repo, action)))
