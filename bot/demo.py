"""`modelship demo`: the whole flow on loopback — devhub (GitHub simulator), the bot, a sample model repo.

Prints each step, every webhook delivery with the bot's answer, the jobs the bot ran and the PR comment.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
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

        self.step("Starting the bot (SQLite, 2 workers, podman sandbox)")
        settings = Settings(
            webhook_secret=SecretStr(SECRET),
            github_app_id=app_id,
            github_private_key=SecretStr(key),
            github_api_url=devhub.api_url,
            data_dir=self.workdir / "bot",
            container_engine_url=_podman_url(),
            sandbox_mount_runtime=True,
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

    def show_comments(self, devhub: RunningDevHub, number: int, *, since: int = 0) -> int:
        """Print the PR's comments with an id above ``since``; returns the newest id."""
        newest = since
        for comment in sorted(devhub.hub.comments.values(), key=lambda c: c.id):
            if comment.repo != REPO or comment.issue_number != number or comment.id <= since:
                continue
            newest = comment.id
            self.echo(click.style(f"    @{comment.user.login} (comment {comment.id}):", bold=True))
            for line in comment.body.splitlines():
                self.echo(f"    | {line}")
        return newest

    async def flow(self, devhub: RunningDevHub, service: Service) -> None:
        hub = devhub.hub
        self.step(f"Creating {REPO} from examples/sample-model-repo and installing the app")
        await hub.create_repo(REPO, _files(SAMPLE))
        hub.set_permission(REPO, "alice", "write")
        await hub.install("acme", [REPO])
        await hub.ping()
        await self.wait_idle(service)
        self.show_deliveries(devhub)

        self.step("Retraining the model with 20 trees of depth 3 (train.py, in a subprocess)")
        retrained = await asyncio.to_thread(_retrain, self.workdir / "retrain", 20, 3)
        await hub.push(REPO, "retrain", {"models/churn.skops": retrained}, message="Retrain with 20 trees")
        self.step("Opening the pull request; the bot evaluates base and head in the sandbox")
        number = await hub.open_pr(REPO, "retrain", title="Retrain the churn model", user="alice")
        with click.progressbar(length=1, label="    reviewing", show_eta=False) as bar:
            await self.wait_idle(service, limit=600)
            bar.update(1)
        self.show_deliveries(devhub)
        self.step(f"The bot's review comment on {REPO}#{number}")
        seen = self.show_comments(devhub, number)
        for run in hub.check_runs.values():
            self.echo(f"    check run {run.name}: {run.status} / {run.conclusion} — {run.output.get('title', '')}")

        self.step("Chat-ops: alice asks for help, then for a re-evaluation")
        await hub.comment(REPO, number, "/modelship help", user="alice")
        await hub.comment(REPO, number, "/modelship evaluate", user="alice")
        await self.wait_idle(service, limit=600)
        self.show_comments(devhub, number, since=seen)

        self.step("Jobs the bot ran")
        for job in await service.services.queue.list(("done", "parked", "queued", "running", "cancelled")):
            self.echo(f"    job {job['id']:>3} {job['kind']:8} {job['serial_key']:30} {job['state']}")
        self.step("Demo finished")


def _retrain(work: Path, trees: int, depth: int) -> bytes:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(SAMPLE, work)
    subprocess.run(
        [sys.executable, "train.py", "--trees", str(trees), "--depth", str(depth)],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return (work / "models" / "churn.skops").read_bytes()


def _podman_url() -> str:
    """The demo's container engine: this machine's podman service (started if needed)."""
    script = SAMPLE.parents[1] / "scripts" / "podman-service.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise click.ClickException(f"could not start podman (scripts/podman-service.sh): {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


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
