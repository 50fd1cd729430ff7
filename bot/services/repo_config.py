"""Read `.modelship.yml` through the contents API at a given commit (the policy is never the PR's own)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.repoconfig import CONFIG_PATH, ConfigProblem, RepoConfig, RepoConfigError, parse_repo_config


async def read_repo_config(gh: GitHubAPI, repo: str, ref: str | None = None) -> RepoConfig | RepoConfigError | None:
    """The config at ``ref`` (the default branch when None), its problems, or None when there is none."""
    query = f"?ref={quote(ref, safe='')}" if ref else ""
    try:
        data = await gh.getitem(f"/repos/{repo}/contents/{CONFIG_PATH}{query}")
    except BadRequest as exc:
        if exc.status_code == 404:
            return None
        raise
    if not isinstance(data, dict) or data.get("type") != "file":
        return RepoConfigError([ConfigProblem("", None, f"{CONFIG_PATH} must be a file")])
    try:
        text = base64.b64decode(data.get("content") or "").decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return RepoConfigError([ConfigProblem("", None, f"{CONFIG_PATH} is not UTF-8 text")])
    try:
        return parse_repo_config(text)
    except RepoConfigError as exc:
        return exc
