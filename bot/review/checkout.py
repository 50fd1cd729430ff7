"""Fetch a PR's base and head trees from the model repository over git (HTTP, installation token).

Git goes to the repository's ``clone_url`` through ``bot.github.git``: the token only in a header
from the environment, renewed once when git refuses it.

The bot never interprets these files: model and data bytes are only handed to the sandbox, mounted
read-only. The policy (`.modelship.yml`) and the changed paths come from the API, at the base commit.
"""

from __future__ import annotations

import asyncio
import subprocess
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import git

from bot.errors import Backoff, Failure, git_failure, retry_transient
from bot.github.git import GitAuthError, GitCredentials, TokenSource, classify, with_token
from contract import lfs

CONFIG_FILE = ".modelship.yml"
MiB = 1024 * 1024
# `git archive` runs the filters the archived tree's .gitattributes name: with git-lfs installed in the
# user's config, its smudge would download LFS objects uncapped, with whatever credentials it finds.
# The export takes git's bytes as they are (pointers included); ``resolve_lfs`` fetches the objects.
NO_LFS_FILTER = ("-c", "filter.lfs.process=", "-c", "filter.lfs.smudge=", "-c", "filter.lfs.required=false")
# The bot's own cache turns every attribute-driven conversion off (info/attributes wins over the tree's):
# the sandbox gets the committed bytes, which are the bytes the bot hashes.
RAW_ATTRIBUTES = "* -filter -text -eol -ident -export-subst -export-ignore -working-tree-encoding\n"


class CheckoutError(Exception):
    """The repository could not be fetched; the message carries no credentials.

    ``failure`` says whether another attempt may work (a 5xx, a reset connection) or not.
    """

    def __init__(self, message: str, failure: Failure = Failure.INFRASTRUCTURE) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class Checkout:
    base_dir: Path
    head_dir: Path


@dataclass(frozen=True)
class ExportLimits:
    """Operator caps on one exported tree (settings): checked per tar member, before its bytes land."""

    max_bytes: int = 1024 * MiB
    max_files: int = 20_000


