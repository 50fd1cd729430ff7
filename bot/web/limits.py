"""Limits that keep the webhook listener answering under hostile load (docs/security.md, "Webhook intake").

Anyone who can reach the port can open connections and send bodies before a signature is checked, so
every resource an unauthenticated request can hold is bounded here:

- connections: at most ``max_connections`` are open; a new one evicts the oldest connection that is not
  in a handler (an idle or still-sending-headers one), or is answered 503 when every one is busy;
- time: a connection that has not sent a whole request head within ``header_timeout`` seconds of opening
  (or of its previous response) is closed; a body must arrive within ``body_timeout`` (bot.web.app);
- bytes: request bodies being read at once share a budget (``ByteBudget``), beyond which intake answers
  503 with Retry-After instead of buffering.

aiohttp has no connection cap or header-read deadline of its own (its ``keepalive_timeout`` is an idle
timer and, depending on the version, does not start at connection open; ``backlog`` only sizes the
kernel's queue of connections not yet accepted), hence the protocol-factory wrapper below.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from bot import metrics

log = logging.getLogger(__name__)

SMALL_BODY_BYTES = 1024 * 1024  # most GitHub deliveries are well under this


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 512
    header_timeout: float = 10.0
    body_timeout: float = 20.0
    body_bytes_in_flight: int = 100 * 1024 * 1024
    backlog: int = 128


class ByteBudget:
    """Bytes of request bodies being read at once.

    Bodies over SMALL_BODY_BYTES may use only three quarters of the budget, so that the ordinary small
    deliveries always find room while large (possibly forged) ones fill their share. Single-threaded:
    it is only used from the event loop.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.large_limit = limit * 3 // 4
        self.in_use = 0

    def try_acquire(self, size: int) -> bool:
        cap = self.limit if size <= SMALL_BODY_BYTES else self.large_limit
        if self.in_use + size > cap:
            return False
        self.in_use += size
        metrics.BODY_BYTES_IN_FLIGHT.set(self.in_use)
        return True

    def release(self, size: int) -> None:
        self.in_use -= size
        metrics.BODY_BYTES_IN_FLIGHT.set(self.in_use)


class ConnectionTracker:
    """Which connections are inside a webhook request right now (the handler marks them)."""

    def __init__(self) -> None:
        self.busy: dict[object, int] = {}
        self.last_active: dict[object, float] = {}

    def begin(self, protocol: object) -> None:
        self.busy[protocol] = self.busy.get(protocol, 0) + 1

    def end(self, protocol: object) -> None:
        left = self.busy.get(protocol, 0) - 1
        if left > 0:
            self.busy[protocol] = left
        else:
            self.busy.pop(protocol, None)
        self.last_active[protocol] = time.monotonic()


_FULL_BODY = b'{"message": "too many open connections; retry in a second"}\n'
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_FULL_BODY), _FULL_BODY)
)


class _Refuse(asyncio.Protocol):
    """Every connection is busy in a handler: say so and close, holding nothing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_FULL)
        transport.close()


class ConnectionLimiter:
    """Protocol factory for the listening socket: caps open connections and closes slow ones."""

    def __init__(self, server: web.Server, tracker: ConnectionTracker, limits: HttpLimits) -> None:
        self.server = server
        self.tracker = tracker
        self.limits = limits
        self.opened: dict[RequestHandler, float] = {}
        self._closing: set[RequestHandler] = set()

    def __call__(self) -> asyncio.BaseProtocol:
        live = self._live()
        if len(live) >= self.limits.max_connections:
            victim = next((h for h in live if h not in self.tracker.busy), None)  # oldest first
            if victim is None:
                metrics.CONNECTIONS_SHED.labels("refused").inc()
                return _Refuse()
            metrics.CONNECTIONS_SHED.labels("evicted").inc()
            self._close(victim)
        handler = self.server()
        self.opened[handler] = time.monotonic()
        return handler

    def _live(self) -> list[RequestHandler]:
        return [h for h in self.server.connections if h not in self._closing]

    def _close(self, handler: RequestHandler) -> None:
        self._closing.add(handler)
        handler.force_close()

    def sweep(self) -> int:
        """Close connections that sat outside a handler for longer than the header timeout."""
        now = time.monotonic()
        current = set(self.server.connections)
        for gone in [h for h in self.opened if h not in current]:
            self.opened.pop(gone, None)
            self.tracker.last_active.pop(gone, None)
            self.tracker.busy.pop(gone, None)
        self._closing &= current
        closed = 0
        for handler, opened in list(self.opened.items()):
            if handler in self.tracker.busy or handler in self._closing:
                continue
            since = self.tracker.last_active.get(handler, opened)
            if now - since > self.limits.header_timeout:
                self._close(handler)
                closed += 1
        if closed:
            metrics.CONNECTIONS_SHED.labels("timeout").inc(closed)
        metrics.OPEN_CONNECTIONS.set(len(current))
        return closed

    async def run_sweeper(self) -> None:
        interval = min(1.0, self.limits.header_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            self.sweep()


class OneLineProtocolErrors(logging.Filter):
    """aiohttp logs every malformed HTTP request at ERROR with a traceback (~900 bytes each, at
    whatever rate a client sends them). Make those one WARNING line; real server errors stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            detail = " ".join(str(exc.message).split())[:200]  # the client's bytes: one line, bounded
            record.msg = f"{record.getMessage()}: malformed request refused: {type(exc).__name__}: {detail}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class AcceptErrorLog:
    """Event loop exception handler that reports "socket.accept() out of system resource" once per
    ``every`` seconds with a count, instead of up to ``backlog`` times per loop turn with a traceback."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.suppressed = 0
        self.last = -float("inf")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != self.MESSAGE:
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < self.every:
            self.suppressed += 1
            return
        exc = context.get("exception")
        log.warning(
            "%s (%s); %d more since the last report; raise the open-files limit or lower "
            "MODELSHIP_HTTP_MAX_CONNECTIONS",
            self.MESSAGE,
            exc,
            self.suppressed,
        )
        self.last, self.suppressed = now, 0
