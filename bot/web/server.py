"""The listening side of the web app: aiohttp's runner behind the connection limits of bot.web.limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from dataclasses import dataclass, replace

from aiohttp import web

from bot.web.app import CONNECTIONS
from bot.web.limits import AcceptErrorLog, ConnectionLimiter, HttpLimits, OneLineProtocolErrors

log = logging.getLogger(__name__)

_PROTOCOL_ERRORS = OneLineProtocolErrors()
FD_RESERVE = 128  # descriptors kept for the database, the GitHub client, the sandbox, git and logs


def fit_to_fd_limit(limits: HttpLimits) -> HttpLimits:
    """Connections must stay below the open-files limit, or accept() fails with EMFILE and nothing
    (not even a signed delivery) gets in: raise the soft limit if the hard one allows, else lower the cap."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = limits.max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        capped = max(1, soft - FD_RESERVE)
        log.warning(
            "MODELSHIP_HTTP_MAX_CONNECTIONS=%d does not fit the open-files limit %d: using %d",
            limits.max_connections,
            soft,
            capped,
        )
        return replace(limits, max_connections=capped)
    return limits


@dataclass
class HttpServer:
    runner: web.AppRunner
    server: asyncio.Server
    limiter: ConnectionLimiter
    sweeper: asyncio.Task[None]

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, then let aiohttp finish the requests in progress and close the rest."""
        self.server.close()
        self.sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sweeper
        await self.runner.cleanup()


async def start_http(app: web.Application, host: str, port: int, limits: HttpLimits) -> HttpServer:
    logging.getLogger("aiohttp.server").addFilter(_PROTOCOL_ERRORS)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrorLog())
    limits = fit_to_fd_limit(limits)
    # keepalive_timeout: aiohttp's own idle timer, set to the same bound as our header deadline.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.header_timeout)
    await runner.setup()
    assert runner.server is not None
    limiter = ConnectionLimiter(runner.server, app[CONNECTIONS], limits)
    server = await loop.create_server(limiter, host, port, backlog=limits.backlog)
    sweeper = asyncio.create_task(limiter.run_sweeper(), name="http-connection-sweeper")
    return HttpServer(runner, server, limiter, sweeper)
