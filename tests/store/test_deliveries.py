"""The delivery writer's group commit on SQLite and PostgreSQL: a bad row fails only its own request."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.intake import Delivery, Plan
from bot.store.deliveries import DeliveryWriter
from bot.store.models import Delivery as DeliveryRow
from bot.store.models import Job


def delivery(installation_id: int) -> Delivery:
    payload = {"action": "opened", "repository": {"full_name": "acme/churn"}, "installation": {"id": installation_id}}
    # Built directly, past intake's validation: the writer must hold even if a bad value slips through.
    return Delivery(guid=str(uuid.uuid4()), hook_id="1", event="push", payload=payload, body=json.dumps(payload))


async def test_a_row_the_database_refuses_fails_alone_and_its_batch_is_stored(engine: AsyncEngine) -> None:
    writer = DeliveryWriter(engine)
    writer.start()
    try:
        batch = [delivery(7) for _ in range(39)]
        batch.insert(17, delivery(10**20))  # beyond BIGINT: the driver refuses the whole statement
        results = await asyncio.gather(
            *[writer.store(d, Plan("queued", ("webhook",))) for d in batch], return_exceptions=True
        )
    finally:
        await writer.stop()
    assert [r for i, r in enumerate(results) if i != 17] == [True] * 39
    assert isinstance(results[17], Exception)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(DeliveryRow)) == 39
        assert await conn.scalar(select(func.count()).select_from(Job)) == 39
        assert await conn.scalar(select(func.count()).where(DeliveryRow.installation_id != 7)) == 0


@pytest.mark.parametrize("rows", [1, 3])
async def test_a_batch_the_database_refuses_entirely_fails_every_request(engine: AsyncEngine, rows: int) -> None:
    writer = DeliveryWriter(engine)
    writer.start()
    try:
        results = await asyncio.gather(
            *[writer.store(delivery(-(2**70)), Plan("queued", ("webhook",))) for _ in range(rows)],
            return_exceptions=True,
        )
    finally:
        await writer.stop()
    assert all(isinstance(r, Exception) for r in results)
