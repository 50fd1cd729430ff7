"""The service core end to end: devhub sends signed webhooks, the bot stores, queues and acts on GitHub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.store.models import Delivery, Installation, Job
from devkit.devhub import RunningDevHub
from tests.fixtures.bot import RunningBot, bot_running

REPO = "acme/churn"


@pytest.fixture
async def bot(devhub: RunningDevHub, tmp_path: Path, db_url: str) -> AsyncIterator[RunningBot]:
    """The whole flow on SQLite and on PostgreSQL."""
    async with bot_running(devhub, tmp_path, db_url=db_url) as running:
        yield running


async def _bot_comments(devhub: RunningDevHub, number: int) -> list[str]:
    pr = devhub.hub.pull(REPO, number)
    return [
        c.body
        for c in devhub.hub.comments.values()
        if c.issue_number == pr.number and c.repo == REPO and c.user.login == "modelship[bot]"
    ]


async def _setup_repo(devhub: RunningDevHub) -> int:
    hub = devhub.hub
    await hub.create_repo(REPO, {"README.md": "# churn\n", "models/churn.onnx": b"v1"})
    return await hub.install("acme", [REPO])


async def test_install_then_pull_request_gets_one_sticky_comment_edited_on_push(
    devhub: RunningDevHub, bot: RunningBot
) -> None:
    hub = devhub.hub
    installation_id = await _setup_repo(devhub)
    await hub.ping()
    await hub.push(REPO, "better-model", {"models/churn.onnx": b"v2"}, message="Retrain")
    number = await hub.open_pr(REPO, "better-model", title="Better model")
    await bot.idle()

    async with bot.service.services.engine.connect() as conn:
        inst = (await conn.execute(select(Installation))).one()
        events = sorted((await conn.execute(select(Delivery.event, Delivery.outcome))).all())
    assert (inst.id, inst.account, inst.repositories["names"]) == (installation_id, "acme", [REPO])
    assert ("ping", "ignored:ping") in events and ("pull_request", "queued") in events

    comments = await _bot_comments(devhub, number)
    assert len(comments) == 1 and hub.pull(REPO, number).head_sha[:12] in comments[0]

    await hub.push(REPO, "better-model", {"models/churn.onnx": b"v3"}, message="Retrain again")
    await bot.idle()
    comments = await _bot_comments(devhub, number)
    assert len(comments) == 1, "a new push edits the sticky comment instead of adding one"
    assert hub.pull(REPO, number).head_sha[:12] in comments[0]


async def test_a_redelivery_creates_no_second_job(devhub: RunningDevHub, bot: RunningBot) -> None:
    hub = devhub.hub
    await _setup_repo(devhub)
    await hub.push(REPO, "b", {"models/churn.onnx": b"v2"})
    await hub.open_pr(REPO, "b")
    await bot.idle()
    opened = next(d for d in hub.deliveries if d.event == "pull_request")
    for _ in range(5):
        await hub.redeliver(opened.guid)
    await bot.idle()
    async with bot.service.services.engine.connect() as conn:
        jobs = await conn.scalar(
            select(func.count()).select_from(Job).where(Job.serial_key == f"{REPO}#1", Job.kind == "webhook")
        )
    assert jobs == 1


async def test_the_bots_own_events_are_ignored(devhub: RunningDevHub, bot: RunningBot) -> None:
    hub = devhub.hub
    await _setup_repo(devhub)
    await hub.push(REPO, "b", {"models/churn.onnx": b"v2"})
    number = await hub.open_pr(REPO, "b")
    await bot.idle()
    await hub.comment(REPO, number, "/modelship help", user="modelship[bot]")
    await bot.idle()
    async with bot.service.services.engine.connect() as conn:
        outcome = await conn.scalar(select(Delivery.outcome).where(Delivery.event == "issue_comment"))
    assert outcome == "ignored:own-event"
