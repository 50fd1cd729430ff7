"""One classification of failures for every job, and the one in-job retry helper that uses it.

``classify`` sorts an exception into four kinds:

- ``transient``: a dependency hiccuped (git or HTTP 5xx, a timeout, a reset connection, a rate limit,
  a registry or engine that did not answer). Retried with back-off INSIDE the job (``retry_transient``)
  before the job is failed; the queue retries a transient error that escaped the job as well.
- ``infrastructure``: something outside the PR is wrong or stayed down (retries exhausted, credentials
  refused, a GitHub 4xx). The job ends at once; users are told it is not their PR's fault.
- ``input``: the job's input is wrong (the PR, its ``.modelship.yml``): the job ends at once and the
  message says what to fix.
- ``bug``: anything else. The job ends at once; users see the job id, operators the traceback.

An exception may declare its own kind with a ``failure`` attribute (a ``Failure``), as ``CheckoutError``
does from git's stderr. Git's stderr is read in one place only, ``bot.github.git.classify``; ``git_failure``
maps its verdict to a kind here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import aiohttp
import gidgethub
import requests

from bot.github.git import Failure as GitFailure
from bot.github.git import GitAuthError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Failure(StrEnum):
    TRANSIENT = "transient"
    INFRASTRUCTURE = "infrastructure"
    INPUT = "input"
    BUG = "bug"


class TransientError(Exception):
    """Worth retrying later: a dependency was unavailable."""

    failure = Failure.TRANSIENT


class InputError(Exception):
    """The job's input is wrong (the PR or its policy); the message is safe to show and says what to fix."""

    failure = Failure.INPUT


class RetriesExhausted(Exception):
    """A transient failure outlived the in-job retries: the dependency stayed down."""

    failure = Failure.INFRASTRUCTURE

    def __init__(self, what: str, attempts: int, last: BaseException) -> None:
        self.what, self.attempts, self.last = what, attempts, last
        super().__init__(f"{what}: gave up after {attempts} attempts; last error: {last}")


def git_failure(kind: GitFailure) -> Failure:
    """What a git failure (``bot.github.git.classify`` of git's stderr, the one place that reads it) means
    for a job: an unreachable host or a lost push race may work next time; a refused token (after its
    one renewal) or anything else (a missing repository or ref) will not."""
    return Failure.TRANSIENT if kind in ("unreachable", "rejected") else Failure.INFRASTRUCTURE


def classify(exc: BaseException) -> Failure:
    declared = getattr(exc, "failure", None)
    if isinstance(declared, Failure):
        return declared
    from bot.github.retry import GitHubRetriesExhausted  # the REST client already retried inside the job

    if isinstance(exc, GitHubRetriesExhausted):
        return Failure.INFRASTRUCTURE
    if isinstance(exc, GitAuthError):
        return git_failure("auth")  # with_token already minted a new token once
    if isinstance(exc, aiohttp.ClientResponseError):
        return Failure.TRANSIENT if exc.status >= 500 or exc.status == 429 else Failure.INFRASTRUCTURE
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError):
        return Failure.TRANSIENT
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return Failure.TRANSIENT  # the container engine or a registry did not answer
    if isinstance(exc, gidgethub.RateLimitExceeded | gidgethub.GitHubBroken):
        return Failure.TRANSIENT
    if isinstance(exc, gidgethub.BadRequest):
        limited = exc.status_code in (403, 429) and "rate limit" in str(exc).lower()
        return Failure.TRANSIENT if limited else Failure.INFRASTRUCTURE
    docker_errors = sys.modules.get("docker.errors")  # only when the sandbox (docker SDK) is in use
    if docker_errors is not None and isinstance(exc, docker_errors.APIError):
        status = exc.status_code or 0
        return Failure.TRANSIENT if status >= 500 or status == 429 else Failure.INFRASTRUCTURE
    from bot.config.repo import RepoConfigError

    if isinstance(exc, RepoConfigError):
        return Failure.INPUT
    return Failure.BUG


def is_transient(exc: BaseException) -> bool:
    return classify(exc) is Failure.TRANSIENT


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently a job retries a transient failure before it gives up."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 8.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        """Capped exponential back-off with full jitter, after failed attempt number ``attempt`` (1-based)."""
        return self.rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    policy: Backoff | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    transient: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Run ``operation``; retry it after a transient failure; raise ``RetriesExhausted`` when the budget
    is spent. Any other failure is raised at once: retrying cannot fix a missing model or a bad config."""
    policy = policy or Backoff()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except Exception as exc:
            if not transient(exc):
                raise
            if attempt >= policy.attempts:
                raise RetriesExhausted(what, attempt, exc) from exc
            delay = policy.delay(attempt)
            log.warning(
                "%s (attempt %d of %d failed), retrying in %.2f s: %s", what, attempt, policy.attempts, delay, exc
            )
            await sleep(delay)
