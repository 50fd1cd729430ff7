"""A local HTTP receiver of notifications (aiohttp), as an operator's endpoint would be: it verifies each
delivery with the shared secret and can be told to fail its next requests."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def doc(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    def verified(self, secret: bytes) -> bool:
        return verify(
            secret, self.body, self.headers.get(TIMESTAMP_HEADER), self.headers.get(SIGNATURE_HEADER), now=time.time()
        )


@dataclass
class Receiver:
    url: str = ""
    accepted: list[Received] = field(default_factory=list)
    refused: int = 0  # requests answered with an error
    fail_next: int = 0  # answer this many requests with 503 first
    down: bool = False  # answer every request with 503

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.down or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            self.refused += 1
            return web.Response(status=503)
        self.accepted.append(Received(dict(request.headers), body))
        return web.Response(status=204)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()
