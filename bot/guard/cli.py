"""``modelship status`` and ``modelship rollback``: the guard from the command line (an entry point)."""

from __future__ import annotations

import asyncio
import sys

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
    from bot.app import StartupError, operator_services  # the composition root builds what the bot runs
    from bot.context import need
    from bot.guard.rollback import RollbackError, RollbackRequest
    from bot.guard.service import render_results

    settings = _settings()

    async def run() -> str:
        async with operator_services(settings) as services:
            request = RollbackRequest(
                repo, environment, model=model, to=version, actor=actor, reason=reason, dry_run=dry_run
            )
            return render_results(await need(services.guard, "guard").rollbacks.request(request))

    try:
        click.echo(asyncio.run(run()))
    except StartupError as exc:
        click.echo(f"modelship rollback: {exc}", err=True)
        sys.exit(2)
    except RollbackError as exc:
        click.echo(f"modelship rollback: {exc}", err=True)
        sys.exit(1)
