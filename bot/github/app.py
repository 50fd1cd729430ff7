"""The GitHub App: one JWT-authenticated client, and one client per installation."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import jwt

from bot.github.auth import InstallationTokens, make_app_jwt
from bot.github.client import Authorizer, Clock, GitHubClient, Sleep
from bot.github.git import TokenSource, credential_free
from bot.github.retry import RetryPolicy

# An app JWT lives 9 minutes; reuse it for 5 so it always has minutes left when it arrives.
_JWT_REUSE = 5 * 60
_FULL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def git_base_url(api_url: str) -> str:
    """The web root people browse, from the REST root: api.github.com -> github.com, GHES drops /api/v3.

    Only for links in comments: git itself goes to each repository's ``clone_url`` (``clone_url``).
    """
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
        self._clone_urls: dict[str, str] = {}

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
        """A current installation token (cached; minted when missing or about to expire)."""
        return await self.tokens.get(installation_id)

    def git_token(self, installation_id: int) -> TokenSource:
        """The installation's token for git (``bot.github.git.with_token``): renewable when refused."""
        return _InstallationToken(self.tokens, installation_id)

    def remember_repository(self, repository: object) -> None:
        """Note a webhook's ``repository.clone_url``, so git needs no API call to find the repository."""
        if isinstance(repository, dict):
            full_name, url = repository.get("full_name"), repository.get("clone_url")
            if isinstance(full_name, str) and isinstance(url, str) and _FULL_NAME.fullmatch(full_name):
                # Not a URL git could use over HTTP: ask the API when it is needed.
                with contextlib.suppress(ValueError):
                    self._clone_urls[full_name] = credential_free(url)

    async def clone_url(self, full_name: str, installation_id: int) -> str:
        """Where git reaches the repository, as GitHub says (``clone_url``), cached per repository.

        Never derived from the API URL: a GHES with a separate git host, a proxy or a mirror serves
        git elsewhere, and only GitHub knows where.
        """
        if not _FULL_NAME.fullmatch(full_name):
            raise ValueError(f"not a repository full name (owner/name): {full_name!r}")
        url = self._clone_urls.get(full_name)
        if url is None:
            client = await self.for_installation(installation_id)
            repo = await client.getitem(f"/repos/{full_name}")
            raw = repo.get("clone_url") if isinstance(repo, dict) else None
            if not isinstance(raw, str):
                raise ValueError(f"GitHub's answer for {full_name} has no clone_url")
            url = self._clone_urls[full_name] = credential_free(raw)
        return url

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


@dataclass(frozen=True)
class _InstallationToken:
    tokens: InstallationTokens
    installation_id: int

    async def get(self) -> str:
        return await self.tokens.get(self.installation_id)

    def invalidate(self) -> None:
        self.tokens.invalidate(self.installation_id)
