"""The bot's own pull requests: find the open one for a branch, or open it (deploy PRs, rollback PRs)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI


async def open_or_update_pull(
    gh: GitHubAPI, repo: str, branch: str, base: str, title: str, body: str
) -> dict[str, Any] | None:
    """The open PR from ``branch`` (in ``repo`` itself) into ``base``: found and retitled when its title or
    body differ, else opened. None: GitHub says the branch has nothing to merge ("No commits between")."""
    owner = repo.split("/", 1)[0]
    async for pull in gh.getiter(f"/repos/{repo}/pulls?state=open&head={quote(f'{owner}:{branch}', safe='')}"):
        # The branch now carries a newer version: the PR must say so too, not only its latest commit.
        if pull.get("title") != title or (pull.get("body") or "") != body:
            await gh.patch(f"/repos/{repo}/pulls/{pull['number']}", data={"title": title, "body": body})
        found: dict[str, Any] = pull
        return found
    try:
        created: dict[str, Any] = await gh.post(
            f"/repos/{repo}/pulls", data={"title": title, "head": branch, "base": base, "body": body}
        )
    except BadRequest as exc:
        if exc.status_code == 422 and "No commits between" in f"{exc} {getattr(exc, 'errors', '')}":
            return None
        raise
    return created
