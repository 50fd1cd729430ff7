"""The running-bot harness: the real service in-process, wired to a running devhub (its webhooks point
at the bot). Tests, the benchmarks and the demo start the bot through `bot_running`; the bot goes on a
port through `bot.web.server.start_http` with the settings' connection limits, as `modelship serve` does."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.app import Service, build_service, http_limits
from bot.github.app import GitHubApp
from bot.settings import Settings
from bot.web.server import start_http
from bot.worker import JobRunner
from devkit.devhub import RunningDevHub
from devkit.devhub.auth import generate_key

WEBHOOK_SECRET = "devhub-test-secret"

# RSA generation dominates a set-up; apps of different tests may share a key pair.
shared_key = functools.cache(generate_key)


@dataclass(eq=False)
class RunningBot:
    service: Service
    settings: Settings
    url: str
    app_id: int

    async def idle(self, timeout: float = 20.0) -> None:
        """Wait until the queue has no queued or running job left and this process runs none.

        A job the queue already counts as cancelled (superseded) still runs here until its heartbeat
        notices; its last effects (closing its check run) must land before a caller looks.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            depth = await self.service.services.queue.depth()
            if not depth.get("queued") and not depth.get("running") and not self.service.workers.in_flight:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"jobs still pending after {timeout}s: {depth}")


LIVE_BOTS: list[RunningBot] = []
"""Bots started by bot_running in this process and not stopped yet, whoever started them (tests/e2e checks
after every test that their jobs left no check run open)."""


@asynccontextmanager
async def bot_running(
    devhub: RunningDevHub,
    tmp_path: Path,
    db_url: str | None = None,
    *,
    app: tuple[int, str] | None = None,
    data_dir: Path | None = None,
    extra_runners: dict[str, JobRunner] | None = None,
    poll_seconds: float = 0.1,
    **overrides: Any,
) -> AsyncIterator[RunningBot]:
    """The service with its web app on an ephemeral port for the length of a block, devhub's webhooks
    pointed at it (signed with devhub's secret). ``app`` reuses an existing GitHub App (a restarted bot
    is the same app); by default a new one is made. Afterwards devhub stops delivering, the bot stops."""
    hub = devhub.hub
    app_id, key = app or await hub.create_app(slug="modelship")
    # A bot without a container engine must say so, as `serve` requires: its reviews are turned off.
    overrides.setdefault("sandbox", "on" if overrides.get("container_engine_url") else "off")
    settings = Settings(
        webhook_secret=SecretStr(hub.sender.secret or WEBHOOK_SECRET),
        github_app_id=app_id,
        github_private_key=SecretStr(key),
        github_api_url=devhub.api_url,
        data_dir=data_dir or tmp_path / "bot",
        database_url=db_url,
        **overrides,
    )
    async with aiohttp.ClientSession() as session:
        github = GitHubApp(app_id=app_id, private_key_pem=key, api_url=devhub.api_url, session=session)
        service = await build_service(settings, github=github, extra_runners=extra_runners)
        service.workers.poll_seconds = poll_seconds
        await service.start()
        try:
            http = await start_http(service.web_app, "127.0.0.1", 0, http_limits(settings))
            url = f"http://127.0.0.1:{http.port}"
            hub.sender.url = f"{url}/webhooks/github"
            running = RunningBot(service, settings, url, app_id)
            LIVE_BOTS.append(running)
            try:
                yield running
            finally:
                LIVE_BOTS.remove(running)
                hub.sender.url = None  # nothing left to take deliveries in
                await http.stop()
        finally:
            await service.stop()
