"""`modelship demo`: the whole flow on loopback — devhub (GitHub simulator), the bot, a sample model repo.

Prints each step, every webhook delivery with the bot's answer, the jobs the bot ran and the PR comment.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import aiohttp
import click
from aiohttp import web
from pydantic import SecretStr

from bot.devhub import RunningDevHub
from bot.devhub import start as start_devhub
from bot.github.app import GitHubApp
from bot.service import Service, build_service
from bot.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-model-repo"
REPO = "acme/churn-model"
SECRET = "demo-webhook-secret"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


class Demo:
    def __init__(self, workdir: Path, echo: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.echo = echo
        self.shown = 0

    def step(self, text: str) -> None:
        self.echo(click.style(f"\n==> {text}", fg="cyan", bold=True))

    def show_deliveries(self, devhub: RunningDevHub) -> None:
        for d in devhub.hub.deliveries[self.shown :]:
            event = f"{d.event}.{d.action}" if d.action else d.event
            self.echo(f"    webhook {event:<28} {d.guid[:8]}  -> bot answered {d.status}")
        self.shown = len(devhub.hub.deliveries)

    async def wait_idle(self, service: Service, limit: float = 120) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            depth = await service.services.queue.depth()
            if not depth.get("queued") and not depth.get("running"):
                return
            await asyncio.sleep(0.1)
        raise click.ClickException(f"the bot did not finish its jobs within {limit:.0f}s: {depth}")

    async def run(self) -> None:
        self.step("Starting devhub, the local GitHub simulator")
        devhub = await start_devhub(self.workdir / "devhub", webhook_secret=SECRET)
        hub = devhub.hub
        app_id, key = await hub.create_app(slug="modelship")
        self.echo(f"    devhub at {devhub.base_url}; GitHub App 'modelship' registered (id {app_id})")

        self.step("Starting the bot (SQLite, 2 workers)")
        settings = Settings(
            webhook_secret=SecretStr(SECRET),
            github_app_id=app_id,
            github_private_key=SecretStr(key),
            github_api_url=devhub.api_url,
            data_dir=self.workdir / "bot",
        )
        session = aiohttp.ClientSession()
        github = GitHubApp(app_id=app_id, private_key_pem=key, api_url=devhub.api_url, session=session)
        service = await build_service(settings, github=github)
        await service.start()
        runner = web.AppRunner(service.web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        hub.sender.url = f"http://127.0.0.1:{port}/webhooks/github"
        self.echo(f"    bot listening on {hub.sender.url}")
        try:
            await self.flow(devhub, service)
        finally:
            await service.stop()
            await runner.cleanup()
            await session.close()
            await devhub.stop()

    async def flow(self, devhub: RunningDevHub, service: Service) -> None:
        hub = devhub.hub
        self.step(f"Creating {REPO} from examples/sample-model-repo and installing the app")
        await hub.create_repo(REPO, _files(SAMPLE))
        await hub.install("acme", [REPO])
        await hub.ping()
        await self.wait_idle(service)
        self.show_deliveries(devhub)

        self.step("Opening a pull request that changes the model")
        changed = SAMPLE / "models"
        model = next((p for p in sorted(changed.iterdir()) if p.is_file()), None)
        payload = model.read_bytes() + b"\n" if model else b"retrained\n"
        name = f"models/{model.name}" if model else "models/churn.skops"
        await hub.push(REPO, "retrain", {name: payload}, message="Retrain the churn model", author="alice")
        number = await hub.open_pr(REPO, "retrain", title="Retrain the churn model", user="alice")
        await self.wait_idle(service)
        self.show_deliveries(devhub)

        self.step("Jobs the bot ran")
        for job in await service.services.queue.list(("done", "parked", "queued", "running")):
            self.echo(f"    job {job['id']:>3} {job['kind']:8} {job['serial_key']:24} {job['state']}")

        self.step(f"The bot's comment on {REPO}#{number}")
        for comment in hub.comments.values():
            if comment.repo == REPO and comment.issue_number == number:
                self.echo(click.style(f"    @{comment.user.login}:", bold=True))
                for line in comment.body.splitlines():
                    self.echo(f"    | {line}")
        self.step("Demo finished")


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path(".modelship/demo"),
    show_default=True,
    help="Where devhub's repositories and the bot's database are kept (wiped first).",
)
def demo(workdir: Path) -> None:
    """Run the whole flow locally: GitHub simulator, bot, sample model repository, a pull request."""
    from bot import logs

    logs.configure("WARNING")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    asyncio.run(Demo(workdir.resolve(), click.echo).run())
