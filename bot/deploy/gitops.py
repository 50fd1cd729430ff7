"""How to commit to the deploy repository: git over HTTP(S), safe under concurrency.

Every write is "fetch, reset to the remote head, apply a pure edit, commit, push". A push rejected
because someone else pushed first is answered by doing it all again on the new head (the edit sees
the new file, so nothing is lost), after a capped, jittered backoff. Nothing is ever force-pushed:
losing a race can only cost a retry, never someone else's commit. The local clone is a disposable
cache; the remote ref moves atomically, so a failure leaves either the old or the new state there.

GitPython blocks, so each attempt runs in a worker thread; attempts on one deploy repository are
serialised in this process by an asyncio.Lock keyed by the repository URL. Git goes through
``bot.github.git``, the transport the review checkout uses too: the token travels only in an HTTP
header set through the environment of each fetch or push (never in argv or the clone's config), is
redacted from every message, and a token the host refuses is replaced by a fresh one once.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TypeVar

import git

from bot.errors import Backoff, Failure, RetriesExhausted, TransientError, retry_transient
from bot.github.git import (
    ANONYMOUS,
    NO_PROMPT,
    GitAuthError,
    GitCredentials,
    TokenSource,
    classify,
    credential_free,
    redact,
    with_token,
)

log = logging.getLogger(__name__)

Edit = Callable[[str | None], str | None]
"""Current file text (None: the file does not exist) -> new text, or None for "no change"."""

_NETWORK_TIMEOUT_S = 60.0
T = TypeVar("T")


class DeployError(Exception):
    """A deploy could not be written; the message is safe to show users (no credentials)."""

    failure = Failure.INFRASTRUCTURE  # not the PR's fault: the deploy repository or its access


@dataclass(frozen=True)
class CommitResult:
    branch: str
    sha: str  # head of the branch after the operation ("" while the repository is empty)
    changed: bool  # False: nothing to write, no commit was made
    attempts: int


class RepoLocks:
    """One asyncio.Lock per deploy repository URL (credentials stripped)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def for_url(self, url: str) -> asyncio.Lock:
        return self._locks.setdefault(redact(url), asyncio.Lock())


PROCESS_LOCKS = RepoLocks()


@dataclass
class RetryPolicy:
    """Capped exponential backoff with full jitter; conflicts and outages have separate budgets.

    Outages go through the job system's one retry helper (``bot.errors.retry_transient``) with
    ``network()``; conflicts (a push that lost a race) are redone here, since they are not failures.
    """

    conflict_attempts: int = 20
    network_attempts: int = 4
    base_s: float = 0.05
    cap_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap_s, self.base_s * 2**attempt))

    def network(self) -> Backoff:
        # Outages start further up the curve than conflicts: a host that is down stays down a while.
        return Backoff(attempts=self.network_attempts, base_s=self.base_s * 8, cap_s=self.cap_s, rng=self.rng)


class _Rejected(Exception):
    pass


class _Unreachable(TransientError):
    pass


class DeployRepoUnreachable(RetriesExhausted, DeployError):
    """The deploy repository stayed unreachable through the in-job retries."""


