"""Where events come from, with the real service (devhub, the guard's world) and a local receiver: the guard's
rollbacks (opened, merged) and its alerts each reach the signed webhook exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import Service
from bot.context import Services
from bot.guard.analysis import Decision
from bot.guard.prometheus import PrometheusHTTP
from bot.guard.rollback import RollbackRequest
from bot.guard.service import Guard
from bot.guard.templates import load_templates
from bot.guard.watcher import Watcher
from bot.notify.service import Notifier, Sink
from bot.review.jobs import ReviewRequest
from bot.review.service import ReviewService
from bot.settings import SOURCE_ROOT
from bot.store import notifications
from bot.store.queue import JobQueue
from bot.store.reviews import ReviewedModel, ReviewRecord
from devkit.devhub import RunningDevHub
from devkit.guard_world import DEPLOY, MODELS, World, build_world, config, create_app, running_bot
from tests.fixtures.bot import settle_jobs
from tests.fixtures.prometheus import free_port
from tests.notify.receiver import Receiver, receiver

SECRET = "guard-events"


@asynccontextmanager
async def notified_world(
    devhub: RunningDevHub, data_dir: Path, **guard: Any
) -> AsyncIterator[tuple[Service, World, Receiver]]:
    async with receiver() as sink:
        app = await create_app(devhub.hub)
        settings = {"notify_webhook_url": sink.url, "notify_webhook_secret": SECRET}
        async with running_bot(devhub, data_dir, app, **settings) as service:
            world = await build_world(devhub.hub, service.services.engine, app, guard_config=config(**guard))
            yield service, world, sink


async def delivered(service: Service, sink: Receiver, count: int) -> list[dict[str, Any]]:
    await settle_jobs(service.services.engine, horizon=10, timeout=30)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(sink.accepted) < count and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert all(d.verified(SECRET.encode()) for d in sink.accepted)
    return [d.doc for d in sink.accepted]


async def test_a_rollback_is_told_once_when_opened_and_once_when_merged(devhub: RunningDevHub, tmp_path: Path) -> None:
    async with notified_world(devhub, tmp_path / "bot", auto_merge=False) as (service, world, sink):
        guard = service.services.guard
        assert isinstance(guard, Guard)
        request = RollbackRequest(MODELS, "production", actor="alice", reason="bad answers")
        [opened] = await guard.rollbacks.request(request)
        await guard.rollbacks.request(RollbackRequest(MODELS, "production", actor="bob"))  # the same incident
        [pull] = world.rollback_pulls()
        await world.hub.merge_pr(DEPLOY, pull.number)
        await guard.rollbacks.advance_open()
        await guard.rollbacks.advance_open()  # nothing left: nothing told twice

        docs = await delivered(service, sink, 2)

    assert [d["event"] for d in docs] == ["rollback.opened", "rollback.merged"]
    assert opened.incident is not None and docs[0]["id"] == f"rollback.opened:{opened.incident.key}"
    assert docs[0]["data"]["reason"] == "bad answers" and docs[0]["data"]["pr_url"] == opened.incident.pr_url
    assert docs[1]["data"]["merge_sha"] and docs[1]["data"]["environment"] == "production"


async def test_a_guard_alert_is_told_once_per_streak(devhub: RunningDevHub, tmp_path: Path) -> None:
    async with notified_world(devhub, tmp_path / "bot", failure_limit=1, error_limit=2) as (service, _, sink):
        guard = service.services.guard
        assert isinstance(guard, Guard)
        async with aiohttp.ClientSession() as session:
            now = [time.time()]
            watcher = Watcher(
                service.services.engine,
                PrometheusHTTP(f"http://127.0.0.1:{free_port()}", session, timeout=2),  # nobody answers
                guard.rollbacks,
                templates=load_templates(SOURCE_ROOT / "config" / "promql"),
                clock=lambda: now[0],
            )
            seen = []
            for _ in range(4):
                now[0] += 1.0
                [evaluation] = (await watcher.round()).evaluations
                seen.append(evaluation.decision)

        docs = await delivered(service, sink, 1)
        async with service.services.engine.connect() as conn:
            stored = await notifications.events(conn)

    assert seen == [Decision.ERROR, Decision.ERROR_ALERT, Decision.ERROR, Decision.ERROR]
    assert [d["event"] for d in docs] == ["guard.alert"] and [e.kind for e in stored] == ["guard.alert"]
    assert "query failed 2 time(s) in a row" in docs[0]["data"]["reason"] and docs[0]["data"]["model"] == "iris"


async def test_a_review_verdict_is_one_event_per_review_job(engine: AsyncEngine, tmp_path: Path) -> None:
    services = Services(engine, JobQueue(engine), cast(Any, None), "modelship", tmp_path)
    services.notify = Notifier(engine, [Sink("webhook", "http://127.0.0.1:9/never", secret=SECRET.encode())])
    review = ReviewService(services, cast(Any, None))
    request = ReviewRequest("acme/models", 3, 1, "f" * 40, "0" * 40, "main", "pull_request", "alice")
    gate = "f1 min_delta: Δ f1 = -0.022, required ≥ -0.01"
    churn = ReviewedModel("compared", gates_passed=False, failed_gates=(gate,))

    await review._record(request, "0" * 40, "waiting", ReviewRecord(), 10)  # no verdict yet: nothing told
    for job_id in (11, 11, 12):  # job 11 retried, then `/modelship evaluate` (job 12) of the same head
        await review._record(request, "0" * 40, "failure", ReviewRecord(models={"churn": churn}), job_id)

    async with engine.connect() as conn:
        stored = await notifications.events(conn)
    assert [e.key for e in stored] == [f"review:acme/models#3@{'f' * 40}:11", f"review:acme/models#3@{'f' * 40}:12"]
    assert stored[0].kind == "review.finished" and stored[0].payload["passed"] is False
    assert stored[0].payload["failed_gates"] == [gate]
