"""Notifications as a feature of the running service: the outbox writer (``Services.notify``) and the
``notify`` job that delivers one event to every sink that wants it.

Emitting writes a ``notify_events`` row (unique key) and queues a ``notify`` job in the caller's
transaction; nothing is sent there, so a slow receiver never holds up a review or a deploy. The job posts
to each sink that does not have the event yet and records each success at once: a retry (the queue's
capped exponential back-off with jitter, up to ``MODELSHIP_NOTIFY_MAX_ATTEMPTS``) sends only to the sinks
that failed. Restarts and replicas share the table and the queue, so one event is one notification.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config.notify_events import wanted
from bot.context import Feature
from bot.errors import TransientError
from bot.notify.sinks import Event, slack_body, webhook_request
from bot.settings import Settings
from bot.store import notifications
from bot.store.queue import ClaimedJob, enqueue, job_row
from bot.worker import JobFailure

log = logging.getLogger(__name__)

KIND = "notify"


@dataclass(frozen=True)
class Sink:
    """Where events go: ``slack`` (an incoming webhook) or ``webhook`` (the signed generic one)."""

    name: str
    url: str = field(repr=False)  # a secret: it carries the token (Slack) or reaches a private receiver
    events: tuple[str, ...] = ()  # filters (bot.config.notify_events.wanted); empty: every event
    secret: bytes = field(default=b"", repr=False)  # webhook: the HMAC key

    def request(self, event: Event, now: float) -> tuple[bytes, dict[str, str]]:
        if self.name == "slack":
            return slack_body(event), {"Content-Type": "application/json"}
        return webhook_request(event, self.secret, int(now))


_PHASE_EVENTS = {"committed": "deploy.committed", "live": "deploy.live", "failed": "deploy.failed"}


class Transition(Protocol):
    """What notifications read of a deploy's rollout transition (bot.context.DeployTransition of live tracking)."""

    @property
    def key(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def repo(self) -> str: ...

    @property
    def environment(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def deploy_repo(self) -> str: ...

    @property
    def deploy_commit(self) -> str | None: ...

    @property
    def source_pr(self) -> int | None: ...

    @property
    def at(self) -> datetime: ...

    @property
    def committed_at(self) -> datetime | None: ...

    @property
    def live_at(self) -> datetime | None: ...

    @property
    def reason(self) -> str: ...


class NotifyFailed(TransientError):
    """A sink did not take the event (it is retried with back-off); names the sink, never its URL."""


class Notifier:
    def __init__(
        self,
        engine: AsyncEngine,
        sinks: list[Sink],
        *,
        max_attempts: int = 8,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.sinks = sinks
        self.max_attempts = max_attempts
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ emitting (Services.notify)

    async def __call__(self, conn: AsyncConnection, kind: str, key: str, data: Mapping[str, Any]) -> None:
        if not any(wanted(s.events, kind) for s in self.sinks):
            return  # filtered out everywhere: not even a row
        plain = json.loads(json.dumps(dict(data), default=str))  # datetimes and the like as text
        event_id = await notifications.add_event(conn, key=key, kind=kind, payload=plain)
        if event_id is None:
            return  # emitted before (a retried job, another replica): one event, one notification
        row = job_row(KIND, f"notify:{event_id}", payload={"event_id": event_id}, max_attempts=self.max_attempts)
        await enqueue(conn, [row])

    async def on_deploy_transition(self, conn: AsyncConnection, event: Transition) -> None:
        """The deploy live-tracking hook (a ``DeployListener`` in ``Services.deploy_listeners``): committed,
        live and failed become ``deploy.*`` events under the transition's own key (``deploy:<id>:<phase>``,
        the key ``deploy.committed`` is emitted under at commit time too, so the two are one event)."""
        kind = _PHASE_EVENTS.get(event.phase)
        if kind is None:
            return  # rolling_out: progress, not a transition people are told about
        data = {
            "repo": event.repo,
            "environment": event.environment,
            "model": event.model,
            "version": event.version,
            "variant": event.variant,
            "sha256": event.sha256,
            "deploy_repo": event.deploy_repo,
            "deploy_commit": event.deploy_commit,
            "source_pr": event.source_pr,
            "at": event.at,
            "committed_at": event.committed_at,
            "live_at": event.live_at,
            "reason": event.reason,
        }
        await self(conn, kind, event.key, data)

    # ------------------------------------------------------------------ delivering (the notify job)

    async def deliver(self, job: ClaimedJob) -> None:
        async with self.engine.connect() as conn:
            event = await notifications.get_event(conn, int(job.payload["event_id"]))
        if event is None:
            return
        todo = [s for s in self.sinks if wanted(s.events, event.kind) and s.name not in event.delivered]
        message = Event(event.key, event.kind, event.created_at, event.payload)
        failed: list[str] = []
        for position, sink in enumerate(todo):
            problem = await self._post(sink, message)
            if problem is not None:
                failed.append(f"{sink.name}: {problem}")
                continue
            complete = not failed and position == len(todo) - 1
            async with self.engine.begin() as conn:
                await notifications.mark_delivered(conn, event.id, sink.name, complete=complete)
        if failed:
            raise NotifyFailed(f"event {event.key} not delivered to " + "; ".join(failed))

    async def _post(self, sink: Sink, event: Event) -> str | None:
        body, headers = sink.request(event, self.clock())
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(sink.url, data=body, headers=headers, allow_redirects=False) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__  # the exception text may hold the URL, a secret

    async def on_final_failure(self, job: ClaimedJob, failure: JobFailure) -> None:
        log.error("notification %s given up after %s attempt(s): %s", job.payload, failure.attempts, failure.error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def sinks_from(settings: Settings) -> list[Sink]:
    """The sinks the operator configured (server-side only: URLs and secrets never come from a repository)."""
    sinks = []
    if settings.notify_slack_webhook_url is not None:
        url = settings.notify_slack_webhook_url.get_secret_value()
        sinks.append(Sink("slack", url, tuple(settings.notify_slack_events)))
    if settings.notify_webhook_url is not None and settings.notify_webhook_secret is not None:
        url = settings.notify_webhook_url.get_secret_value()
        secret = settings.notify_webhook_secret.get_secret_value().encode()
        sinks.append(Sink("webhook", url, tuple(settings.notify_webhook_events), secret))
    return sinks


def make_notifier(engine: AsyncEngine, settings: Settings) -> Notifier | None:
    sinks = sinks_from(settings)
    return Notifier(engine, sinks, max_attempts=settings.notify_max_attempts) if sinks else None


def feature(notifier: Notifier) -> Feature:
    return Feature(
        runners={KIND: notifier.deliver},
        on_final_failure={KIND: notifier.on_final_failure},
        closers=[notifier.close],
    )
