"""The `modelship` command line. The only place that reads the environment (through Settings)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, ClassVar

import click

from bot.settings import Settings, SettingsError, load_settings


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        click.echo(f"modelship: {exc}", err=True)
        click.echo("See the settings table in README.md.", err=True)
        sys.exit(2)


class LazyGroup(click.Group):
    """Subcommands from feature packages are imported only when used, so `--help` stays fast."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "serve-model": ("model_server.serve", "serve_model"),
        "fetch-model": ("model_server.fetch_cli", "fetch_model_command"),
        "status": ("bot.guard.cli", "status"),
        "eval": ("bot.review.local", "eval_command"),
        "deploy": ("bot.deploy.cli", "deploy"),
        "promote": ("bot.deploy.cli", "promote"),
        "optimize": ("bot.review.local", "optimize_command"),
        "rollback": ("bot.guard.cli", "rollback"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name]
            cmd: click.Command = getattr(importlib.import_module(module), attr)
            return cmd
        return super().get_command(ctx, name)


def _dev_kit_command(name: str, summary: str) -> click.Command:
    """`modelship demo|devhub` run the dev kit (`python -m devkit`) from a checkout. The product never imports
    devkit (it is not in the wheel): the command replaces this process with the dev kit's own."""

    @click.command(name, help=summary, context_settings={"ignore_unknown_options": True}, add_help_option=False)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def forward(args: tuple[str, ...]) -> None:
        import importlib.util
        import os
        from pathlib import Path

        if importlib.util.find_spec("devkit") is None and not (Path.cwd() / "devkit" / "__main__.py").is_file():
            click.echo(
                f"modelship: `{name}` is part of the dev kit, which the installed product does not contain; "
                f"run `python -m devkit {name}` (or `make demo`) from a checkout of the repository",
                err=True,
            )
            sys.exit(2)
        os.execv(sys.executable, [sys.executable, "-m", "devkit", name, *args])

    return forward


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelship")
def main() -> None:
    """Modelship: a GitOps bot for machine-learning models.

    Settings come from MODELSHIP_* environment variables or a YAML file named by MODELSHIP_CONFIG.
    """


@main.command()
@click.option("--host", help="Address to listen on (MODELSHIP_HOST).")
@click.option("--port", type=int, help="Port to listen on (MODELSHIP_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the webhook service: intake at POST /webhooks/github, workers, /healthz, /readyz, /metrics."""
    from bot import logs
    from bot.app import StartupError
    from bot.app import serve as run

    settings = _settings(host=host, port=port)
    logs.configure(settings.log_level)
    try:
        asyncio.run(run(settings))
    except StartupError as exc:
        click.echo(f"modelship: {exc}", err=True)
        sys.exit(2)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool) -> None:
    """Check this server's set-up: GitHub App, installations, database, sandbox, Prometheus, deploy repos.

    Each failing check prints one line naming the setting to fix; the exit code is 1 if any failed.
    """
    from bot import logs
    from bot.app import run_doctor
    from bot.doctor import render, render_json

    settings = _settings()
    logs.configure("ERROR")  # the checks' own lines are the output; retries would only add noise
    checks = asyncio.run(run_doctor(settings))
    click.echo(render_json(checks) if as_json else render(checks))
    sys.exit(0 if all(c.ok for c in checks) else 1)


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema (serve does this on start too)."""
    from bot.store.db import make_engine
    from bot.store.db import migrate as upgrade

    settings = _settings()

    async def run() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.effective_database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(run())
    click.echo("database is at the newest schema")


@main.command()
@click.option(
    "--state",
    "states",
    multiple=True,
    default=("queued", "running", "parked"),
    type=click.Choice(["queued", "running", "parked", "done", "cancelled"]),
    show_default=True,
    help="Which job states to list (repeatable).",
)
@click.option("--retry", "retry_id", type=int, help="Requeue a parked job by id.")
def jobs(states: tuple[str, ...], retry_id: int | None) -> None:
    """List jobs in the durable queue (with the last error of parked jobs), or requeue a parked one."""
    from bot.store.db import make_engine
    from bot.store.db import migrate as upgrade
    from bot.store.queue import JobQueue

    settings = _settings()

    async def run() -> list[dict[str, Any]] | bool:
        engine = make_engine(settings.effective_database_url)
        try:
            await upgrade(engine)
            queue = JobQueue(engine)
            if retry_id is not None:
                return await queue.retry_parked(retry_id)
            return await queue.list(states)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    if isinstance(result, bool):
        if not result:
            click.echo(f"job {retry_id} is not parked; nothing requeued", err=True)
            sys.exit(1)
        click.echo(f"job {retry_id} requeued")
        return
    if not result:
        click.echo(f"no {'/'.join(states)} jobs")
        return
    click.echo(f"{'ID':>6}  {'STATE':8} {'KIND':10} {'TRIES':5}  {'KEY':40} ERROR")
    for job in result:
        error = (job["last_error"] or "").splitlines()[0][:80] if job["last_error"] else ""
        tries = f"{job['attempts']}/{job['max_attempts']}"
        click.echo(f"{job['id']:>6}  {job['state']:8} {job['kind']:10} {tries:5}  {job['serial_key'][:40]:40} {error}")


main.add_command(_dev_kit_command("demo", "Run the whole loop locally (dev kit; see docs/demo.md)."))
main.add_command(_dev_kit_command("devhub", "Run devhub, the local GitHub simulator (dev kit)."))

if __name__ == "__main__":
    main()
