"""Notifications end to end: merges in devhub, the real bot (restarted in the middle), a local receiver.

The receiver is an operator's endpoint: it verifies every delivery's HMAC signature with the shared
secret. What counts: exactly one accepted delivery per transition (deploy committed, once per merge),
across a restart of the bot while a delivery was still failing, and a receiver that failed twice
before it answered still got the event once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.store import notifications
from devkit.devhub import start
from tests.fixtures.bot import bot_running, settle_jobs
from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key
from tests.notify.receiver import Receiver, receiver

pytestmark = pytest.mark.slow

SECRET = "notify-secret"
MODELS, DEPLOY = "acme/notified", "acme/notified-deploy"
CONFIG = f"""\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
  staging: {{auto: true, requires: []}}  # reviews are not this test's subject (no review runs here)
deploy: {{repository: {DEPLOY}}}
"""


async def wait_for(what: str, check: Any, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        await asyncio.sleep(0.05)


def committed(sink: Receiver) -> list[str]:
    return [r.doc["id"] for r in sink.accepted if r.doc["event"] == "deploy.committed"]


async def test_one_signed_event_per_transition_across_a_restart_and_retries(tmp_path: Path) -> None:
    running = await start(tmp_path / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)
    hub = running.hub
    try:
        async with receiver() as sink:
            settings: dict[str, Any] = {
                "notify_webhook_url": sink.url,
                "notify_webhook_secret": SECRET,
                "notify_webhook_events": "deploy.*",
            }
            app = await hub.create_app(slug="modelship")
            await hub.create_repo(DEPLOY, {"README.md": "# deploy\n"})
            await hub.create_repo(
                MODELS, {"models/churn.onnx": b"v0", "data/eval.csv": "a,label\n1,0\n", ".modelship.yml": CONFIG}
            )
            await hub.install("acme", [MODELS, DEPLOY], app[0])
            data_dir = tmp_path / "bot"

            sink.fail_next = 2  # the first two deliveries fail (503)
            async with bot_running(running, tmp_path, app=app, data_dir=data_dir, **settings) as bot:
                engine = bot.service.services.engine
                await hub.push(MODELS, "one", {"models/churn.onnx": b"churn v1"})
                await hub.merge_pr(MODELS, await hub.open_pr(MODELS, "one"))
                await wait_for("the first delivery attempt", lambda: sink.refused >= 1)
                # Stopped while the event's delivery waits for its retry: the job survives in the queue.
            assert committed(sink) == []

            async with bot_running(running, tmp_path, app=app, data_dir=data_dir, **settings) as bot:
                engine = bot.service.services.engine
                await wait_for("the retried delivery", lambda: len(sink.accepted) >= 1, timeout=60)
                await hub.push(MODELS, "two", {"models/churn.onnx": b"churn v2"})
                await hub.merge_pr(MODELS, await hub.open_pr(MODELS, "two"))
                await wait_for("the second merge's event", lambda: len(sink.accepted) >= 2)
                for delivery in list(hub.sender.deliveries):  # GitHub redelivers every merge: no new event
                    await hub.redeliver(delivery.guid)
                await asyncio.sleep(0.3)
                await settle_jobs(engine, horizon=10, timeout=60)
                async with engine.connect() as conn:
                    stored = await notifications.events(conn)

        assert sink.refused == 2  # failed twice (once before the restart, once after), then succeeded
        ids = committed(sink)
        assert len(ids) == 2 and len(set(ids)) == 2, ids  # one per merge, none twice
        assert [e.key for e in stored] == ids and all(e.delivered == ("webhook",) for e in stored)
        for delivery in sink.accepted:
            assert delivery.verified(SECRET.encode())
            assert not delivery.verified(b"a-wrong-secret")
            assert delivery.headers["X-Modelship-Event"] == "deploy.committed"
        first = sink.accepted[0].doc["data"]
        assert (first["repo"], first["environment"], first["model"]) == (MODELS, "staging", "churn")
        assert first["deploy_repo"] == DEPLOY and len(first["deploy_commit"]) == 40
    finally:
        await running.stop()
