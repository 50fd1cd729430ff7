"""GitHub's HTTP conventions for devhub's REST face: errors, pagination, rate-limit headers, ETags."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

DOCS = "https://docs.github.com/rest"
RATE_LIMIT = 5000
T = TypeVar("T")


class GitHubError(Exception):
    """Raised by handlers; rendered as GitHub's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}


def not_found() -> GitHubError:
    return GitHubError(404, "Not Found")


def invalid(resource: str, field_name: str, code: str = "missing_field", message: str | None = None) -> GitHubError:
    error: dict[str, Any] = {"resource": resource, "field": field_name, "code": code}
    if message:
        error["message"] = message
    return GitHubError(422, "Validation Failed", [error])


def error_response(exc: GitHubError) -> web.Response:
    body: dict[str, Any] = {"message": exc.message, "documentation_url": DOCS}
    if exc.errors is not None:
        body["errors"] = exc.errors
    body["status"] = str(exc.status)
    return json_response(body, exc.status, exc.headers)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # GitHub answers compact JSON; clients hash and cache these exact bytes.
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def paginate(request: web.Request, items: Sequence[T], max_per_page: int = 100) -> tuple[list[T], dict[str, str]]:
    """Slice items per `per_page`/`page` and build GitHub's Link header."""
    try:
        per_page = min(max(int(request.query.get("per_page", 30)), 1), max_per_page)
        page = max(int(request.query.get("page", 1)), 1)
    except ValueError as exc:
        raise GitHubError(422, "Invalid request.\n\nFor 'page' and 'per_page', integers are expected.") from exc
    last = max(math.ceil(len(items) / per_page), 1)
    links = []

    def link(n: int, rel: str) -> str:
        return f'<{request.url.update_query(per_page=per_page, page=n)}>; rel="{rel}"'

    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    return list(items[(page - 1) * per_page : page * per_page]), ({"Link": ", ".join(links)} if links else {})


@dataclass
class RateLimits:
    """GitHub's primary rate limit per credential, with an hourly window (lower `limit` in tests)."""

    limit: int = RATE_LIMIT
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)

    def exhausted(self, headers: dict[str, str]) -> bool:
        return int(headers["x-ratelimit-used"]) > self.limit

    def charge(self, key: str, count: bool = True) -> dict[str, str]:
        now = time.time()
        start, used = self.windows.get(key, (now, 0))
        if now - start >= 3600:
            start, used = now, 0
        used += int(count)
        self.windows[key] = (start, used)
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(self.limit - used, 0)),
            "x-ratelimit-reset": str(int(start + 3600)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-resource": "core",
        }


def etag_of(body: bytes) -> str:
    return f'W/"{hashlib.sha256(body).hexdigest()[:40]}"'


def credential_key(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    # Hash so no credential is kept in memory longer than needed to bucket it.
    return hashlib.sha256(auth.encode()).hexdigest()[:16] if auth else f"ip:{request.remote}"
