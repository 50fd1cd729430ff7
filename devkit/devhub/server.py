"""Run devhub: in-process for tests and the demo (`start`), or as a process (`serve`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from devkit.devhub.app import build_app
from devkit.devhub.auth import generate_key
from devkit.devhub.hub import DevHub


@dataclass
class RunningDevHub:
    hub: DevHub
    runner: web.AppRunner
    base_url: str

    @property
    def api_url(self) -> str:
        """The REST root in GitHub Enterprise form (`.../api/v3`); the bare base URL works too."""
        return f"{self.base_url}/api/v3"

    async def stop(self) -> None:
        await self.hub.sender.close()
        await self.runner.cleanup()


async def start(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    hub: DevHub | None = None,
    keygen: Callable[[], tuple[bytes, bytes]] = generate_key,
    git_prefix: str = "",
) -> RunningDevHub:
    """Start devhub on the running loop (port 0 picks a free one) and return where it listens.

    ``git_prefix`` (e.g. ``/git``) serves git under that path instead of the host root; each
    repository's ``clone_url`` says so, and git at the host root answers 404.
    """
    hub = hub or DevHub(
        data_dir, webhook_url=webhook_url, webhook_secret=webhook_secret, keygen=keygen, git_prefix=git_prefix
    )
    runner = web.AppRunner(build_app(hub), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    hub.base_url = f"http://{host}:{bound}"
    return RunningDevHub(hub, runner, hub.base_url)


async def serve(
    data_dir: Path, host: str, port: int, webhook_url: str | None, webhook_secret: str | None, git_prefix: str = ""
) -> None:
    running = await start(
        data_dir, host=host, port=port, webhook_url=webhook_url, webhook_secret=webhook_secret, git_prefix=git_prefix
    )
    print(
        f"devhub listening on {running.base_url} (REST also at {running.api_url}, git at "
        f"{running.base_url}{git_prefix}/OWNER/REPO.git), data in {data_dir}",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await running.stop()
