"""The traffic generator: steady prediction requests to model servers (demo, guard tests, bench)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp


async def predict_forever(
    session: aiohttp.ClientSession, urls: Sequence[str], instances: list[Any], every: float = 0.05
) -> None:
    """Steady prediction requests to every model server in ``urls`` until cancelled; the list is read
    again each round, so servers started later get traffic too. A refused request is not fatal."""
    while True:
        for url in list(urls):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(f"{url}/predict", json={"instances": instances}) as response:
                    await response.read()
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def traffic(
    servers: Sequence[str], instances: list[Any], every: float = 0.05
) -> AsyncIterator[aiohttp.ClientSession]:
    """predict_forever while the block runs; yields the session (for fault switches and the like)."""
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(predict_forever(session, servers, instances, every))
        try:
            yield session
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
