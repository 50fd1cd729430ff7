"""``modelship status`` and ``modelship rollback``: the guard from the command line (an entry point)."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from bot.settings import Settings


def _settings() -> Settings:
    from bot.cli import _settings as load

    return load()


@click.command()
@click.option("--repo", help="Only this model repository (owner/name).")
def status(repo: str | None) -> None:
    """Each environment's version, health, last check values, alerts and open rollback incidents."""
    from bot.guard.status import status_text
    from bot.store.db import make_engine

    settings = _settings()

    async def run() -> str:
        engine = make_engine(settings.effective_database_url)
        try:
            return await status_text(engine, repo)
        finally:
            await engine.dispose()

    try:
        click.echo(asyncio.run(run()))
    except (OperationalError, ProgrammingError) as exc:
        click.echo(f"modelship status: cannot read the database ({exc.orig}); run `modelship migrate` first", err=True)
        sys.exit(1)


@click.command()
@click.option("--repo", required=True, help="The model repository (owner/name).")
@click.option("--env", "environment", required=True, help="The environment to roll back.")
@click.option("--to", "version", help="Restore this version (commit SHA, ≥ 7 characters); default: last healthy.")
@click.option("--model", help="Only this model (default: every model deployed in the environment).")
@click.option("--reason", default="", help="Why; goes into the pin and the PR.")
@click.option("--actor", default="cli", show_default=True, help="Who asks (shown in the PR).")
@click.option("--dry-run", is_flag=True, help="Show the change the rollback PR would make; write nothing.")
def rollback(
    repo: str, environment: str, version: str | None, model: str | None, reason: str, actor: str, dry_run: bool
) -> None:
    """Open a rollback PR in the deploy repository that restores and pins a version (same path as the guard)."""
    from bot.github.app import GitHubApp
    from bot.guard.github import AppGitHub
    from bot.guard.rollback import RollbackError, RollbackRequest, Rollbacks
    from bot.guard.service import render_results, rollback_chart
    from bot.store.db import make_engine, migrate

    settings = _settings()
    key = settings.private_key_pem()
    if settings.github_app_id is None or key is None:
        click.echo(
            "modelship rollback: MODELSHIP_GITHUB_APP_ID and MODELSHIP_GITHUB_PRIVATE_KEY_PATH are required", err=True
        )
        sys.exit(2)

    async def run() -> str:
        engine = make_engine(settings.effective_database_url)
        await migrate(engine)
        async with aiohttp.ClientSession() as session:
            app = GitHubApp(
                app_id=settings.github_app_id or 0,
                private_key_pem=key,
                api_url=settings.github_api_url,
                session=session,
            )
            rollbacks = Rollbacks(
                engine,
                AppGitHub(app, engine, deploy_root=settings.deploy_root),
                settings.data_dir / "guard" / "deploy",
                chart=rollback_chart(settings.charts_dir),
                bot_login=f"{settings.github_app_slug}[bot]",
                allowlist=settings.deploy_pairs,
            )
            request = RollbackRequest(
                repo, environment, model=model, to=version, actor=actor, reason=reason, dry_run=dry_run
            )
            try:
                return render_results(await rollbacks.request(request))
            finally:
                await engine.dispose()

    try:
        click.echo(asyncio.run(run()))
    except RollbackError as exc:
        click.echo(f"modelship rollback: {exc}", err=True)
        sys.exit(1)
