"""A deploy-repository PR closed: record what a protected environment runs now.

Protected environments (and the guard's rollbacks without ``auto_merge``) change through a pull request
the bot opens in the deploy repository, from a branch of its own (``modelship/deploy/<env>/<model>``,
``modelship/rollback/<env>/<model>``). A person merges or closes it on GitHub; the deploy repository has
no ``.modelship.yml``, so only its ``pull_request.closed`` webhook tells us. Then:

- merged: the proposal's version becomes the environment's current deployment: a new ``deployed`` row
  (superseding the one that ran before, so the guard watches the new one from its next round), its
  GitHub Deployment turns ``success``, and the source PR's Deploy comment says so;
- closed without merging: the proposal is ``abandoned`` and its GitHub Deployment ``inactive`` (the
  environment still runs what it ran: ``failure`` would paint it red);
- a rollback PR: the guard's own incident steps record it (``Rollbacks.advance``), at once instead of at
  the watcher's next round, and also when no watcher runs (no Prometheus configured).

Only a PR that matches rows recorded for that deploy repository and PR number, on the branch the bot
named for them, opened by the bot from the deploy repository itself, is acted on; anything else is
ignored before any GitHub call. ``decide`` is pure; ``on_closed`` carries it out. Every step is
idempotent: a redelivered or retried event finds the rows moved and GitHub told, and writes nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.context import Services, need
from bot.deploy.manifest import ManifestError, pr_branch_name
from bot.deploy.render import MAX_DESCRIPTION
from bot.deploy.service import DeployService
from bot.errors import TransientError
from bot.guard import store
from bot.store import deployments
from bot.store.deployments import ABANDONED

log = logging.getLogger(__name__)

CLOSED_UNMERGED = "deploy PR closed without merge"

Row = Mapping[Any, Any]  # a deployments row (SQLAlchemy's RowMapping, or a dict in tests)


@dataclass(frozen=True)
class ClosedPull:
    """The facts of a ``pull_request.closed`` delivery that matter here."""

    repo: str  # the repository the PR belongs to (a deploy repository, if it is ours)
    number: int
    head_ref: str
    head_repo: str  # where the branch lives: a fork's branch of the same name is not the bot's
    author: str
    merged: bool
    merge_sha: str
    actor: str  # who merged or closed it
    installation_id: int

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> ClosedPull | None:
        pr = data.get("pull_request") or {}
        repository = data.get("repository") or {}
        installation = (data.get("installation") or {}).get("id")
        head = pr.get("head") or {}
        if not isinstance(installation, int) or not repository.get("full_name") or not head.get("ref"):
            return None
        merged = bool(pr.get("merged")) and bool(pr.get("merge_commit_sha"))
        actor = (pr.get("merged_by") if merged else None) or data.get("sender") or {}
        return cls(
            repo=str(repository["full_name"]),
            number=int(pr["number"]),
            head_ref=str(head["ref"]),
            head_repo=str((head.get("repo") or {}).get("full_name") or ""),
            author=str((pr.get("user") or {}).get("login") or ""),
            merged=merged,
            merge_sha=str(pr.get("merge_commit_sha") or "") if merged else "",
            actor=str(actor.get("login") or ""),
            installation_id=installation,
        )

    @property
    def url_path(self) -> str:
        return f"{self.repo}/pull/{self.number}"


# --------------------------------------------------------------------------- the pure core


def not_ours(pull: ClosedPull, bot_login: str) -> str | None:
    """Why a PR that carries numbers we recorded is still not the bot's own (None: it is)."""
    if pull.head_repo != pull.repo:
        return f"its branch lives in {pull.head_repo or 'a deleted repository'}, not in {pull.repo}"
    if pull.author != bot_login:
        return f"it was opened by {pull.author or 'nobody'}, not by {bot_login}"
    return None


def _branch(row: Row) -> str | None:
    try:
        return pr_branch_name(str(row["environment"]), str(row["model"]))
    except ManifestError:
        return None


@dataclass(frozen=True)
class Decision:
    """What a closed deploy PR changes in the deployments table."""

    make_current: tuple[Row, ...] = ()  # proposals whose version the merge put in place
    abandon: tuple[tuple[Row, str], ...] = ()  # (proposal, why it never ran)

    @property
    def changes(self) -> bool:
        return bool(self.make_current or self.abandon)


