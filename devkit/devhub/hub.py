"""DevHub: the simulator's state and its scripted actions (what a user does on github.com).

Each action changes the state, writes real git objects, and sends the webhook GitHub would send,
validated against GitHub's webhook schemas. The HTTP face lives in `devkit.devhub.app`.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devkit.devhub import render
from devkit.devhub.auth import TOKEN_LIFETIME, generate_key, new_token
from devkit.devhub.contract import Contract, shared_contract
from devkit.devhub.faults import Fault, Faults
from devkit.devhub.githttp import RefUpdate
from devkit.devhub.gitstore import ZERO_SHA, GitStore, Identity
from devkit.devhub.http import RateLimits
from devkit.devhub.model import (
    PERMISSIONS,
    Account,
    App,
    CheckRun,
    Comment,
    Deployment,
    Installation,
    OAuthCode,
    Pull,
    Reaction,
    Repo,
    Review,
    Status,
    Token,
    iso,
    next_id,
)
from devkit.devhub.webhooks import Delivery, WebhookSender

Files = Mapping[str, bytes | str | None]


class DevHubError(ValueError):
    """A scripted action that GitHub would refuse; the message says what to fix."""


def _bytes(files: Files) -> dict[str, bytes | None]:
    return {path: data.encode() if isinstance(data, str) else data for path, data in files.items()}


class DevHub:
    def __init__(
        self,
        data_dir: Path,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        base_url: str = "http://devhub.invalid",
        contract: Contract | None = None,
        keygen: Callable[[], tuple[bytes, bytes]] = generate_key,
        git_prefix: str = "",
    ) -> None:
        if git_prefix and (not git_prefix.startswith("/") or git_prefix.endswith("/")):
            raise ValueError(f"git_prefix must start with '/' and not end with one: {git_prefix!r}")
        self.data_dir = data_dir
        # Where git is served under the host root ("" = /owner/repo.git like github.com); another
        # prefix is a git host that is not where the API's URL suggests, as on some GHES or proxies.
        self.git_prefix = git_prefix
        self.git = GitStore(data_dir / "repos")
        self.contract = contract or shared_contract()
        self.keygen = keygen
        self.base_url = base_url
        self.hook_id = next_id()
        self.sender = WebhookSender(webhook_url, webhook_secret, self.hook_id)
        self.faults = Faults()
        self.rate_limits = RateLimits()
        self.contract_violations: list[str] = []
        self.users: dict[str, Account] = {}
        self.apps: dict[int, App] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.repos: dict[str, Repo] = {}
        self.pulls: dict[str, dict[int, Pull]] = {}
        self.comments: dict[int, Comment] = {}
        self.reviews: list[Review] = []
        self.check_runs: dict[int, CheckRun] = {}
        self.statuses: list[Status] = []
        self.deployments: dict[int, Deployment] = {}
        self.teams: dict[tuple[str, str], dict[str, str]] = {}
        self.oauth_codes: dict[str, OAuthCode] = {}
        self.user_tokens: dict[str, tuple[str, float]] = {}  # token -> (login, expires at)
        self._numbers: dict[str, int] = {}
        self._lock = asyncio.Lock()

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def urls(self) -> render.Urls:
        return render.Urls(api=self.base_url, web=self.base_url, git=self.base_url + self.git_prefix)

    @property
    def deliveries(self) -> list[Delivery]:
        return self.sender.deliveries

    def account(self, login: str, type: str = "User") -> Account:
        if login not in self.users:
            self.users[login] = Account(login, next_id(), type)
        return self.users[login]

    def repo(self, full_name: str) -> Repo:
        try:
            return self.repos[full_name]
        except KeyError:
            raise DevHubError(f"repository {full_name!r} does not exist; create it with create_repo") from None

    def pull(self, full_name: str, number: int) -> Pull:
        try:
            return self.pulls[full_name][number]
        except KeyError:
            raise DevHubError(f"pull request {full_name}#{number} does not exist") from None

    def bot_account(self, app: App) -> Account:
        return self.account(f"{app.slug}[bot]", "Bot")

    def installation_for(self, full_name: str) -> Installation | None:
        return next((i for i in self.installations.values() if full_name in i.repos), None)

    def identity(self, login: str) -> Identity:
        return Identity(login, f"{login}@users.noreply.devhub", int(time.time()))

    async def _off_loop(self, fn: Any, *args: Any) -> Any:
        # git runs as blocking subprocesses; keep the loop free to serve the requests they may race.
        return await asyncio.to_thread(fn, *args)

    def reset(self) -> None:
        """Forget all state (fast per-test isolation for a session-wide server)."""
        for attr in (
            "users",
            "apps",
            "installations",
            "tokens",
            "repos",
            "pulls",
            "comments",
            "check_runs",
            "deployments",
            "teams",
            "oauth_codes",
            "user_tokens",
            "_numbers",
        ):
            getattr(self, attr).clear()
        self.reviews.clear()
        self.statuses.clear()
        self.sender.deliveries.clear()
        self.faults.clear()
        self.rate_limits.windows.clear()
        self.contract_violations.clear()
        shutil.rmtree(self.git.root, ignore_errors=True)

    def add_fault(self, fault: Fault) -> Fault:
        return self.faults.add(fault)

    def violation(self, problems: list[str]) -> None:
        self.contract_violations.extend(problems)

    # -- webhooks -----------------------------------------------------------------------------
    async def emit(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        repo: str | None = None,
        installation: Installation | None = None,
        name: str | None = None,
    ) -> Delivery | None:
        """Send `event` to the app installed on repo (GitHub sends nothing when no app is installed)."""
        installation = installation or (self.installation_for(repo) if repo else None)
        if installation is None:
            return None
        app = self.apps[installation.app_id]
        # installation events carry the full installation object; every other event a short reference.
        payload = {
            "installation": {"id": installation.id, "node_id": render.node_id("I", installation.id)},
            **payload,
        }
        schema = name or (
            f"{event.replace('_', '-')}-{payload['action'].replace('_', '-')}" if "action" in payload else event
        )
        self.violation(self.contract.check_webhook(schema, payload))
        return await self.sender.send(self.sender.build(event, payload, "integration", app.id))

    async def redeliver(self, guid: str) -> Delivery:
        return await self.sender.redeliver(guid)

    async def ping(self, app_id: int | None = None) -> Delivery:
        app = self.apps[app_id] if app_id else next(iter(self.apps.values()))
        now = iso(time.time())
        hook = {
            "type": "App",
            "id": self.hook_id,
            "name": "web",
            "active": True,
            "events": render.APP_EVENTS,
            "config": {"content_type": "json", "insecure_ssl": "0", "url": self.sender.url or ""},
            "updated_at": now,
            "created_at": now,
            "app_id": app.id,
            "deliveries_url": f"{self.base_url}/app/hook/deliveries",
        }
        payload = {"zen": "Keep it logically awesome.", "hook_id": self.hook_id, "hook": hook}
        self.violation(self.contract.check_webhook("ping", payload))
        return await self.sender.send(self.sender.build("ping", payload, "integration", app.id))

    def _common(self, full_name: str, sender: Account) -> dict[str, Any]:
        return {
            "repository": render.repo(self.repo(full_name), self.urls, open_issues=self.open_count(full_name)),
            "sender": render.user(sender, self.urls),
        }

    def open_count(self, full_name: str) -> int:
        return sum(p.state == "open" for p in self.pulls.get(full_name, {}).values())

    # -- apps and installations --------------------------------------------------------------
    async def create_app(self, slug: str = "modelship", owner: str = "modelship-org") -> tuple[int, str]:
        """Register a GitHub App; returns (app id, private key PEM) as GitHub's app settings page does."""
        private, public = await asyncio.to_thread(self.keygen)
        app = App(
            next_id(),
            slug,
            slug.replace("-", " ").title(),
            self.account(owner, "Organization"),
            public,
            f"Iv1.{next_id():012x}",
        )
        self.apps[app.id] = app
        self.bot_account(app)
        return app.id, private.decode()

    async def install(self, account: str, repos: list[str], app_id: int | None = None) -> int:
        """Install the app on repos of account; a second call adds repos (installation_repositories)."""
        app = self.apps[app_id] if app_id else next(iter(self.apps.values()), None)
        if app is None:
            raise DevHubError("no app registered; call create_app first")
        for full_name in repos:
            self.repo(full_name)
        owner = self.account(account, self.users[account].type if account in self.users else "Organization")
        existing = next(
            (i for i in self.installations.values() if i.app_id == app.id and i.account.login == account),
            None,
        )
        sender = self.account(account) if owner.type == "User" else self.account("alice")
        brief = [self._brief(name) for name in repos]
        if existing is None:
            installation = Installation(next_id(), app.id, owner, set(repos))
            self.installations[installation.id] = installation
            await self.emit(
                "installation",
                {
                    "action": "created",
                    "installation": render.installation(installation, app, self.urls),
                    "repositories": brief,
                    "requester": None,
                    "sender": render.user(sender, self.urls),
                },
                installation=installation,
            )
            return installation.id
        added = [b for b in brief if b["full_name"] not in existing.repos]
        existing.repos |= set(repos)
        if added:
            await self.emit(
                "installation_repositories",
                {
                    "action": "added",
                    "installation": render.installation(existing, app, self.urls),
                    "repository_selection": "selected",
                    "repositories_added": added,
                    "repositories_removed": [],
                    "requester": None,
                    "sender": render.user(sender, self.urls),
                },
                installation=existing,
            )
        return existing.id

    def _brief(self, full_name: str) -> dict[str, Any]:
        r = self.repo(full_name)
        return {
            "id": r.id,
            "node_id": render.node_id("R", r.id),
            "name": r.name,
            "full_name": r.full_name,
            "private": r.private,
        }

    def issue_token(self, installation_id: int) -> Token:
        token = Token(new_token(), installation_id, time.time() + TOKEN_LIFETIME)
        self.tokens[token.value] = token
        return token

    def revoke_token(self, value: str) -> bool:
        """Revoke one installation token (as ``DELETE /installation/token`` or an expiry would)."""
        return self.tokens.pop(value, None) is not None

    def token_installation(self, value: str | None) -> Installation | None:
        token = self.tokens.get(value or "")
        if token is None or token.expires_at <= time.time():
            return None
        return self.installations.get(token.installation_id)

    # -- repositories and pushes ---------------------------------------------------------------
    async def create_repo(
        self,
        full_name: str,
        files: Files | None = None,
        default_branch: str = "main",
        private: bool = False,
        author: str = "alice",
    ) -> Repo:
        if full_name in self.repos:
            raise DevHubError(f"repository {full_name!r} already exists")
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise DevHubError(f"repository name {full_name!r} must look like owner/name")
        repo = Repo(
            next_id(),
            self.account(owner, self.users[owner].type if owner in self.users else "User"),
            name,
            default_branch,
            private,
        )
        await self._off_loop(self.git.init, full_name, default_branch)
        self.repos[full_name] = repo
        self.pulls[full_name] = {}
        self._numbers[full_name] = 0
        if files:
            await self._off_loop(
                self.git.commit,
                full_name,
                default_branch,
                _bytes(files),
                "Initial commit",
                self.identity(author),
                None,
            )
        return repo

    async def fork(self, full_name: str, owner: str) -> Repo:
        """Fork into owner/<name>, sharing history (so a fork PR's head is fetchable from the base)."""
        base = self.repo(full_name)
        fork = await self.create_repo(f"{owner}/{base.name}", None, base.default_branch, base.private)
        await self._off_loop(self._copy_refs, full_name, fork.full_name)
        return fork

    def _copy_refs(self, source: str, target: str) -> None:
        self.git.fetch(target, source, "+refs/heads/*:refs/heads/*")

    async def push(
        self,
        full_name: str,
        branch: str,
        files: Files,
        message: str = "Update files",
        author: str = "alice",
        base: str | None = None,
    ) -> str:
        """Commit files (None deletes) on branch, creating it from base (default branch) if new."""
        repo = self.repo(full_name)
        before = await self._off_loop(self.git.resolve, full_name, f"refs/heads/{branch}")
        start = f"refs/heads/{base or repo.default_branch}"
        parent = before or await self._off_loop(self.git.resolve, full_name, start)
        if parent is None and (base or before):
            raise DevHubError(f"branch {base!r} does not exist in {full_name}")
        sha: str = await self._off_loop(
            self.git.commit, full_name, branch, _bytes(files), message, self.identity(author), parent
        )
        await self.pushed(full_name, [RefUpdate(f"refs/heads/{branch}", before or ZERO_SHA, sha)], self.account(author))
        return sha

    async def pushed(self, full_name: str, updates: list[RefUpdate], pusher: Account) -> None:
        """Tell the world refs moved (scripted push, git push over HTTP, or the refs API)."""
        repo = self.repo(full_name)
        repo.pushed_at = time.time()
        for update in updates:
            await self._push_event(full_name, update, pusher)
            if not update.ref.startswith("refs/heads/") or update.after == ZERO_SHA:
                continue
            branch = update.ref.removeprefix("refs/heads/")
            for other_name, pulls in self.pulls.items():
                for p in pulls.values():
                    if p.state == "open" and p.head_repo == full_name and p.head_ref == branch:
                        await self._synchronize(other_name, p, update.after, pusher)
                    elif p.state == "open" and other_name == full_name and p.base_ref == branch:
                        p.base_sha, p.mergeable_computed = update.after, False

    async def _push_event(self, full_name: str, update: RefUpdate, pusher: Account) -> None:
        repo = self.repo(full_name)
        commits = []
        if update.after != ZERO_SHA:
            commits = await self._off_loop(self.git.log, full_name, update.before, update.after)

        def commit_json(c: Any) -> dict[str, Any]:
            person = {"name": c.author_name, "email": c.author_email, "username": c.author_name}
            return {
                "id": c.sha,
                "tree_id": c.tree,
                "distinct": True,
                "message": c.message,
                "timestamp": iso(c.timestamp).replace("Z", "+00:00"),
                "url": f"{self.base_url}/{full_name}/commit/{c.sha}",
                "author": person,
                "committer": person,
                "added": c.added,
                "removed": c.removed,
                "modified": c.modified,
            }

        repository = render.repo(repo, self.urls, open_issues=self.open_count(full_name))
        # Push payloads carry timestamps as integers and the owner with name/email, unlike other events.
        repository |= {
            "created_at": int(repo.created_at),
            "pushed_at": int(repo.pushed_at),
            "stargazers": 0,
            "master_branch": repo.default_branch,
        }
        repository["owner"] |= {"name": repo.owner.login, "email": None}
        payload = {
            "ref": update.ref,
            "before": update.before,
            "after": update.after,
            "repository": repository,
            "pusher": {"name": pusher.login, "email": f"{pusher.login}@users.noreply.devhub"},
            "sender": render.user(pusher, self.urls),
            "created": update.before == ZERO_SHA,
            "deleted": update.after == ZERO_SHA,
            "forced": False,
            "base_ref": None,
            "compare": f"{self.base_url}/{full_name}/compare/{update.before[:12]}...{update.after[:12]}",
            "commits": [commit_json(c) for c in commits],
            "head_commit": commit_json(commits[-1]) if commits else None,
        }
        await self.emit("push", payload, repo=full_name)

    # -- pull requests ------------------------------------------------------------------------
    async def pull_json(self, full_name: str, p: Pull, *, read: bool = False) -> dict[str, Any]:
        """The pull request as GitHub renders it; `read=True` is a REST GET, which starts (and on the
        next read reveals) the mergeability computation, so clients see `mergeable: null` first."""
        base = self.repo(full_name)
        head = self.repos.get(p.head_repo, base)
        stats, mergeable = await self._off_loop(self._pull_stats, full_name, p)
        if not p.mergeable_computed:
            mergeable = None
            p.mergeable_computed = read
        comments = sum(c.repo == full_name and c.issue_number == p.number for c in self.comments.values())
        return render.pull(p, base, head, self.urls, stats=stats, mergeable=mergeable, comments=comments)

    def _pull_stats(self, full_name: str, p: Pull) -> tuple[tuple[int, int, int, int], bool | None]:
        files = self.git.diff(full_name, p.base_sha, p.head_sha)
        commits = self.git.count_commits(full_name, p.base_sha, p.head_sha)
        mergeable = None if p.merged else self.git.mergeable(full_name, p.base_sha, p.head_sha)
        return (
            commits,
            sum(f.additions for f in files),
            sum(f.deletions for f in files),
            len(files),
        ), mergeable

    async def open_pr(
        self,
        full_name: str,
        head: str,
        base: str | None = None,
        title: str = "Update model",
        user: str = "alice",
        body: str | None = None,
        from_fork: bool = False,
        draft: bool = False,
    ) -> int:
        """Open a PR from head (a branch; from_fork=True takes it from user's fork) into base."""
        repo = self.repo(full_name)
        base = base or repo.default_branch
        head_repo = f"{user}/{repo.name}" if from_fork else full_name
        self.repo(head_repo)
        head_sha = await self._off_loop(self.git.resolve, head_repo, f"refs/heads/{head}")
        base_sha = await self._off_loop(self.git.resolve, full_name, f"refs/heads/{base}")
        if head_sha is None or base_sha is None:
            raise DevHubError(f"branch {head if head_sha is None else base!r} does not exist")
        async with self._lock:
            self._numbers[full_name] += 1
            number = self._numbers[full_name]
        p = Pull(
            next_id(),
            number,
            title,
            body,
            self.account(user),
            head_repo,
            head,
            head_sha,
            base,
            base_sha,
            draft,
        )
        await self._off_loop(self._fetch_head, full_name, p)
        self.pulls[full_name][number] = p
        await self._pull_event(full_name, p, "opened", self.account(user))
        return number

    def _fetch_head(self, full_name: str, p: Pull) -> None:
        # GitHub keeps every PR head (forks included) at refs/pull/N/head in the base repository.
        if p.head_repo != full_name:
            self.git.fetch(full_name, p.head_repo, p.head_sha)
        self.git.update_ref(full_name, f"refs/pull/{p.number}/head", p.head_sha)

    async def _pull_event(
        self, full_name: str, p: Pull, action: str, sender: Account, extra: dict[str, Any] | None = None
    ) -> None:
        payload = {
            "action": action,
            "number": p.number,
            **(extra or {}),
            "pull_request": await self.pull_json(full_name, p),
            **self._common(full_name, sender),
        }
        await self.emit("pull_request", payload, repo=full_name)

    async def _synchronize(self, full_name: str, p: Pull, after: str, pusher: Account) -> None:
        before, p.head_sha, p.updated_at = p.head_sha, after, time.time()
        p.mergeable_computed = False
        await self._off_loop(self._fetch_head, full_name, p)
        await self._pull_event(full_name, p, "synchronize", pusher, {"before": before, "after": after})

    async def merge_pr(
        self,
        full_name: str,
        number: int,
        user: str = "alice",
        method: str = "merge",
        title: str | None = None,
        message: str | None = None,
    ) -> str:
        p = self.pull(full_name, number)
        if p.state != "open":
            raise DevHubError(f"pull request {full_name}#{number} is {p.state}, not open")
        who = self.identity(user)
        title = title or (
            f"Merge pull request #{number} from {self.repo(p.head_repo).owner.login}/{p.head_ref}"
            if method == "merge"
            else f"{p.title} (#{number})"
        )
        before = await self._off_loop(self.git.resolve, full_name, f"refs/heads/{p.base_ref}")
        full_message = f"{title}\n\n{message or p.title}"
        if method not in ("merge", "squash"):
            raise DevHubError(f"merge method {method!r} is not supported by devhub; use merge or squash")
        squash = method == "squash"
        sha = await self._off_loop(self.git.merge, full_name, p.base_ref, p.head_sha, full_message, who, squash)
        now = time.time()
        p.state, p.merged, p.merge_commit_sha, p.merged_by = "closed", True, sha, self.account(user)
        p.closed_at = p.merged_at = p.updated_at = now
        await self._pull_event(full_name, p, "closed", self.account(user))
        await self.pushed(full_name, [RefUpdate(f"refs/heads/{p.base_ref}", before, sha)], self.account(user))
        return sha

    async def edit_pr(
        self, full_name: str, number: int, user: str, *, title: str | None = None, body: str | None = None
    ) -> None:
        """Change a PR's title and body; `pull_request.edited` lists what changed (nothing changed: no event)."""
        p = self.pull(full_name, number)
        changes: dict[str, Any] = {}
        if title is not None and title != p.title:
            changes["title"], p.title = {"from": p.title}, title
        if body is not None and body != (p.body or ""):
            changes["body"], p.body = {"from": p.body or ""}, body
        if changes:
            p.updated_at = time.time()
            await self._pull_event(full_name, p, "edited", self.account(user), {"changes": changes})

    async def close_pr(self, full_name: str, number: int, user: str = "alice") -> None:
        p = self.pull(full_name, number)
        p.state, p.closed_at, p.updated_at = "closed", time.time(), time.time()
        await self._pull_event(full_name, p, "closed", self.account(user))

    async def review(self, full_name: str, number: int, user: str, state: str = "APPROVED", body: str = "") -> int:
        """Submit a review (APPROVED, CHANGES_REQUESTED or COMMENTED) on the PR's current head."""
        p = self.pull(full_name, number)
        review = Review(next_id(), full_name, number, self.account(user), state, body, p.head_sha)
        self.reviews.append(review)
        review_json = render.review(review, self.repo(full_name), self.urls)
        review_json["state"] = state.lower()
        payload = {
            "action": "submitted",
            "review": review_json,
            "pull_request": await self.pull_json(full_name, p),
            **self._common(full_name, review.user),
        }
        await self.emit("pull_request_review", payload, repo=full_name)
        return review.id

    async def approve(self, full_name: str, number: int, user: str) -> int:
        return await self.review(full_name, number, user, "APPROVED")

    # -- comments -----------------------------------------------------------------------------
    def find_comment(self, comment_id: int) -> Comment:
        try:
            return self.comments[comment_id]
        except KeyError:
            raise DevHubError(f"comment {comment_id} does not exist") from None

    async def comment(self, full_name: str, number: int, body: str, user: str = "alice") -> int:
        self.pull(full_name, number)
        c = Comment(next_id(), full_name, number, self.account(user), body)
        self.comments[c.id] = c
        await self.comment_event(c, "created", c.user)
        return c.id

    async def edit_comment(self, comment_id: int, body: str, user: str | None = None) -> None:
        c = self.find_comment(comment_id)
        old, c.body, c.updated_at = c.body, body, time.time()
        await self.comment_event(
            c, "edited", self.account(user) if user else c.user, {"changes": {"body": {"from": old}}}
        )

    async def delete_comment(self, comment_id: int, user: str | None = None) -> None:
        c = self.comments.pop(comment_id)
        await self.comment_event(c, "deleted", self.account(user) if user else c.user)

    async def comment_event(
        self, c: Comment, action: str, sender: Account, extra: dict[str, Any] | None = None
    ) -> None:
        p = self.pull(c.repo, c.issue_number)
        count = sum(o.repo == c.repo and o.issue_number == c.issue_number for o in self.comments.values())
        payload = {
            "action": action,
            **(extra or {}),
            "issue": render.issue_for_pull(p, self.repo(c.repo), self.urls, comments=count),
            "comment": render.comment(c, self.repo(c.repo), self.urls),
            **self._common(c.repo, sender),
        }
        await self.emit("issue_comment", payload, repo=c.repo)

    def react(self, comment_id: int, user: Account, content: str) -> tuple[Reaction, bool]:
        """Add a reaction unless this user already left the same one; returns (reaction, created)."""
        c = self.find_comment(comment_id)
        for r in c.reactions:
            if r.user.login == user.login and r.content == content:
                return r, False
        reaction = Reaction(next_id(), user, content)
        c.reactions.append(reaction)
        return reaction, True

    # -- sign-in with GitHub (the App's user-authorization web flow) ----------------------------
    def oauth_client(self, app_id: int) -> tuple[str, str]:
        """(client id, client secret) of an App, as its settings page shows them."""
        app = self.apps[app_id]
        return app.client_id, app.client_secret

    def app_by_client_id(self, client_id: str) -> App | None:
        return next((a for a in self.apps.values() if a.client_id == client_id), None)

    def grant_code(self, app: App, login: str, redirect_uri: str) -> str:
        self.account(login)
        code = secrets.token_hex(10)
        self.oauth_codes[code] = OAuthCode(app.id, login, redirect_uri, time.time() + 600)
        return code

    def exchange_code(self, client_id: str, client_secret: str, code: str, redirect_uri: str | None) -> str | None:
        """A user access token for a valid, unused code of this client, else None (GitHub: bad_verification_code)."""
        app = self.app_by_client_id(client_id)
        grant = self.oauth_codes.pop(code, None)
        if app is None or app.client_secret != client_secret or grant is None or grant.app_id != app.id:
            return None
        if grant.expires_at < time.time() or (redirect_uri and redirect_uri != grant.redirect_uri):
            return None
        token = "ghu_" + secrets.token_urlsafe(27)[:36]
        self.user_tokens[token] = (grant.login, time.time() + 8 * 3600)
        return token

    def token_user(self, token: str | None) -> Account | None:
        found = self.user_tokens.get(token or "")
        if found is None or found[1] < time.time():
            return None
        return self.users.get(found[0])

    def orgs_of(self, login: str) -> list[Account]:
        """The organizations a user belongs to: owners of repositories they own, and orgs of their teams."""
        names = sorted({org for (org, _), members in self.teams.items() if login in members})
        return [self.account(n, "Organization") for n in names]

    def repos_of(self, login: str) -> list[tuple[Repo, str]]:
        """(repository, role) for every repository the user owns or collaborates on (GET /user/repos)."""
        found = []
        for r in self.repos.values():
            if r.owner.login == login or login in r.collaborators:
                role = self.permission_of(r.full_name, login)
                if role != "none":
                    found.append((r, role))
        return found

    # -- people -------------------------------------------------------------------------------
    def set_permission(self, full_name: str, user: str, permission: str) -> None:
        if permission not in PERMISSIONS:
            raise DevHubError(f"permission {permission!r} must be one of {', '.join(PERMISSIONS)}")
        self.account(user)
        self.repo(full_name).collaborators[user] = permission

    def add_team_member(self, org: str, team: str, user: str, role: str = "member") -> None:
        if role not in ("member", "maintainer"):
            raise DevHubError(f"team role {role!r} must be member or maintainer")
        self.account(org, "Organization")
        self.account(user)
        self.teams.setdefault((org, team), {})[user] = role

    def permission_of(self, full_name: str, user: str) -> str:
        repo = self.repo(full_name)
        if user == repo.owner.login:
            return "admin"
        return repo.collaborators.get(user, "none" if repo.private else "read")