class TreeRefused(CheckoutError):
    """The PR's tree cannot be exported safely (a link out of it, over a cap): a review error, not a retry."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, Failure.INPUT)  # the PR must change: a failed check, never retried
        self.hint = hint  # what the PR's author can do about it (None: the review comment's general advice)


LFS_HINT = (
    "Push the Git LFS objects of the PR's commits (`git lfs push --all origin <branch>`), then comment "
    "`/modelship evaluate`."
)


def export_tree(repo: git.Repo, sha: str, dest: Path, limits: ExportLimits | None = None) -> None:
    """Stream `git archive` of one commit into dest, refusing links out of it and anything over the caps.

    Each member is checked from its tar header before its data is written, so a 2 GiB sparse file
    (a few MB packed) is refused before it expands; nothing is staged as a whole tar on disk.
    """
    limits = limits or ExportLimits()
    dest.mkdir(parents=True, exist_ok=True)
    files = total = 0

    def capped(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        nonlocal files, total
        # Directories are not counted: git has no empty ones, so they never outnumber the files.
        files += 0 if member.isdir() else 1
        total += member.size if member.isfile() else 0
        if files > limits.max_files:
            raise TreeRefused(
                f"the tree at {sha[:12]} has more than {limits.max_files} files "
                "(MODELSHIP_SANDBOX_EXPORT_MAX_FILES); it was not exported"
            )
        if total > limits.max_bytes:
            raise TreeRefused(
                f"the tree at {sha[:12]} is larger than {limits.max_bytes} bytes "
                f"(MODELSHIP_SANDBOX_EXPORT_MAX_BYTES; `{member.name}` alone is {member.size} bytes); "
                "it was not exported"
            )
        # The "data" filter refuses absolute paths, links out of dest and device files from the PR.
        return tarfile.data_filter(member, path)

    process = subprocess.Popen(
        ["git", *NO_LFS_FILTER, "--git-dir", str(repo.git_dir), "archive", "--format=tar", sha],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            tar.extractall(dest, filter=capped)
    except tarfile.FilterError as exc:
        raise TreeRefused(f"the tree at {sha[:12]} was refused: {exc}") from None
    except tarfile.TarError as exc:
        raise CheckoutError(f"git archive of {sha[:12]} failed: {exc}") from None
    finally:
        process.kill()  # refused part-way: stop git writing the rest
        _, stderr = process.communicate()
    if process.returncode not in (0, -9):
        raise CheckoutError(f"git archive of {sha[:12]} failed: {stderr.decode(errors='replace').strip()[:300]}")


def resolve_lfs(tree: Path, objects: lfs.Objects, sha: str, limits: ExportLimits | None = None) -> list[str]:
    """Replace the Git LFS pointers of an exported tree by their objects (verified against their oids).

    A pointer is never handed to the sandbox, hashed or shipped as if it were the file: an object that
    cannot be had fails the review naming its path (retried first when the failure may pass). The caps
    apply to the resolved sizes, read from the pointers before anything is downloaded.
    """
    limits = limits or ExportLimits()
    try:
        return lfs.resolve_tree(tree, objects, max_bytes=limits.max_bytes)
    except lfs.LfsError as exc:
        if str(exc).startswith("the tree is"):
            raise TreeRefused(
                f"{exc} at {sha[:12]} (MODELSHIP_SANDBOX_EXPORT_MAX_BYTES); it was not exported"
            ) from None
        if exc.transient:  # a 5xx or a reset: fetch_pull_request's back-off tries again
            raise CheckoutError(f"{exc} (at {sha[:12]})", Failure.TRANSIENT) from None
        raise TreeRefused(f"{exc} (at {sha[:12]})", LFS_HINT) from None


def _fetch(
    url: str,
    creds: GitCredentials,
    cache: Path,
    refspecs: list[str],
    base_sha: str,
    head_sha: str,
    workdir: Path,
    limits: ExportLimits | None = None,
) -> Checkout:
    repo = git.Repo(cache) if (cache / "HEAD").exists() else git.Repo.init(cache, bare=True)
    (cache / "info").mkdir(exist_ok=True)
    (cache / "info" / "attributes").write_text(RAW_ATTRIBUTES)
    try:
        repo.git.execute(["git", "fetch", "--quiet", "--no-tags", url, *refspecs], env=creds.env)
    except git.GitCommandError as exc:
        # GitPython wraps git's own words as "stderr: '...'": keep only git's.
        stderr = str(exc.stderr or "").strip().removeprefix("stderr:").strip().strip("'")
        message = creds.redact(f"git fetch failed: {stderr or exc}").replace(url, "<repository>")
        kind = classify(message)
        if kind == "auth":
            raise GitAuthError(message) from None  # with_token mints a new token once
        raise CheckoutError(message, git_failure(kind)) from None
    for sha in (base_sha, head_sha):
        try:
            repo.commit(sha)
        except (ValueError, git.BadName):
            raise CheckoutError(f"commit {sha[:12]} is not in the fetched refs") from None
    base_dir, head_dir = workdir / "base", workdir / "head"
    server = lfs.LfsServer(url, creds.authorization)
    for sha, tree in ((base_sha, base_dir), (head_sha, head_dir)):
        export_tree(repo, sha, tree, limits)
        resolve_lfs(tree, server, sha, limits)
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
    limits: ExportLimits | None = None,
    retry: Backoff | None = None,
    what: str = "git fetch",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Checkout:
    """Fetch the base branch and refs/pull/N/head (forks included), export both trees under workdir.

    ``url`` is the repository's credential-free ``clone_url``; ``token`` authenticates (None: anonymous).
    A transient git failure (5xx, reset, timeout) is retried with ``retry``'s back-off (None: not here),
    then ends in ``RetriesExhausted`` naming ``what``; a refused token is replaced once (``with_token``,
    around the retries); anything else (a 404, a refused tree) raises at once.
    """
    refspecs = [
        f"+refs/heads/{base_ref}:refs/remotes/origin/{base_ref}",
        f"+refs/pull/{number}/head:refs/remotes/origin/pr/{number}",
    ]

    async def attempt(creds: GitCredentials) -> Checkout:
        def once() -> Awaitable[Checkout]:
            return asyncio.to_thread(_fetch, url, creds, cache, refspecs, base_sha, head_sha, workdir, limits)

        if retry is None:
            return await once()
        return await retry_transient(once, what=what, policy=retry, sleep=sleep)

    try:
        return await with_token(token, attempt)
    except GitAuthError as exc:
        raise CheckoutError(f"{exc} (a freshly minted installation token was refused too)") from None