def decide(rows: Iterable[Row], pull: ClosedPull) -> Decision:
    """Rows recorded for this deploy PR (any state), oldest first → what the close means for them.

    Rows whose (environment, model) branch is not the PR's head branch are left alone. A PR updated by a
    later merge or promotion carries several proposals: the newest is what merged, the older ones never
    ran. A row a previous delivery already moved is not moved again.
    """
    groups: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for row in rows:
        if row["deploy_pr"] == pull.number and _branch(row) == pull.head_ref:
            groups[(row["repo"], row["environment"], row["model"])].append(row)
    current: list[Row] = []
    abandon: list[tuple[Row, str]] = []
    for group in groups.values():
        group.sort(key=lambda r: r["id"])
        if not pull.merged:
            abandon += [(r, CLOSED_UNMERGED) for r in group if r["state"] == "pending"]
            continue
        if any(r["deploy_commit"] == pull.merge_sha for r in group):
            continue  # an earlier delivery of this merge recorded it
        # A PR closed, then reopened and merged: what it proposed runs after all.
        candidates = [
            r for r in group if r["state"] == "pending" or (r["state"] == ABANDONED and r["detail"] == CLOSED_UNMERGED)
        ]
        if not candidates:
            continue
        newest = candidates[-1]
        current.append(newest)
        why = f"replaced on {pull.repo}#{pull.number} by `{newest['version'][:7]}` before it merged"
        abandon += [(r, why) for r in candidates[:-1] if r["state"] == "pending"]
    return Decision(tuple(current), tuple(abandon))


def github_state(row: Row, pull: ClosedPull) -> str | None:
    """The status this row's GitHub Deployment must end with after the close (None: not this close's)."""
    if row["deploy_pr"] != pull.number or _branch(row) != pull.head_ref or not row["github_deployment_id"]:
        return None
    if pull.merged and row["deploy_commit"] == pull.merge_sha:
        return "success"
    if row["state"] == ABANDONED:
        return "inactive"
    return None  # the proposal a merge replaced by a new row: that row carries the Deployment on


# --------------------------------------------------------------------------- carrying it out


async def _rows_of(conn: AsyncConnection, pull: ClosedPull) -> list[Row]:
    """Every deployments row recorded for this PR of this deploy repository, oldest first."""
    return list(await deployments.of_deploy_pr(conn, pull.repo, pull.number))


async def on_closed(services: Services, pull: ClosedPull) -> None:
    """A PR closed in some repository: record it if it is one of the bot's deploy or rollback PRs."""
    async with services.engine.connect() as conn:
        rows = await _rows_of(conn, pull)
        incidents = [
            i
            for i in await store.incidents(conn, open_only=True)
            if (i.deploy_repo, i.pr_number, i.branch) == (pull.repo, pull.number, pull.head_ref)
        ]
    if not any(_branch(r) == pull.head_ref for r in rows) and not incidents:
        return  # not a PR the bot opened in a deploy repository: nothing of ours
    why = not_ours(pull, services.bot_login)
    if why is not None:
        log.warning("%s#%s closed on a Modelship branch but ignored: %s", pull.repo, pull.number, why)
        return
    deploy = need(services.deploy, "deploy")
    if rows:
        await _record(services, deploy, pull, rows)
    for incident in incidents:
        await _rollback(services, deploy, pull, incident)


async def _record(services: Services, deploy: DeployService, pull: ClosedPull, rows: list[Row]) -> None:
    decision = decide(rows, pull)
    if decision.changes:
        async with services.engine.begin() as conn:
            for row in decision.make_current:
                await _make_current(services, conn, row, pull, track=deploy.records.live_tracking)
            for row, why in decision.abandon:
                await deployments.abandon_proposal(conn, row["id"], why)
        log.info(
            "%s#%s %s: %d deployment(s) recorded, %d abandoned",
            pull.repo,
            pull.number,
            "merged" if pull.merged else "closed",
            len(decision.make_current),
            len(decision.abandon),
        )
    # Read again (this delivery's writes or an earlier one's): GitHub and the comments follow the table.
    async with services.engine.connect() as conn:
        rows = await _rows_of(conn, pull)
    touched = [r for r in rows if _branch(r) == pull.head_ref]
    for repo in sorted({r["repo"] for r in touched}):
        gh = await _model_repo_client(services, deploy, repo, pull)
        for row in touched:
            if row["repo"] == repo and (state := github_state(row, pull)) is not None:
                await _tell_github(gh, deploy, row, state, pull)
        for number in sorted({r["source_pr"] for r in touched if r["repo"] == repo and r["source_pr"]}):
            await deploy.update_sticky(gh, repo, int(number))


