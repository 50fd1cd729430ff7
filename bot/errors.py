"""Error kinds the worker distinguishes: transient ones are retried, the rest park the job."""

from __future__ import annotations

import asyncio

import aiohttp
import gidgethub


class TransientError(Exception):
    """Worth retrying later: a dependency was unavailable."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | aiohttp.ClientError | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, gidgethub.RateLimitExceeded | gidgethub.GitHubBroken):
        return True
    if isinstance(exc, gidgethub.BadRequest):
        return exc.status_code in (403, 429) and "rate limit" in str(exc).lower()
    return False
