"""Read files through the contents API at a given commit: `.modelship.yml` (the policy is never the
PR's own) and model bytes that are hashed, never loaded."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.config.repo import (
    CONFIG_PATH,
    DEFAULT_DEPLOY_ROOT,
    ConfigProblem,
    RepoConfig,
    RepoConfigError,
    parse_repo_config,
)


class ContentsError(Exception):
    """The path exists but the contents API cannot hand it over as one file."""


async def read_file(gh: GitHubAPI, repo: str, path: str, ref: str | None = None) -> bytes | None:
    """The bytes of ``path`` at ``ref`` (the default branch when None), or None when there is no such path."""
    query = f"?ref={quote(ref, safe='')}" if ref else ""
    try:
        data = await gh.getitem(f"/repos/{repo}/contents/{quote(path)}{query}")
    except BadRequest as exc:
        if exc.status_code == 404:
            return None
        raise
    if not isinstance(data, dict) or data.get("type") != "file":
        raise ContentsError(f"`{path}` is not a file")
    # Over 1 MB GitHub answers with an empty content and encoding "none".
    if data.get("encoding") != "base64" or (not data.get("content") and data.get("size")):
        raise ContentsError(f"`{path}` is too large for the contents API (add a review: it records the sha256)")
    try:
        return base64.b64decode(data.get("content") or "")
    except binascii.Error as exc:
        raise ContentsError(f"`{path}`: GitHub sent content that is not base64") from exc


async def read_repo_config(
    gh: GitHubAPI, repo: str, ref: str | None = None, *, deploy_root: str | None = DEFAULT_DEPLOY_ROOT
) -> RepoConfig | RepoConfigError | None:
    """The config at ``ref`` (the default branch when None), its problems, or None when there is none.

    ``deploy_root``: the server's MODELSHIP_DEPLOY_ROOT (see ``parse_repo_config``)."""
    try:
        data = await read_file(gh, repo, CONFIG_PATH, ref)
        if data is None:
            return None
        text = data.decode("utf-8")
    except ContentsError as exc:
        return RepoConfigError([ConfigProblem("", None, str(exc))])
    except UnicodeDecodeError:
        return RepoConfigError([ConfigProblem("", None, f"{CONFIG_PATH} is not UTF-8 text")])
    try:
        return parse_repo_config(text, deploy_root=deploy_root)
    except RepoConfigError as exc:
        return exc