async def _make_current(
    services: Services, conn: AsyncConnection, proposal: Row, pull: ClosedPull, *, track: bool
) -> None:
    """The merged proposal runs now: a new ``deployed`` row (its own id and time, so the guard's initial
    delay and "the version before this one" start at the merge), the previous current one superseded."""
    if not await deployments.retire_proposal(conn, proposal["id"]):
        return  # another worker took it first
    copied = (
        "repo",
        "environment",
        "model",
        "version",
        "source_pr",
        "deploy_repo",
        "deploy_pr",
        "values_path",  # the proposal's file, now in the merge commit
        "variant",
        "sha256",
    )
    row_id = await deployments.record(  # supersedes the version that ran before
        conn,
        track=track,  # live tracking follows the merged version
        **{k: proposal[k] for k in copied},
        deploy_commit=pull.merge_sha,
        actor=pull.actor or proposal["actor"],
        state="deployed",
        health="unknown",
        pinned=proposal["pinned"],
        kind=proposal["kind"],  # a merged promotion is still a promotion
        detail=f"{pull.repo}#{pull.number} merged by {pull.actor or 'someone'}"[:2000],
        # The GitHub Deployment created for the proposal is the one that now succeeds.
        github_deployment_id=proposal["github_deployment_id"],
    )
    data = {k: proposal[k] for k in ("repo", "environment", "model", "version", "variant", "sha256", "source_pr")}
    data |= {"deploy_repo": proposal["deploy_repo"], "deploy_commit": pull.merge_sha, "actor": pull.actor}
    await services.emit(conn, "deploy.committed", f"deploy:{row_id}:committed", data)


async def _model_repo_client(services: Services, deploy: DeployService, repo: str, pull: ClosedPull) -> GitHubAPI:
    """Deployments and comments live on the model repository (in the deploy repository's installation, as
    bot.deploy.tenancy requires; looked up all the same, since rows written before that rule may differ)."""
    installation = await deploy.installations(repo) or pull.installation_id
    return await services.github.for_installation(installation)


async def _tell_github(gh: GitHubAPI, deploy: DeployService, row: Row, state: str, pull: ClosedPull) -> None:
    """Add ``state`` to the row's GitHub Deployment unless it already has it (a redelivery adds nothing)."""
    statuses = f"/repos/{row['repo']}/deployments/{row['github_deployment_id']}/statuses"
    told = "in_progress" if state == "success" and deploy.records.live_tracking else state
    async for status in gh.getiter(f"{statuses}?per_page=100"):
        if status.get("state") == told:
            return
    pr_url = f"{deploy.web_url}/{pull.url_path}"
    merged = f"{pull.repo}#{pull.number} merged as {pull.merge_sha[:7]}"
    if state == "success" and deploy.records.live_tracking:
        # Merged is committed, not serving: bot.deploy.live adds `success` once every replica serves it.
        state, merged = "in_progress", f"{merged}; waiting until every replica serves it"
    data: dict[str, Any] = {"state": state, "log_url": pr_url}
    if state in ("success", "in_progress"):
        commit_url = f"{deploy.web_url}/{pull.repo}/commit/{pull.merge_sha}"
        data |= {"environment_url": commit_url, "description": merged}
    else:
        data["description"] = str(row["detail"] or CLOSED_UNMERGED)
    data["description"] = data["description"][:MAX_DESCRIPTION]
    await gh.post(statuses, data=data)


async def _rollback(services: Services, deploy: DeployService, pull: ClosedPull, incident: store.IncidentView) -> None:
    """A rollback PR a person merged or closed: the guard's incident steps record it."""
    guard = services.guard
    if guard is None:
        log.warning("rollback PR %s closed, but the guard feature is not set up", pull.url_path)
        return
    advanced = await guard.rollbacks.advance(incident)
    if advanced.is_open and advanced.last_error:
        # advance() keeps the error for the watcher's next round; with no watcher, this job's retry is
        # the only one that would look again.
        raise TransientError(f"rollback PR {pull.url_path} not recorded yet: {advanced.last_error}")
    if advanced.state != "merged":
        return
    async with services.engine.connect() as conn:
        bad = await deployments.deployment(conn, incident.bad_deployment_id)
    if bad is not None and bad.source_pr:
        # The PR that shipped the bad version shows it rolled back in its Deploy comment too.
        gh = await _model_repo_client(services, deploy, bad.repo, pull)
        await deploy.update_sticky(gh, bad.repo, bad.source_pr)
