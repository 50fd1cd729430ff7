"""aiohttp application: POST /webhooks/github, /healthz, /readyz, /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import logs, metrics
from bot.intake import MAX_BODY_BYTES, Delivery, Plan, WebhookRejected, parse_delivery
from bot.store.deliveries import DeliveryWriter

log = logging.getLogger(__name__)


@dataclass
class Intake:
    secret: bytes
    writer: DeliveryWriter
    plan: Callable[[Delivery], Plan]


@dataclass
class Health:
    engine: AsyncEngine
    workers_alive: Callable[[], int]
    refresh_metrics: Callable[[], Awaitable[None]]
    # The doctor's latest (cached) checks; reported on /readyz, never run by it.
    checks: Callable[[], dict[str, Any]] | None = None


INTAKE = web.AppKey("intake", Intake)
HEALTH = web.AppKey("health", Health)


def _reply(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status)


async def receive_github_webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    intake = request.app[INTAKE]
    event = request.headers.get("X-GitHub-Event", "")[:64] or "unknown"
    if (request.content_length or 0) > MAX_BODY_BYTES:
        metrics.DELIVERIES.labels(event, "rejected:413").inc()
        return _reply(413, f"body over {MAX_BODY_BYTES} bytes (GitHub's limit)")
    try:
        body = await request.read()
        delivery = parse_delivery(intake.secret, request.headers, body)
    except web.HTTPRequestEntityTooLarge:
        metrics.DELIVERIES.labels(event, "rejected:413").inc()
        return _reply(413, f"body over {MAX_BODY_BYTES} bytes (GitHub's limit)")
    except WebhookRejected as exc:
        metrics.DELIVERIES.labels(event, f"rejected:{exc.status}").inc()
        return _reply(exc.status, exc.message)
    logs.delivery_id.set(delivery.guid)
    plan = intake.plan(delivery)
    try:
        new = await intake.writer.store(delivery, plan)
    except Exception:
        log.exception("could not persist delivery")
        metrics.DELIVERIES.labels(delivery.event, "error").inc()
        return _reply(503, "could not store the delivery; redeliver it later")
    outcome = plan.outcome if new else "duplicate"
    metrics.DELIVERIES.labels(delivery.event, outcome.split(":")[0]).inc()
    metrics.ACK_LATENCY.observe(time.perf_counter() - started)
    if not new:
        return _reply(200, "duplicate delivery: already stored", delivery=delivery.guid)
    if delivery.event == "ping":
        return _reply(200, "pong", zen=delivery.payload.get("zen"))
    return _reply(202 if plan.queued else 200, outcome, delivery=delivery.guid)


async def healthz(request: web.Request) -> web.Response:
    return _reply(200, "ok")


async def readyz(request: web.Request) -> web.Response:
    health = request.app[HEALTH]
    problems = []
    try:
        async with health.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"database unreachable: {type(exc).__name__}")
    if health.workers_alive() == 0:
        problems.append("no worker is running")
    doctor = health.checks() if health.checks is not None else None
    message = "; ".join(problems) or "ready"
    if doctor and doctor["failed"]:
        # Reported, not a reason to leave the load balancer: GitHub never redelivers a webhook that found
        # no ready replica, and intake only needs the database and workers (checked above).
        message += f" (degraded: {', '.join(doctor['failed'])}; see checks)"
    extra = {"doctor": doctor} if doctor is not None else {}
    return _reply(503 if problems else 200, message, **extra)


async def metrics_endpoint(request: web.Request) -> web.Response:
    await request.app[HEALTH].refresh_metrics()
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_web_app(intake: Intake, health: Health) -> web.Application:
    # Slightly over 25 MB so that the 413 comes from our check with a clear message.
    app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    app[INTAKE] = intake
    app[HEALTH] = health
    app.router.add_post("/webhooks/github", receive_github_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app
