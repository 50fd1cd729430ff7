"""Telling people what a deploy did: a history row per result (bot.store.deployments), a GitHub Deployment
with statuses on the model repository, and the sticky "Deploy" comment on the source PR.

Every step is idempotent, so a redelivered merge or a retried job records nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.context import EventSink
from bot.deploy.manifest import ManifestError, ModelRef, values_path
from bot.deploy.render import (
    MARK,
    Row,
    github_deployment,
    github_statuses,
    newest_per_target,
    render_section,
    rollout_status,
    stuck_status,
)
from bot.deploy.targets import Result, row_state
from bot.github.sticky import upsert_sticky
from bot.store import deployments

# Row states that get a GitHub Deployment.
_ANNOUNCED = ("deployed", "pending", "failed")


class DeployRecords:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        web_url: str,
        bot_login: str,
        live_tracking: bool = False,
        emit: EventSink | None = None,
    ) -> None:
        self.engine = engine
        self.web_url = web_url
        self.bot_login = bot_login
        # With live tracking (bot.deploy.live) a commit is only `in_progress`; `success` waits for live.
        self.live_tracking = live_tracking
        # Called after a `deployed` row is recorded (the live tracker's wake-up), so its rollout starts now.
        self.on_deployed: Callable[[], None] = lambda: None
        self.emit = emit  # Services.emit: the notification outbox (deploy.committed)

    async def record(
        self,
        gh: GitHubAPI,
        repo: str,
        deploy_repo: str,
        result: Result,
        actor: str,
        *,
        path_template: str,
        failure: str = "failure",
    ) -> None:
        """Write the history row and the GitHub Deployment for a result worth remembering. ``path_template``
        is the config's deploy.path_template (the row names its values file). ``failure`` is the Deployment
        status of a failed result: ``failure`` (refused) or ``error`` (it broke)."""
        ref, state = result.ref, row_state(result)
        if ref is None or state is None:
            if ref is not None and result.state == "unchanged":
                await self.ensure_github_deployment(gh, repo, deploy_repo, result.env, ref, failure=failure)
            return
        async with self.engine.begin() as conn:
            latest = await deployments.latest(conn, repo, result.env, ref.name)
            repeated = latest is not None and (latest["state"], latest["version"], latest["detail"]) == (
                state,
                ref.revision,
                result.detail or None,
            )
            if repeated and state != "deployed":
                return  # the same skip or failure again (a redelivery): say it once
            row_id = await deployments.record(
                conn,
                track=self.live_tracking,
                **_history_row(repo, deploy_repo, result, ref, actor, path_template),
                deploy_pr=result.deploy_pr,
                state=state,
                pinned=ref.pinned,
                kind=result.kind,
            )
            if state == "deployed" and result.deploy_commit and self.emit is not None:
                data = committed_event(repo, result.env, ref, deploy_repo, result.deploy_commit, actor, result.detail)
                await self.emit(conn, "deploy.committed", f"deploy:{row_id}:committed", data)
        if state in _ANNOUNCED:
            await self.ensure_github_deployment(gh, repo, deploy_repo, result.env, ref, failure=failure)
        if state == "deployed":
            self.on_deployed()

    async def record_unpin(
        self, repo: str, deploy_repo: str, result: Result, actor: str, *, path_template: str
    ) -> None:
        """The timeline's ``unpin`` row of a committed unpin: no new GitHub Deployment or rollout, since the
        same version runs on (the running row's carry on)."""
        ref = result.ref
        if ref is None or result.state != "deployed":
            return  # nothing was committed (already unpinned): nothing happened worth a row
        async with self.engine.begin() as conn:
            await deployments.record_unpin(conn, **_history_row(repo, deploy_repo, result, ref, actor, path_template))

    async def ensure_github_deployment(
        self, gh: GitHubAPI, repo: str, deploy_repo: str, env: str, ref: ModelRef, *, failure: str = "failure"
    ) -> None:
        """One GitHub Deployment per history row, created once (a retried job finishes the job)."""
        async with self.engine.connect() as conn:
            row = await deployments.latest(conn, repo, env, ref.name, version=ref.revision)
        if row is None or row["github_deployment_id"] is not None or row["state"] not in _ANNOUNCED:
            return
        created = await gh.post(f"/repos/{repo}/deployments", data=github_deployment(ref, env, deploy_repo))
        deployment_id = int(created["id"])
        for status in github_statuses(row, self.web_url, deploy_repo, failure, live_tracking=self.live_tracking):
            await gh.post(f"/repos/{repo}/deployments/{deployment_id}/statuses", data=status)
        async with self.engine.begin() as conn:
            await deployments.set_github_deployment(conn, row["id"], deployment_id)

    async def tell_rollout(self, gh: GitHubAPI, row: Row) -> None:
        """Give the row's GitHub Deployment the status of its rollout phase, unless it has it (a round redone
        after a crash adds nothing)."""
        status = rollout_status(row, self.web_url)
        if status is None or not row["github_deployment_id"]:
            return
        statuses = f"/repos/{row['repo']}/deployments/{row['github_deployment_id']}/statuses"
        async for existing in gh.getiter(f"{statuses}?per_page=100"):
            if existing.get("state") == status["state"]:
                return
        await gh.post(statuses, data=status)

    async def tell_stuck(self, gh: GitHubAPI, row: Row, detail: str) -> None:
        """A new ``in_progress`` status on the row's GitHub Deployment whose description leads with why the
        rollout is stuck, unless it has that one (a round redone after a crash adds nothing)."""
        status = stuck_status(row, detail, self.web_url)
        if not row["github_deployment_id"]:
            return
        statuses = f"/repos/{row['repo']}/deployments/{row['github_deployment_id']}/statuses"
        async for existing in gh.getiter(f"{statuses}?per_page=100"):
            if (existing.get("state"), existing.get("description")) == ("in_progress", status["description"]):
                return
        await gh.post(statuses, data=status)

    async def update_sticky(self, gh: GitHubAPI, repo: str, number: int) -> None:
        """The source PR's Deploy comment, from the table."""
        async with self.engine.connect() as conn:
            rows = newest_per_target(await deployments.of_source_pr(conn, repo, number))
        if rows:
            await upsert_sticky(gh, repo, number, MARK, render_section(rows, self.web_url), bot_login=self.bot_login)

    async def health(self, repo: str, env: str, ref: ModelRef) -> str:
        """The guard's verdict on ``ref`` in ``env``."""
        async with self.engine.connect() as conn:
            row = await deployments.latest(conn, repo, env, ref.name, version=ref.revision)
        return str(row["health"]) if row is not None else "unknown (no deployment record)"


def _history_row(
    repo: str, deploy_repo: str, result: Result, ref: ModelRef, actor: str, path_template: str
) -> dict[str, Any]:
    """The columns every history row of a deploy result carries (deploy, promote, rollback or unpin)."""
    try:
        path: str | None = values_path(result.env, ref.name, path_template)
    except ManifestError:
        path = None  # names no file can have: the row records the refusal, there is no file to point at
    return {
        "repo": repo,
        "environment": result.env,
        "model": ref.name,
        "version": ref.revision,
        "source_pr": ref.source_pr,
        "deploy_repo": deploy_repo,
        "deploy_commit": result.deploy_commit,
        "values_path": path,
        "variant": ref.variant,
        "sha256": ref.sha256,
        "actor": actor,
        "detail": result.detail or None,
    }


def committed_event(
    repo: str, env: str, ref: ModelRef, deploy_repo: str, deploy_commit: str, actor: str, detail: str = ""
) -> dict[str, object]:
    """The ``deploy.committed`` event's data (key ``deploy:<row id>:committed``, as live tracking names it)."""
    return {
        "repo": repo,
        "environment": env,
        "model": ref.name,
        "version": ref.revision,
        "variant": ref.variant,
        "sha256": ref.sha256,
        "source_pr": ref.source_pr,
        "deploy_repo": deploy_repo,
        "deploy_commit": deploy_commit,
        "actor": actor,
        "detail": detail,
    }
