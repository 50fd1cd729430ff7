"""aiohttp application: POST /webhooks/github, /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import logs, metrics
from bot.intake import (
    MAX_BODY_BYTES,
    Delivery,
    Plan,
    WebhookRejected,
    check_digest,
    metric_event,
    parse_verified,
    signature_digest,
)
from bot.store.deliveries import DeliveryWriter
from bot.web.limits import SMALL_BODY_BYTES, ByteBudget, ConnectionTracker, HttpLimits

log = logging.getLogger(__name__)


@dataclass
class Intake:
    secret: bytes
    writer: DeliveryWriter
    plan: Callable[[Delivery], Plan]
    limits: HttpLimits = field(default_factory=HttpLimits)
    budget: ByteBudget = field(init=False)

    def __post_init__(self) -> None:
        self.budget = ByteBudget(self.limits.body_bytes_in_flight)


@dataclass
class Health:
    engine: AsyncEngine
    workers_alive: Callable[[], int]
    refresh_metrics: Callable[[], Awaitable[None]]
    # The doctor's latest (cached) checks; reported on /readyz, never run by it.
    checks: Callable[[], dict[str, Any]] | None = None


INTAKE = web.AppKey("intake", Intake)
HEALTH = web.AppKey("health", Health)
CONNECTIONS = web.AppKey("connections", ConnectionTracker)
UNVERIFIED = "unverified"  # the metrics' event label of anything refused before the signature held


class _BodyTooLarge(Exception):
    pass


def _reply(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"message": message, **extra}, status=status)


async def _read_signed_body(request: web.Request, secret: bytes, limit: int) -> tuple[bytes | bytearray, str]:
    """The body and its HMAC-SHA256. A large body is hashed while its chunks arrive (no second pass
    over 25 MB); a small one, the usual case, in one call of the C one-shot HMAC."""
    if limit <= SMALL_BODY_BYTES:
        small = await request.content.read()
        if len(small) > limit:
            raise _BodyTooLarge
        return small, hmac.digest(secret, small, "sha256").hex()
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    body = bytearray()
    async for chunk in request.content.iter_any():
        if len(body) + len(chunk) > limit:
            raise _BodyTooLarge
        mac.update(chunk)
        body += chunk
    return body, mac.hexdigest()


async def receive_github_webhook(request: web.Request) -> web.Response:
    # Marked busy while in here: the connection limiter only evicts or times out connections that are
    # not inside a delivery (the other routes answer at once).
    tracker = request.app[CONNECTIONS]
    tracker.begin(request.protocol)
    try:
        return await _receive(request)
    finally:
        tracker.end(request.protocol)


async def _receive(request: web.Request) -> web.Response:
    started = time.perf_counter()
    intake = request.app[INTAKE]
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        metrics.DELIVERIES.labels(UNVERIFIED, "rejected:413").inc()
        return _reply(413, f"body over {MAX_BODY_BYTES} bytes (GitHub's limit)")
    try:
        digest = signature_digest(request.headers.get("X-Hub-Signature-256"))
    except WebhookRejected as exc:  # nothing to verify against: the body is never read
        metrics.DELIVERIES.labels(UNVERIFIED, f"rejected:{exc.status}").inc()
        return _reply(exc.status, exc.message)
    # A body without Content-Length (chunked) may grow to the maximum, so it reserves the maximum.
    reserved = length if length is not None else MAX_BODY_BYTES
    if not intake.budget.try_acquire(reserved):
        metrics.DELIVERIES.labels(UNVERIFIED, "rejected:503").inc()
        resp = _reply(503, "too many large request bodies are being read; retry shortly")
        resp.headers["Retry-After"] = "1"
        return resp
    try:
        try:
            async with asyncio.timeout(intake.limits.body_timeout):
                body, computed = await _read_signed_body(request, intake.secret, reserved)
        except TimeoutError:
            metrics.DELIVERIES.labels(UNVERIFIED, "rejected:408").inc()
            resp = _reply(408, f"body not received within {intake.limits.body_timeout:g} s")
            resp.force_close()
            return resp
        except _BodyTooLarge:
            metrics.DELIVERIES.labels(UNVERIFIED, "rejected:413").inc()
            return _reply(413, f"body over {MAX_BODY_BYTES} bytes (GitHub's limit) or over its Content-Length")
        try:
            check_digest(computed, digest)
        except WebhookRejected as exc:
            metrics.DELIVERIES.labels(UNVERIFIED, f"rejected:{exc.status}").inc()
            return _reply(exc.status, exc.message)
        try:
            delivery = parse_verified(request.headers, body)
        except WebhookRejected as exc:
            event = request.headers.get("X-GitHub-Event", "").strip()
            metrics.DELIVERIES.labels(metric_event(event), f"rejected:{exc.status}").inc()
            return _reply(exc.status, exc.message)
        del body
    finally:
        intake.budget.release(reserved)
    logs.delivery_id.set(delivery.guid)
    plan = intake.plan(delivery)
    event = metric_event(delivery.event)
    try:
        new = await intake.writer.store(delivery, plan)
    except Exception as exc:
        # One line: a database error's text can carry the statement and its parameters (the body).
        first = (str(exc).splitlines() or [""])[0][:300]
        log.error("could not persist delivery: %s: %s", type(exc).__name__, first)
        metrics.DELIVERIES.labels(event, "error").inc()
        return _reply(503, "could not store the delivery; redeliver it later")
    outcome = plan.outcome if new else "duplicate"
    metrics.DELIVERIES.labels(event, outcome.split(":")[0]).inc()
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
    tracker = ConnectionTracker()
    app = web.Application(client_max_size=MAX_BODY_BYTES + 1)
    app[CONNECTIONS] = tracker
    app[INTAKE] = intake
    app[HEALTH] = health
    app.router.add_post("/webhooks/github", receive_github_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    return app
