"""The GitHub App: one JWT-authenticated client, and one client per installation."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import Callable

import aiohttp
import jwt

from bot.github.auth import InstallationTokens, make_app_jwt
from bot.github.client import Authorizer, Clock, GitHubClient, Sleep
from bot.github.retry import RetryPolicy

# An app JWT lives 9 minutes; reuse it for 5 so it always has minutes left when it arrives.
_JWT_REUSE = 5 * 60
_FULL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def git_base_url(api_url: str) -> str:
    """Where git is served, from the REST root: api.github.com -> github.com, GHES drops /api/v3."""
    parts = urllib.parse.urlsplit(api_url.rstrip("/"))
    netloc, path = parts.netloc, parts.path
    if path.endswith("/api/v3"):
        path = path.removesuffix("/api/v3")
    elif not path and netloc.startswith("api."):
        netloc = netloc.removeprefix("api.")
    return f"{parts.scheme}://{netloc}{path}"


class GitHubApp:
    def __init__(
        self,
        app_id: int,
        private_key_pem: str,
        api_url: str,
        session: aiohttp.ClientSession,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
        policy: RetryPolicy | None = None,
        requester: str = "modelship",
    ) -> None:
        try:
            make_app_jwt(app_id, private_key_pem, now=clock())
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError):  # AttributeError: a public key
            # Never echo the key itself: the message names the settings to fix instead.
            raise ValueError(
                "the GitHub App private key is not a valid RSA PEM key; check "
                "MODELSHIP_GITHUB_PRIVATE_KEY_PATH or MODELSHIP_GITHUB_PRIVATE_KEY"
            ) from None
        self.app_id = app_id
        self.api_url = api_url.rstrip("/")
        self._private_key_pem = private_key_pem
        self._session = session
        self._sleep = sleep
        self._clock = clock
        self._policy = policy
        self._requester = requester
        self._jwt: tuple[str, float] | None = None
        self._app = self._client(self._bearer, self._forget_jwt, "app")
        self.tokens = InstallationTokens(self._app, clock=clock)
        self._installations: dict[int, GitHubClient] = {}
        self._git_base = git_base_url(self.api_url)

    async def app_client(self) -> GitHubClient:
        """A client authenticated as the app itself (``/app/...`` endpoints)."""
        return self._app

    async def for_installation(self, installation_id: int) -> GitHubClient:
        """The client for one installation; it shares the installation's rate-limit pause."""
        await self.tokens.get(installation_id)  # fail here, early, for an unknown installation
        client = self._installations.get(installation_id)
        if client is None:
            client = self._client(
                self._token_authorizer(installation_id),
                lambda: self.tokens.invalidate(installation_id),
                str(installation_id),
            )
            self._installations[installation_id] = client
        return client

    async def installation_token(self, installation_id: int) -> str:
        """A current installation token, e.g. for git over HTTP (see ``git_url``)."""
        return await self.tokens.get(installation_id)

    def git_url(self, full_name: str, token: str) -> str:
        """``https://x-access-token:<token>@host/owner/repo.git``; redact before logging it."""
        if not _FULL_NAME.fullmatch(full_name):
            raise ValueError(f"not a repository full name (owner/name): {full_name!r}")
        scheme, rest = self._git_base.split("://", 1)
        return f"{scheme}://x-access-token:{urllib.parse.quote(token, safe='')}@{rest}/{full_name}.git"

    def _client(self, authorizer: Authorizer, forget: Callable[[], None], installation: str) -> GitHubClient:
        return GitHubClient(
            self._session,
            base_url=self.api_url,
            authorizer=authorizer,
            forget_credential=forget,
            installation=installation,
            requester=self._requester,
            policy=self._policy,
            sleep=self._sleep,
            clock=self._clock,
        )

    async def _bearer(self) -> str:
        now = self._clock()
        if self._jwt is None or now >= self._jwt[1]:
            self._jwt = make_app_jwt(self.app_id, self._private_key_pem, now=now), now + _JWT_REUSE
        return f"Bearer {self._jwt[0]}"

    def _forget_jwt(self) -> None:
        self._jwt = None

    def _token_authorizer(self, installation_id: int) -> Authorizer:
        async def authorize() -> str:
            return f"token {await self.tokens.get(installation_id)}"

        return authorize
