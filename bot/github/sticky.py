"""One sticky comment per PR and purpose, found by a hidden marker and edited in place.

Idempotent by construction: re-running a job after a crash edits the same comment instead of adding one.
"""

from __future__ import annotations

from gidgethub.abc import GitHubAPI

MAX_COMMENT = 65_536


def marker(name: str) -> str:
    return f"<!-- modelship:{name} -->"


async def find_sticky(gh: GitHubAPI, repo: str, number: int, mark: str, bot_login: str) -> dict | None:
    async for comment in gh.getiter(f"/repos/{repo}/issues/{number}/comments?per_page=100"):
        if comment.get("user", {}).get("login") == bot_login and mark in (comment.get("body") or ""):
            return comment
    return None


async def upsert_sticky(gh: GitHubAPI, repo: str, number: int, mark: str, body: str, *, bot_login: str) -> int:
    """Create or update the comment carrying ``mark``; returns its id."""
    if mark not in body:
        body = f"{mark}\n{body}"
    if len(body) > MAX_COMMENT:
        raise ValueError(f"comment is {len(body)} characters; GitHub's limit is {MAX_COMMENT}")
    existing = await find_sticky(gh, repo, number, mark, bot_login)
    if existing is not None:
        if existing.get("body") != body:
            await gh.patch(f"/repos/{repo}/issues/comments/{existing['id']}", data={"body": body})
        return int(existing["id"])
    created = await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": body})
    return int(created["id"])
