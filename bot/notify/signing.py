"""The generic webhook's signature: HMAC-SHA256 over ``timestamp + "." + body``. Pure.

A receiver recomputes it with the shared secret, compares in constant time, and refuses a timestamp
outside its replay window (docs/security.md#notifications has a verification snippet).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Modelship-Signature-256"
TIMESTAMP_HEADER = "X-Modelship-Timestamp"
REPLAY_WINDOW_SECONDS = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Modelship-Signature-256`` value: ``sha256=<hex>``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float,
    window: float = REPLAY_WINDOW_SECONDS,
) -> bool:
    """What a receiver does: the signature matches this body and timestamp, and the timestamp is recent."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > window:
        return False  # an old (replayed) or far-future delivery
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
