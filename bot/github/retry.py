"""When and how long to wait before asking GitHub again: a pure policy, no I/O.

GitHub's documented order for rate limits: honour ``retry-after``; else, when
``x-ratelimit-remaining`` is 0, wait until ``x-ratelimit-reset``; else (a secondary limit)
wait at least a minute, growing exponentially while it persists.
"""

from __future__ import annotations

import email.utils
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gidgethub import GitHubException

# x-ratelimit-reset has whole-second resolution and our clock is not GitHub's.
RESET_MARGIN = 1.0


class GitHubRetriesExhausted(GitHubException):
    """GitHub kept failing (or asked for a longer wait than allowed); the message says why."""

    def __init__(self, message: str, *, status: int | None) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0  # 5xx / timeouts: base * 2**(attempt-1), capped, jittered
    max_delay: float = 30.0
    secondary_delay: float = 60.0  # secondary rate limit without retry-after
    max_secondary_delay: float = 600.0
    max_wait: float = 900.0  # a longer requested wait fails fast: the job queue can retry later
    request_timeout: float = 30.0
    jitter: Callable[[], float] = random.random  # uniform in [0, 1)


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: str
    # A rate limit pauses every request of the client (one installation), not just this one.
    rate_limited: bool


def backoff(attempt: int, policy: RetryPolicy) -> float:
    """Capped exponential backoff with 'equal jitter': a value in [d/2, d]."""
    delay = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return delay * (0.5 + 0.5 * policy.jitter())


def plan_retry(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    attempt: int,
    rate_limit_hits: int,
    now: float,
    policy: RetryPolicy,
) -> Wait | None:
    """Return how long to wait before retrying this response, or None if it must not be retried.

    ``attempt`` counts attempts so far (1-based); ``rate_limit_hits`` counts rate-limited responses
    so far for this request, including this one if it is one.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    if _is_rate_limited(status, lower, body):
        return _rate_limit_wait(lower, rate_limit_hits=rate_limit_hits, now=now, policy=policy)
    if status >= 500:
        return Wait(backoff(attempt, policy), f"server error {status}", rate_limited=False)
    return None


def quota_exhausted_until(headers: Mapping[str, str]) -> float | None:
    """The epoch time to pause until when a response spent the last of the primary quota."""
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("x-ratelimit-remaining", "").strip() != "0":
        return None
    reset = _float(lower.get("x-ratelimit-reset"))
    return None if reset is None else reset + RESET_MARGIN


def _is_rate_limited(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    if status == 429:
        return True
    if status != 403:
        return False  # other 4xx are the caller's problem; retrying cannot fix them
    return (
        "retry-after" in headers
        or headers.get("x-ratelimit-remaining", "").strip() == "0"
        or any(word in _message(body).lower() for word in ("rate limit", "abuse detection"))
    )


def _rate_limit_wait(headers: Mapping[str, str], *, rate_limit_hits: int, now: float, policy: RetryPolicy) -> Wait:
    retry_after = _retry_after(headers.get("retry-after"), now)
    if retry_after is not None:
        return Wait(retry_after, f"rate limited, retry-after {retry_after:g} s", rate_limited=True)
    reset = _float(headers.get("x-ratelimit-reset"))
    if headers.get("x-ratelimit-remaining", "").strip() == "0" and reset is not None:
        seconds = max(0.0, reset - now) + RESET_MARGIN
        return Wait(seconds, f"primary rate limit exhausted, resets at epoch {reset:.0f}", rate_limited=True)
    exponent = max(0, rate_limit_hits - 1)
    seconds = min(policy.max_secondary_delay, policy.secondary_delay * 2**exponent)
    seconds *= 1 + 0.25 * policy.jitter()
    return Wait(seconds, "secondary rate limit", rate_limited=True)


def _retry_after(value: str | None, now: float) -> float | None:
    """retry-after is delta-seconds (what GitHub sends) or an HTTP-date."""
    if value is None:
        return None
    seconds = _float(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    return str(data.get("message", "")) if isinstance(data, dict) else ""
