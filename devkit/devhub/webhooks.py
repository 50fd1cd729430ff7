"""Send webhook deliveries the way GitHub does: exact raw bytes, HMAC signatures, Hookshot headers."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

USER_AGENT = "GitHub-Hookshot/devhub"


def sign(secret: str, body: bytes) -> tuple[str, str]:
    """(X-Hub-Signature-256, X-Hub-Signature) values for body."""
    key = secret.encode()
    return (
        "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest(),
        "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
    )


@dataclass
class Attempt:
    at: float
    status: int | None  # None when the receiver could not be reached
    response: bytes
    error: str | None = None


@dataclass
class Delivery:
    guid: str
    event: str
    action: str | None
    headers: dict[str, str]
    body: bytes
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def status(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None


class WebhookSender:
    """Signs, sends and records deliveries; the URL may be None to record without sending."""

    def __init__(self, url: str | None, secret: str | None, hook_id: int, timeout: float = 10.0) -> None:
        self.url = url
        self.secret = secret
        self.hook_id = hook_id
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._session: aiohttp.ClientSession | None = None

    def build(self, event: str, payload: dict[str, Any], target_type: str, target_id: int) -> Delivery:
        # GitHub sends compact JSON; receivers must verify against these exact bytes.
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Accept": "*/*",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Event": event,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-ID": str(target_id),
            "X-GitHub-Hook-Installation-Target-Type": target_type,
        }
        if self.secret is not None:
            sha256, sha1 = sign(self.secret, body)
            headers |= {"X-Hub-Signature-256": sha256, "X-Hub-Signature": sha1}
        return Delivery(headers["X-GitHub-Delivery"], event, payload.get("action"), headers, body)

    async def send(self, delivery: Delivery) -> Delivery:
        self.deliveries.append(delivery)
        await self._attempt(delivery)
        return delivery

    async def redeliver(self, guid: str) -> Delivery:
        """Send a recorded delivery again: same bytes, same headers, same GUID (like GitHub's Redeliver)."""
        delivery = self.find(guid)
        await self._attempt(delivery)
        return delivery

    def find(self, guid: str) -> Delivery:
        for delivery in self.deliveries:
            if delivery.guid == guid:
                return delivery
        raise KeyError(f"no delivery with GUID {guid}")

    async def _attempt(self, delivery: Delivery) -> None:
        if self.url is None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(self.url, data=delivery.body, headers=delivery.headers) as response:
                delivery.attempts.append(Attempt(time.time(), response.status, await response.read()))
        except (TimeoutError, aiohttp.ClientError) as exc:
            delivery.attempts.append(Attempt(time.time(), None, b"", f"{type(exc).__name__}: {exc}"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
