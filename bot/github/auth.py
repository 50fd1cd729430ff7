"""App authentication: the RS256 app JWT and cached installation access tokens."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

# GitHub rejects JWTs issued in the future and ones living longer than 10 minutes.
_BACKDATE = 60
_LIFETIME = 9 * 60
# Refresh this long before expires_at so a token never expires in the middle of a job step.
REFRESH_MARGIN = 5 * 60


def make_app_jwt(app_id: int, private_key_pem: str, *, now: float) -> str:
    """Sign the app's JWT: ``iat`` 60 s in the past absorbs clock drift between us and GitHub."""
    payload = {"iat": int(now) - _BACKDATE, "exp": int(now) + _LIFETIME, "iss": str(app_id)}
    return jwt.encode(payload, private_key_pem, algorithm="RS256")


class AppPoster(Protocol):
    """The one call InstallationTokens needs: a POST authenticated as the app (JWT)."""

    async def post(self, url: str, url_vars: dict[str, Any], *, data: Any) -> Any: ...


@dataclass(frozen=True)
class InstallationToken:
    value: str = field(repr=False)
    expires_at: float  # epoch seconds


class InstallationTokens:
    """Installation access tokens, cached per installation and refreshed before they expire."""

    def __init__(
        self,
        app: AppPoster,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = REFRESH_MARGIN,
    ) -> None:
        self._app = app
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._tokens: dict[int, InstallationToken] = {}
        # One lock per installation: a slow fetch for one installation never delays another.
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(self, installation_id: int) -> str:
        token = self._fresh(installation_id)
        if token is not None:
            return token.value
        async with self._locks.setdefault(installation_id, asyncio.Lock()):
            token = self._fresh(installation_id)  # a concurrent caller may have fetched it meanwhile
            if token is None:
                token = await self._fetch(installation_id)
                self._tokens[installation_id] = token
            return token.value

    def invalidate(self, installation_id: int) -> None:
        """Forget a token GitHub no longer accepts (revoked, installation suspended)."""
        self._tokens.pop(installation_id, None)

    def _fresh(self, installation_id: int) -> InstallationToken | None:
        token = self._tokens.get(installation_id)
        if token is None or self._clock() >= token.expires_at - self._refresh_margin:
            return None
        return token

    async def _fetch(self, installation_id: int) -> InstallationToken:
        response = await self._app.post(
            "/app/installations/{installation_id}/access_tokens",
            {"installation_id": installation_id},
            data=b"",
        )
        try:
            value, expires_at = response["token"], response["expires_at"]
            expires = datetime.datetime.fromisoformat(expires_at).timestamp()
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(
                f"GitHub's access_tokens response for installation {installation_id} lacks a valid "
                "'token' / 'expires_at'"
            ) from exc
        if not isinstance(value, str) or not value:
            raise ValueError(f"GitHub returned an empty token for installation {installation_id}")
        return InstallationToken(value, expires)