class DeployRepo:
    """A deploy repository reached over git smart HTTP, with a private working clone in ``workdir``."""

    def __init__(
        self,
        url: str,
        workdir: Path,
        *,
        token: TokenSource | None = None,
        branch: str = "main",
        author_name: str = "modelship[bot]",
        author_email: str = "modelship[bot]@users.noreply.github.com",
        retry: RetryPolicy | None = None,
        locks: RepoLocks = PROCESS_LOCKS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = credential_free(url)
        self.workdir = workdir
        self.branch = branch
        self._token = token
        self._author = (author_name, author_email)
        self._retry = retry or RetryPolicy()
        self._lock = locks.for_url(self.url)
        self._sleep = sleep
        self._repo: git.Repo | None = None
        self._creds: GitCredentials = ANONYMOUS

    @property
    def display_url(self) -> str:
        return redact(self.url)

    # --- public API ---------------------------------------------------------------------------

    async def commit(self, edits: Mapping[str, Edit], message: str) -> CommitResult:
        """Apply ``edits`` (path -> edit) on the default branch head and push one commit.

        No commit when no edit changes anything, so a redelivered event is a no-op.
        """
        result, attempts = await self._run(lambda url: self._commit_once(url, edits, message))
        return replace(result, attempts=attempts)

    async def open_or_update_pr_branch(self, branch: str, edits: Mapping[str, Edit], message: str) -> CommitResult:
        """Push ``edits`` to ``branch`` for a pull request against the default branch.

        A new branch starts at the default branch head. An existing one (the open PR) is updated in
        place: the default branch is merged in, preferring its side on conflicts, and the edits are
        re-applied on top, so the PR always shows exactly this change against the current base.
        The caller opens the pull request through the GitHub API if none is open for ``branch``.
        """
        if branch == self.branch:
            raise DeployError(f"refusing to use the default branch {branch!r} as a pull-request branch")
        result, attempts = await self._run(lambda url: self._branch_once(url, branch, edits, message))
        return replace(result, attempts=attempts)

    async def read(self, path: str, branch: str | None = None) -> str | None:
        """The file at the remote head of ``branch`` (default branch by default), or None."""
        ref = f"refs/remotes/origin/{branch or self.branch}"

        def read_once(fetch_url: str) -> str | None:
            self._fetch(fetch_url)
            return self._show(ref, path)

        return (await self._run(read_once))[0]

    async def preview(self, edits: Mapping[str, Edit]) -> str:
        """The unified diff ``commit(edits, ...)`` would push now, without writing anything."""

        def preview_once(fetch_url: str) -> str:
            self._fetch(fetch_url)
            ref = f"refs/remotes/origin/{self.branch}"
            chunks: list[str] = []
            for path, edit in edits.items():
                before = self._show(ref, path)
                after = edit(before)
                if after is None or after == before:
                    continue
                chunks += difflib.unified_diff(
                    (before or "").splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=f"a/{path}" if before is not None else "/dev/null",
                    tofile=f"b/{path}",
                )
            return "".join(chunks)

        return (await self._run(preview_once))[0]

    # --- retry loop (event loop side) ----------------------------------------------------------

    async def _run(self, attempt: Callable[[str], T]) -> tuple[T, int]:
        async with self._lock:
            try:
                return await with_token(self._token, lambda creds: self._attempts(attempt, creds))
            except GitAuthError as exc:
                raise DeployError(
                    f"{self.display_url} refused our credentials, a freshly minted token too; check that the "
                    f"app is installed on the deploy repository with contents: write ({exc})"
                ) from None

    async def _attempts(self, attempt: Callable[[str], T], creds: GitCredentials) -> tuple[T, int]:
        """Run ``attempt`` until it succeeds: an outage is retried with back-off by the job system's one
        helper (``retry_transient``); a push that lost a race is redone here. A refused token (GitAuthError)
        is not retried here: it goes up to ``with_token``, which mints a new one once."""
        self._creds = creds
        tries = conflicts = 0

        async def once() -> T:
            nonlocal tries
            tries += 1
            return await self._in_thread(attempt, self.url)

        while True:
            try:
                value = await retry_transient(
                    once,
                    what=f"deploy repository {self.display_url} is unreachable",
                    policy=self._retry.network(),
                    sleep=self._sleep,
                )
                return value, tries
            except RetriesExhausted as exc:
                raise DeployRepoUnreachable(exc.what, exc.attempts, exc.last) from None
            except _Rejected:
                conflicts += 1
                if conflicts >= self._retry.conflict_attempts:
                    raise DeployError(
                        f"gave up after {conflicts} attempts: {self.display_url} kept moving under us "
                        f"(concurrent pushes); try again"
                    ) from None
                delay = self._retry.delay(conflicts)
            log.info("deploy repo %s: retrying in %.2fs", self.display_url, delay)
            await self._sleep(delay)

    async def _in_thread(self, attempt: Callable[[str], T], fetch_url: str) -> T:
        work = asyncio.ensure_future(asyncio.to_thread(self._guarded, attempt, fetch_url))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # A thread cannot be stopped: keep holding the lock until it is done with the clone.
            await asyncio.wait([work])
            raise

    def _guarded(self, attempt: Callable[[str], T], fetch_url: str) -> T:
        """Run one attempt; any failure leaves the clone matching the last fetched remote state."""
        try:
            return attempt(fetch_url)
        except BaseException:
            self._discard_local_changes()
            raise

    # --- one attempt (worker thread side) ------------------------------------------------------

    def _commit_once(self, fetch_url: str, edits: Mapping[str, Edit], message: str) -> CommitResult:
        self._fetch(fetch_url)
        self._checkout(self.branch, f"refs/remotes/origin/{self.branch}")
        if not self._apply(edits):
            return CommitResult(self.branch, self._head(), changed=False, attempts=1)
        self._git("commit", "-q", "--no-verify", "-m", message)
        sha = self._head()
        self._push(fetch_url, self.branch)
        return CommitResult(self.branch, sha, changed=True, attempts=1)

    def _branch_once(self, fetch_url: str, branch: str, edits: Mapping[str, Edit], message: str) -> CommitResult:
        self._fetch(fetch_url)
        base = f"refs/remotes/origin/{self.branch}"
        remote_branch = f"refs/remotes/origin/{branch}"
        existing = self._exists(remote_branch)
        self._checkout(branch, remote_branch if existing else base)
        if existing and self._exists(base) and not self._is_ancestor(base, "HEAD"):
            try:
                self._git("merge", "-q", "--no-edit", "-X", "theirs", base)
            except git.GitCommandError as exc:
                raise DeployError(f"cannot bring {branch} up to date with {self.branch}: {self._clean(exc)}") from None
        if self._apply(edits):
            self._git("commit", "-q", "--no-verify", "-m", message)
        sha = self._head()
        if existing and sha == self._rev(remote_branch):
            return CommitResult(branch, sha, changed=False, attempts=1)
        self._push(fetch_url, branch)
        return CommitResult(branch, sha, changed=True, attempts=1)

    def _apply(self, edits: Mapping[str, Edit]) -> list[str]:
        changed: list[str] = []
        root = self.workdir.resolve()
        git_dir = Path(self.repo.git_dir).resolve()
        for path, edit in edits.items():
            target = self._writable(root, git_dir, path)
            before = target.read_text() if target.is_file() else None
            after = edit(before)
            if after is None or after == before:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(after)
            changed.append(path)
        if changed:
            self._git("add", "--", *changed)
        return changed

    @staticmethod
    def _writable(root: Path, git_dir: Path, path: str) -> Path:
        """Where ``path`` really lands in the clone, refused when that is not a plain file of the work tree.

        The config validation already keeps deploy.path_template under the deploy root and away from
        .git and .github; this is the last line, and it looks at the path after the clone's symlinks
        are followed (a deploy repository may commit ``environments/x -> ../.git/hooks``).
        """
        target = (root / path).resolve()
        if root not in target.parents:
            raise DeployError(f"refusing to write {path!r}: it resolves outside the deploy repository's work tree")
        if target == git_dir or git_dir in target.parents:
            raise DeployError(f"refusing to write {path!r}: it resolves into the clone's .git directory")
        parts = [*PurePosixPath(path).parts, *target.relative_to(root).parts]
        if any(part.lower() in (".git", ".github") for part in parts):
            raise DeployError(f"refusing to write {path!r}: a deploy never writes inside .git or .github")
        return target

    # --- git plumbing ---------------------------------------------------------------------------

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self.workdir.mkdir(parents=True, exist_ok=True)
            if (self.workdir / ".git").exists():
                repo = git.Repo(self.workdir)
            else:
                repo = git.Repo.init(self.workdir, initial_branch=self.branch)
            with repo.config_writer() as config:
                config.set_value("user", "name", self._author[0])
                config.set_value("user", "email", self._author[1])
                config.set_value("credential", "helper", "")  # never store the token anywhere
                config.set_value("gc", "auto", "0")  # no surprise pauses inside a deploy
            repo.git.update_environment(**NO_PROMPT)
            self._repo = repo
        return self._repo

    def _git(self, *args: str, network: bool = False, strip: bool = True) -> str:
        try:
            out: str = self.repo.git.execute(
                ["git", *args],
                kill_after_timeout=_NETWORK_TIMEOUT_S if network else None,
                env=self._creds.env if network else None,
                strip_newline_in_stdout=strip,
            )
            return out
        except git.GitCommandError as exc:
            if not network:
                raise
            stderr = self._clean(exc)
            match classify(stderr):
                case "rejected":
                    raise _Rejected(stderr) from None
                case "unreachable":
                    raise _Unreachable(stderr) from None
                case "auth":
                    raise GitAuthError(stderr) from None
                case _:
                    raise DeployError(f"git {args[0]} to {self.display_url} failed: {stderr}") from None

    def _clean(self, exc: git.GitCommandError) -> str:
        raw = str(exc.stderr or exc).strip()
        if exc.status is not None and not raw:
            raw = f"exit {exc.status}"
        lines = [ln.strip() for ln in raw.splitlines() if ln.strip() and not ln.startswith("hint:")]
        return self._creds.redact(" | ".join(lines)[:500]).removeprefix("stderr: ").strip("'")

    def _fetch(self, fetch_url: str) -> None:
        refspec = "+refs/heads/*:refs/remotes/origin/*"
        self._git("fetch", "-q", "--prune", "--no-tags", fetch_url, refspec, network=True)

    def _push(self, fetch_url: str, branch: str) -> None:
        # Explicitly not --force: a push must fast-forward or fail and be redone on the new head.
        self._git("push", "-q", fetch_url, f"HEAD:refs/heads/{branch}", network=True)

    def _checkout(self, branch: str, start: str) -> None:
        self._git("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        if self._exists(start):
            self._git("reset", "-q", "--hard", start)
        else:  # an empty deploy repository: the first commit becomes the root
            self._git("update-ref", "-d", f"refs/heads/{branch}")
            self._git("read-tree", "--empty")
        self._git("clean", "-qfdx")

    def _discard_local_changes(self) -> None:
        """Back to the last fetched remote state: unpushed commits and edits are dropped."""
        try:
            branch = self._git("symbolic-ref", "--short", "HEAD").strip()
            remote = f"refs/remotes/origin/{branch}"
            if self._exists(remote):
                self._git("reset", "-q", "--hard", remote)
            elif self._exists("HEAD"):
                self._git("update-ref", "-d", f"refs/heads/{branch}")
                self._git("read-tree", "--empty")
            self._git("clean", "-qfdx")
        except git.GitCommandError:
            log.warning("could not clean the working clone %s", self.workdir)

    def _exists(self, ref: str) -> bool:
        try:
            self._git("rev-parse", "-q", "--verify", f"{ref}^{{commit}}")
            return True
        except git.GitCommandError:
            return False

    def _rev(self, ref: str) -> str:
        return self._git("rev-parse", ref).strip()

    def _head(self) -> str:
        return self._rev("HEAD") if self._exists("HEAD") else ""

    def _is_ancestor(self, ancestor: str, descendant: str) -> bool:
        try:
            self._git("merge-base", "--is-ancestor", ancestor, descendant)
            return True
        except git.GitCommandError:
            return False

    def _show(self, ref: str, path: str) -> str | None:
        if not self._exists(ref):
            return None
        try:
            return self._git("show", f"{ref}:{path}", strip=False)
        except git.GitCommandError:
            return None
