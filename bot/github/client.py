"""A gidgethub client that retries 5xx and transport failures and waits out rate limits.

Everything happens in ``_request``, gidgethub's single I/O seam, so every call (getitem, getiter,
post, ...) gets the same behaviour. A rate-limit pause is state of this client only: one client
serves one installation, so a rate-limited installation never stalls the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import gidgethub.aiohttp
from gidgethub import sansio

from bot.github.metrics import GITHUB_RATELIMIT_REMAINING, GITHUB_REQUESTS
from bot.github.redact import redact
from bot.github.retry import (
    GitHubRetriesExhausted,
    RetryPolicy,
    Wait,
    backoff,
    plan_retry,
    quota_exhausted_until,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]  # wall-clock epoch seconds: x-ratelimit-reset is an epoch time
# Returns a whole Authorization header value ("token ..." or "Bearer ..."), fresh for every attempt
# so that a retry after a long wait never goes out with an expired credential.
Authorizer = Callable[[], Awaitable[str]]

_TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)


@dataclass(frozen=True)
class _Failure:
    wait: Wait
    status: int | None
    cause: BaseException | None


class GitHubClient(gidgethub.aiohttp.GitHubAPI):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str = sansio.DOMAIN,
        authorizer: Authorizer | None = None,
        forget_credential: Callable[[], None] | None = None,
        installation: str = "app",
        requester: str = "modelship",
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(session, requester, base_url=base_url.rstrip("/"))
        self.installation = installation
        self.policy = policy or RetryPolicy()
        self._authorizer = authorizer
        self._forget_credential = forget_credential
        self._sleep = sleep
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=self.policy.request_timeout)
        self._paused_until = 0.0

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        rate_limit_hits, reauthorized = 0, False
        for attempt in range(1, self.policy.max_attempts + 1):
            await self._wait_out_pause()
            outcome = await self._attempt(method, url, headers, body, attempt, rate_limit_hits + 1)
            if not isinstance(outcome, _Failure):
                if outcome[0] == 401 and self._forget_credential is not None and not reauthorized:
                    # A cached token GitHub no longer accepts (revoked, GitHub restarted): mint once more.
                    self._forget_credential()
                    reauthorized = True
                    continue
                return outcome
            wait, where = outcome.wait, redact(f"{method} {url}")
            rate_limit_hits += wait.rate_limited
            if attempt == self.policy.max_attempts:
                raise GitHubRetriesExhausted(
                    f"GitHub {where} failed after {attempt} attempts; last: {redact(wait.reason)}",
                    status=outcome.status,
                ) from outcome.cause
            if wait.seconds > self.policy.max_wait:
                raise GitHubRetriesExhausted(
                    f"GitHub {where}: {redact(wait.reason)}; waiting {wait.seconds:.0f} s exceeds "
                    f"RetryPolicy.max_wait ({self.policy.max_wait:.0f} s), try again later",
                    status=outcome.status,
                ) from outcome.cause
            log.warning("GitHub %s: %s; retry %d in %.1f s", where, redact(wait.reason), attempt, wait.seconds)
            if wait.rate_limited:
                self._pause_until(self._clock() + wait.seconds)
            else:
                await self._sleep(wait.seconds)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def _attempt(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, attempt: int, hits: int
    ) -> tuple[int, Mapping[str, str], bytes] | _Failure:
        try:
            status, response_headers, response_body = await self._send(method, url, headers, body)
        except _TRANSPORT_ERRORS as exc:
            GITHUB_REQUESTS.labels(method=method, status="error").inc()
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return _Failure(Wait(backoff(attempt, self.policy), problem, rate_limited=False), None, exc)
        self._observe(method, status, response_headers)
        wait = plan_retry(
            status,
            response_headers,
            response_body,
            attempt=attempt,
            rate_limit_hits=hits,
            now=self._clock(),
            policy=self.policy,
        )
        if wait is None:
            return status, response_headers, response_body
        return _Failure(wait, status, None)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Mapping[str, str], bytes]:
        if self._authorizer is not None and "authorization" not in headers:
            headers = {**headers, "authorization": await self._authorizer()}
        async with self._session.request(method, url, headers=headers, data=body, timeout=self._timeout) as response:
            return response.status, response.headers, await response.read()

    def _observe(self, method: str, status: int, headers: Mapping[str, str]) -> None:
        GITHUB_REQUESTS.labels(method=method, status=str(status)).inc()
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            GITHUB_RATELIMIT_REMAINING.labels(installation=self.installation).set(int(remaining))
        if status < 400 and (until := quota_exhausted_until(headers)) is not None:
            # The last request of the quota succeeded; the next one would be refused until reset.
            self._pause_until(until)

    def _pause_until(self, when: float) -> None:
        self._paused_until = max(self._paused_until, when)

    async def _wait_out_pause(self) -> None:
        # Loop: another request of this client may extend the pause while we sleep.
        while (remaining := self._paused_until - self._clock()) > 0:
            await self._sleep(remaining)
