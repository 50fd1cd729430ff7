"""Dashboard sessions: a signed, expiring cookie that carries only a random session id; the session
(login, readable repositories, CSRF token, the user's GitHub token) is a row of `ui_sessions`, so a restart
signs nobody out and replicas share it. This module is that table's one reader and writer.

Signing is HMAC-SHA256 over ``sid.expiry``; the row is keyed by sha256(sid), and the token is encrypted
with AES-GCM under a key derived (HKDF) from MODELSHIP_UI_SESSION_SECRET, so neither a copy of the table
nor a log of it opens a session or yields a token. The clock is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.ui_models import UiSession

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
    sid: str = ""  # the id the cookie carries (its row is keyed by this id's sha256)
    # Public repositories of the App's installations (bot.ui.public), added per request and never stored:
    # anyone may read them, though GET /user/repos does not list them.
    public: frozenset[str] = frozenset()

    def can_read(self, repo: str) -> bool:
        return repo in self.repos or repo in self.public

    def readable(self) -> list[str]:
        return sorted(self.repos.keys() | self.public)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"modelship ui " + purpose).derive(secret)


def _row_id(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class TokenBox:
    """AES-GCM around the user's GitHub token; the row id is the associated data, so a ciphertext moved
    to another row does not decrypt."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, token: str, row_id: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, token.encode(), row_id.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, row_id: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            return self._aead.decrypt(raw[:12], raw[12:], row_id.encode()).decode()
        except (InvalidTag, ValueError):
            return None  # another key (the secret changed) or a damaged row: that session is gone


class SessionStore:
    """Sessions in the `ui_sessions` table, shared by every replica and kept across restarts."""

    def __init__(self, engine: AsyncEngine, secret: bytes, lifetime: float, cache_seconds: float = 1.0) -> None:
        self.engine = engine
        # Every page and each live poll opens the session: a row read within the last second is reused
        # (a sign-out on another replica takes effect there within that second; on this one at once).
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Session]] = {}
        self.key = _derive(secret, b"cookies")  # signs session and sign-in state cookies
        self.lifetime = lifetime
        self._box = TokenBox(_derive(secret, b"tokens"))

    async def create(self, login: str, token: str, repos: dict[str, str], now: float) -> tuple[str, Session]:
        """A new session and its cookie value (expired sessions are deleted on the way)."""
        sid = secrets.token_urlsafe(32)
        session = Session(login, token, repos, now + self.lifetime, now, sid=sid)
        row_id = _row_id(sid)
        async with self.engine.begin() as conn:
            await conn.execute(delete(UiSession).where(UiSession.expires_at < now))
            await conn.execute(
                insert(UiSession).values(
                    id=row_id,
                    login=login,
                    token=self._box.seal(token, row_id),
                    repos=repos,
                    csrf=session.csrf,
                    expires_at=session.expires_at,
                    refreshed_at=now,
                )
            )
        return sign(self.key, f"{sid}.{int(session.expires_at)}"), session

    async def get(self, cookie: str | None, now: float) -> Session | None:
        sid = unsign(self.key, cookie, now) if cookie else None
        if not sid:
            return None
        row_id = _row_id(sid)
        cached = self._cache.get(row_id)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1] if cached[1].expires_at >= now else None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(UiSession).where(UiSession.id == row_id))).one_or_none()
        if row is None or row.expires_at < now:
            self._cache.pop(row_id, None)
            return None
        token = self._box.open(row.token, row_id)
        if token is None:
            return None
        repos = {str(k): str(v) for k, v in (row.repos or {}).items()}
        session = Session(row.login, token, repos, row.expires_at, row.refreshed_at, row.csrf, sid)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[row_id] = (time.monotonic(), session)
        return session

    async def refreshed(self, session: Session) -> None:
        """Keep what a refresh re-read (the repositories the user can read now)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(UiSession)
                .where(UiSession.id == _row_id(session.sid))
                .values(repos=session.repos, refreshed_at=session.refreshed_at)
            )

    async def drop(self, cookie: str | None, now: float) -> None:
        """Sign-out: the row is deleted, so the cookie opens nothing on any replica."""
        sid = unsign(self.key, cookie, now) if cookie else None
        if sid:
            self._cache.pop(_row_id(sid), None)
            async with self.engine.begin() as conn:
                await conn.execute(delete(UiSession).where(UiSession.id == _row_id(sid)))
