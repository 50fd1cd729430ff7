"""Fetch a PR's base and head trees from the model repository over git (HTTP, installation token).

Git goes to the repository's ``clone_url`` through ``bot.github.git``: the token only in a header
from the environment, renewed once when git refuses it.

The bot never interprets these files: model and data bytes are only handed to the sandbox, mounted
read-only. The policy (`.modelship.yml`) and the changed paths come from the API, at the base commit.
"""

from __future__ import annotations

import asyncio
import tarfile
from dataclasses import dataclass
from pathlib import Path

import git

from bot.github.git import GitAuthError, GitCredentials, TokenSource, classify, with_token

CONFIG_FILE = ".modelship.yml"


class CheckoutError(Exception):
    """The repository could not be fetched; the message carries no credentials."""


@dataclass(frozen=True)
class Checkout:
    base_dir: Path
    head_dir: Path


def export_tree(repo: git.Repo, sha: str, dest: Path) -> None:
    """`git archive` of one commit into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    tar_path = dest.with_suffix(".tar")
    with tar_path.open("wb") as fh:
        repo.archive(fh, sha, format="tar")
    with tarfile.open(tar_path) as tar:
        # The "data" filter refuses absolute paths, links out of dest and device files from the PR.
        tar.extractall(dest, filter="data")
    tar_path.unlink()


def _fetch(
    url: str, creds: GitCredentials, cache: Path, refspecs: list[str], base_sha: str, head_sha: str, workdir: Path
) -> Checkout:
    repo = git.Repo(cache) if (cache / "HEAD").exists() else git.Repo.init(cache, bare=True)
    try:
        repo.git.execute(["git", "fetch", "--quiet", "--no-tags", url, *refspecs], env=creds.env)
    except git.GitCommandError as exc:
        message = creds.redact(f"git fetch failed: {str(exc.stderr).strip() or exc}").replace(url, "<repository>")
        if classify(message) == "auth":
            raise GitAuthError(message) from None
        raise CheckoutError(message) from None
    for sha in (base_sha, head_sha):
        try:
            repo.commit(sha)
        except (ValueError, git.BadName):
            raise CheckoutError(f"commit {sha[:12]} is not in the fetched refs") from None
    base_dir, head_dir = workdir / "base", workdir / "head"
    export_tree(repo, base_sha, base_dir)
    export_tree(repo, head_sha, head_dir)
    return Checkout(base_dir, head_dir)


async def fetch_pull_request(
    url: str,
    token: TokenSource | None,
    cache: Path,
    workdir: Path,
    *,
    base_ref: str,
    base_sha: str,
    head_sha: str,
    number: int,
) -> Checkout:
    """Fetch the base branch and refs/pull/N/head (forks included), export both trees under workdir.

    ``url`` is the repository's credential-free ``clone_url``; ``token`` authenticates (None: anonymous).
    """
    refspecs = [
        f"+refs/heads/{base_ref}:refs/remotes/origin/{base_ref}",
        f"+refs/pull/{number}/head:refs/remotes/origin/pr/{number}",
    ]

    async def attempt(creds: GitCredentials) -> Checkout:
        return await asyncio.to_thread(_fetch, url, creds, cache, refspecs, base_sha, head_sha, workdir)

    try:
        return await with_token(token, attempt)
    except GitAuthError as exc:
        raise CheckoutError(f"{exc} (a freshly minted installation token was refused too)") from None
