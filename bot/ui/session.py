"""Dashboard sessions: a signed, expiring cookie that carries only a random session id; the session
(login, readable repositories, CSRF token, the user's GitHub token) stays in this process.

Pure apart from the clock passed in: signing is HMAC-SHA256 over ``sid.expiry``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

COOKIE = "modelship_session"
STATE_COOKIE = "modelship_oauth_state"


def sign(key: bytes, value: str) -> str:
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def unsign(key: bytes, signed: str, now: float) -> str | None:
    """The value of ``sign(key, f"{value}.{expiry}")`` when the MAC holds and the expiry is ahead."""
    value = signed.rpartition(".")[0]
    if not value or not hmac.compare_digest(sign(key, value), signed):
        return None
    payload, _, expiry = value.rpartition(".")
    try:
        if float(expiry) < now:
            return None
    except ValueError:
        return None
    return payload


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


@dataclass
class Session:
    login: str
    token: str  # the user's GitHub token: server-side only
    repos: dict[str, str]  # full name -> permission the user has (read, triage, write, maintain, admin)
    expires_at: float
    refreshed_at: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def can_read(self, repo: str) -> bool:
        return repo in self.repos


class SessionStore:
    """Sessions by id, in memory: a restart signs everyone out (their cookies no longer match)."""

    def __init__(self, key: bytes, lifetime: float) -> None:
        self.key = key
        self.lifetime = lifetime
        self._sessions: dict[str, Session] = {}

    def create(self, login: str, token: str, repos: dict[str, str], now: float) -> tuple[str, Session]:
        """A new session and its cookie value."""
        self._expire(now)
        sid = secrets.token_urlsafe(32)
        session = Session(login, token, repos, now + self.lifetime, now)
        self._sessions[sid] = session
        return sign(self.key, f"{sid}.{int(session.expires_at)}"), session

    def get(self, cookie: str | None, now: float) -> Session | None:
        sid = unsign(self.key, cookie, now) if cookie else None
        session = self._sessions.get(sid) if sid else None
        if session is None or session.expires_at < now:
            return None
        return session

    def drop(self, cookie: str | None, now: float) -> None:
        sid = unsign(self.key, cookie, now) if cookie else None
        if sid:
            self._sessions.pop(sid, None)

    def _expire(self, now: float) -> None:
        for sid in [s for s, v in self._sessions.items() if v.expires_at < now]:
            del self._sessions[sid]
