"""Rolling an environment back: choose the version to restore, pin it in a deploy-repo PR, tell the source PR.

One path for all triggers (the watcher, ``/modelship rollback``, ``modelship rollback``):

1. ``open_incident`` writes an incident row under a unique key (nothing else yet), in the caller's
   transaction. A second attempt for the same bad deployment finds the key taken: one PR per incident.
2. ``advance`` moves an incident forward, each step idempotent so a restart resumes where it stopped:
   opening -> push the branch and open (or find) the PR -> open -> comment on the source PR ->
   merge it at once with ``auto_merge``, or wait until a human merges it -> merged: the bad
   deployment row becomes ``rolled_back`` and the restored version gets a new, pinned row.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import git
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config.deploy_allowlist import DeployAllowlist
from bot.config.repo import RepoConfig, RepoConfigError
from bot.context import EventSink
from bot.deploy.chart import ModelServerChart
from bot.deploy.gitops import DeployError, DeployRepo
from bot.deploy.helm import check_values
from bot.deploy.manifest import (
    DEFAULT_PATH_TEMPLATE,
    ManifestError,
    ModelRef,
    commit_message,
    current_ref,
    pin,
    pr_branch_name,
    values_path,
)
from bot.deploy.tenancy import decide
from bot.guard import metrics, store
from bot.guard.github import GuardError, GuardGitHub
from bot.guard.store import IncidentView
from bot.store import deployments
from bot.store.deployments import RAN_STATES, DeploymentView

log = logging.getLogger(__name__)

MAX_BODY = 60_000  # GitHub caps PR and comment bodies at 65,536 characters


class RollbackError(Exception):
    """The rollback cannot be done as asked; the message says why and what to do instead."""


@dataclass(frozen=True)
class RollbackRequest:
    repo: str
    environment: str
    model: str | None = None  # None: every model deployed in the environment
    to: str | None = None  # a version (full or ≥ 7-character commit SHA); None: the last healthy one
    actor: str = ""
    reason: str = ""
    dry_run: bool = False


@dataclass(frozen=True)
class RollbackResult:
    model: str
    incident: IncidentView | None
    created: bool  # False: the incident existed already (no second PR)
    preview: str = ""  # dry run: the diff the rollback would propose


def choose_target(rows: Sequence[DeploymentView], current: DeploymentView, to: str | None = None) -> DeploymentView:
    """The deployment to restore: ``to`` if given, else the newest earlier version that ran and was healthy.

    Falls back to the newest earlier version that ran and was never seen degraded.
    """
    if to:
        if current.version == to or (len(to) >= 7 and current.version.startswith(to)):
            raise RollbackError(f"{current.model} already runs {current.short} in {current.environment}")
        named = [r for r in rows if r.version == to or (len(to) >= 7 and r.version.startswith(to))]
        if not named:
            known = ", ".join(dict.fromkeys(r.short for r in reversed(rows) if r.version != current.version))
            raise RollbackError(
                f"{current.model} never ran version {to!r} in {current.environment}; "
                f"known versions: {known or 'none'} (use a commit SHA of at least 7 characters)"
            )
        return named[-1]
    earlier = [r for r in rows if r.id < current.id and r.version != current.version and r.state in RAN_STATES]
    for acceptable in (lambda r: r.health == "healthy", lambda r: r.health != "degraded"):
        found = [r for r in earlier if acceptable(r)]
        if found:
            return found[-1]
    raise RollbackError(
        f"no earlier healthy version of {current.model} ran in {current.environment}: "
        f"name one with `rollback {current.environment} to <version>`"
    )


def incident_key(trigger: str, current: DeploymentView, target: DeploymentView) -> str:
    # Keyed by the deployments row, not the version: the same version deployed again later and
    # failing again is a new incident.
    base = f"{current.repo}:{current.environment}:{current.model}:{current.id}"
    # An automatic trigger (the guard, live tracking) acts once per row; a person may ask for other targets.
    return f"{trigger}:{base}" if trigger in ("guard", "live") else f"manual:{base}:{target.version}"


def pr_title(incident: IncidentView) -> str:
    return (
        f"rollback({incident.environment}): {incident.model} {incident.bad_version[:7]} -> "
        f"{incident.target_version[:7]} (pinned)"
    )


def pr_body(incident: IncidentView) -> str:
    by = {"guard": "the Modelship guard", "live": "Modelship's live tracking (the deploy never went live)"}.get(
        incident.trigger, f"@{incident.actor}" if incident.actor else "a user"
    )
    lines = [
        f"Rollback of **{incident.model}** in **{incident.environment}**, requested by {by}.",
        "",
        f"- Bad version: `{incident.bad_version}` (from {incident.repo})",
        f"- Restored version: `{incident.target_version}`, **pinned** so auto-deploys do not roll forward over it",
        f"- Reason: {incident.reason or 'not given'}",
        "",
        f"Lift the pin with `/modelship unpin {incident.environment}` once a fixed version has passed review.",
    ]
    if incident.evidence:
        lines += ["", "## Evidence", "", incident.evidence]
    return "\n".join(lines)[:MAX_BODY]


def source_comment(incident: IncidentView) -> str:
    merged = "merged" if incident.state == "merged" else "waiting for a merge"
    return (
        f"**Modelship rolled back {incident.model} `{incident.bad_version[:7]}` in {incident.environment}** "
        f"(shipped by this pull request).\n\n"
        f"Reason: {incident.reason or 'not given'}\n\n"
        f"Rollback PR: {incident.pr_url or incident.deploy_repo} ({merged}) restores "
        f"`{incident.target_version[:7]}` and pins it; the evidence is in its description."
    )[:MAX_BODY]


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Rollbacks:
    """Opens, advances and lists rollback incidents; one instance per service."""

    def __init__(
        self,
        engine: AsyncEngine,
        github: GuardGitHub,
        workdir: Path,
        *,
        chart: ModelServerChart | None = None,  # None: rollback values are not rendered with Helm first
        bot_login: str = "modelship[bot]",
        allowlist: DeployAllowlist | None = None,
        emit: EventSink | None = None,  # Services.emit: rollback.opened / merged and guard alerts are told there
    ) -> None:
        self.engine = engine
        self.emit = emit
        self.allowlist = allowlist or DeployAllowlist.default()  # MODELSHIP_DEPLOY_ALLOWLIST
        self.github = github
        self.workdir = workdir
        self._chart = chart.path if chart is not None else None
        self._bot = bot_login
        # Set by bot.deploy.feature when the service runs live tracking (a restored version is followed too).
        self.live_tracking = False
        # The watcher and a chat-ops command may advance the same incident: one at a time.
        self._lock = asyncio.Lock()

    def _pinned(self, text: str | None, reason: str, ref: ModelRef) -> str | None:
        """The rollback's values, which Helm must render (HelmRefused, a ManifestError, otherwise):
        runs in the deploy repository's worker thread, before anything is committed or proposed."""
        pinned = pin(text, reason, ref).text
        if pinned is not None and self._chart is not None:
            check_values(self._chart, pinned)
        return pinned

    # ------------------------------------------------------------------ opening

    async def open_incident(
        self,
        conn: AsyncConnection,
        current: DeploymentView,
        config: RepoConfig,
        *,
        trigger: str,
        reason: str,
        evidence: str = "",
        actor: str = "",
        to: str | None = None,
    ) -> tuple[IncidentView, bool]:
        """Record the incident (unique key) in ``conn``'s transaction; (incident, created)."""
        target = choose_target(
            await deployments.history(conn, current.repo, current.environment, current.model), current, to
        )
        env = config.environments.get(current.environment)
        guard = env.guard if env is not None else None
        template = config.deploy.path_template if config.deploy is not None else None
        try:
            path = values_path(current.environment, current.model, template or DEFAULT_PATH_TEMPLATE)
            branch = pr_branch_name(current.environment, current.model, "rollback")
        except ManifestError as exc:
            raise RollbackError(str(exc)) from None
        key = incident_key(trigger, current, target)
        created = await store.create_incident(
            conn,
            {
                "key": key,
                "repo": current.repo,
                "environment": current.environment,
                "model": current.model,
                "bad_version": current.version,
                "bad_deployment_id": current.id,
                "target_version": target.version,
                "target_deployment_id": target.id,
                "deploy_repo": current.deploy_repo,
                "values_path": path,
                "branch": branch,
                "trigger": trigger,
                "actor": actor,
                "reason": reason[:2000],
                "evidence": evidence[:MAX_BODY],
                "auto_merge": bool(guard and guard.auto_merge),
                "state": "opening",
            },
        )
        incident = await store.incident_by_key(conn, key)
        assert incident is not None
        if created:
            metrics.ROLLBACKS.labels(current.repo, current.environment, current.model, trigger).inc()
            log.warning(
                "guard: rollback of %s %s in %s (%s) to %s: %s",
                current.model,
                current.short,
                current.environment,
                current.repo,
                target.short,
                reason,
            )
        return incident, created

    async def request(self, req: RollbackRequest) -> list[RollbackResult]:
        """A rollback asked for by a person (chat-ops or CLI): the same incidents the watcher opens."""
        config = await self.github.read_config(req.repo)
        if config is None or isinstance(config, RepoConfigError):
            why = "has no .modelship.yml" if config is None else f"has an invalid .modelship.yml ({config})"
            raise RollbackError(f"{req.repo} {why} on its default branch: fix it to roll back")
        if req.environment not in config.environments:
            known = ", ".join(config.environments) or "none"
            raise RollbackError(f"environment {req.environment!r} is not in .modelship.yml (environments: {known})")
        async with self.engine.connect() as conn:
            running = [
                d
                for d in await deployments.current_deployments(conn, req.repo)
                if d.environment == req.environment and (req.model is None or d.model == req.model)
            ]
        if not running:
            which = f"{req.model} " if req.model else ""
            raise RollbackError(f"nothing {which}is deployed in {req.environment} of {req.repo}")
        for deploy_repo in dict.fromkeys(d.deploy_repo for d in running):
            await self._allowed(req.repo, deploy_repo)  # refuse before an incident is even recorded
        if req.dry_run:
            return [await self._preview(d, config, req) for d in running]
        results: list[RollbackResult] = []
        for current in running:
            async with self.engine.begin() as conn:
                incident, created = await self.open_incident(
                    conn,
                    current,
                    config,
                    trigger="manual",
                    reason=req.reason or f"manual rollback requested by {req.actor or 'a user'}",
                    actor=req.actor,
                    to=req.to,
                )
            results.append(RollbackResult(current.model, await self.advance(incident), created))
        return results

    async def _preview(self, current: DeploymentView, config: RepoConfig, req: RollbackRequest) -> RollbackResult:
        async with self.engine.connect() as conn:
            target = choose_target(
                await deployments.history(conn, current.repo, current.environment, current.model), current, req.to
            )
        template = config.deploy.path_template if config.deploy is not None else None
        path = values_path(current.environment, current.model, template or DEFAULT_PATH_TEMPLATE)
        deploy = await self._deploy(current.repo, current.deploy_repo)
        text = await deploy.read(path)
        ref = await self._target_ref(deploy, path, target, text)
        reason = req.reason or "dry run"
        diff = await deploy.preview({path: lambda t: self._pinned(t, reason, ref)})
        header = (
            f"Would roll back {current.model} {current.short} -> {target.short} in {current.environment} "
            f"with a pull request to {current.deploy_repo} (pinned):\n"
        )
        return RollbackResult(current.model, None, False, header + (diff or "(no change)\n"))

    # ------------------------------------------------------------------ advancing

    async def advance_open(self) -> list[IncidentView]:
        async with self.engine.connect() as conn:
            recent = await store.incidents(conn)
        pending = [i for i in reversed(recent) if i.is_open or (i.state == "merged" and not i.commented)]
        return [await self.advance(i) for i in pending]

    async def advance(self, incident: IncidentView) -> IncidentView:
        async with self._lock:
            async with self.engine.connect() as conn:
                fresh = await store.incident_by_key(conn, incident.key)
            incident = fresh or incident
            try:
                incident = await self._step(incident)
            except (GuardError, DeployError, ManifestError, RollbackError, git.GitCommandError) as exc:
                incident = await self._failed_step(incident, str(exc))
            except Exception as exc:
                log.exception("guard: incident %s could not advance", incident.key)
                incident = await self._failed_step(incident, f"{type(exc).__name__}: {exc}")
            return incident

    async def _failed_step(self, incident: IncidentView, error: str) -> IncidentView:
        log.error("guard: rollback %s stalled (retrying next round): %s", incident.key, error)
        async with self.engine.begin() as conn:
            await store.update_incident(conn, incident.id, last_error=error[:2000])
        return replace(incident, last_error=error)

    async def _step(self, incident: IncidentView) -> IncidentView:
        if incident.state in ("opening", "open"):
            # Every step below reads or writes the deploy repository (its clone, PR or merge).
            await self._allowed(incident.repo, incident.deploy_repo)
        if incident.state == "opening":
            incident = await self._open_pr(incident)
        if incident.state == "open" and incident.auto_merge:
            incident = await self._merge(incident)
        elif incident.state == "open" and incident.pr_number is not None:
            pull = await self.github.pull(incident.deploy_repo, incident.pr_number)
            if pull.get("merged"):
                incident = await self._merged(incident, str(pull.get("merge_commit_sha") or ""))
            elif pull.get("state") == "closed":
                incident = await self._set(incident, state="closed")
        if not incident.commented and incident.state in ("open", "merged"):
            incident = await self._comment(incident)
        if incident.last_error:
            incident = await self._set(incident, last_error=None)
        return incident

    async def tell(self, conn: AsyncConnection, kind: str, incident: IncidentView, **extra: Any) -> None:
        """The notification outbox hears about an incident in ``conn``'s transaction (one event per kind and
        incident: its key is the incident's unique key)."""
        if self.emit is None:
            return
        data = {
            "repo": incident.repo,
            "environment": incident.environment,
            "model": incident.model,
            "version": incident.bad_version,
            "restored_version": incident.target_version,
            "deploy_repo": incident.deploy_repo,
            "pr_number": incident.pr_number,
            "pr_url": incident.pr_url,
            "merge_sha": incident.merge_sha,
            "trigger": incident.trigger,
            "actor": incident.actor,
            "reason": incident.reason,
            **extra,
        }
        await self.emit(conn, kind, f"{kind}:{incident.key}", data)

    async def _set(self, incident: IncidentView, **values: Any) -> IncidentView:
        async with self.engine.begin() as conn:
            await store.update_incident(conn, incident.id, **values)
        return replace(incident, **values)

    async def _allowed(self, model_repo: str, deploy_repo: str) -> None:
        """The tenancy rules (bot.deploy.tenancy) the deploy applies: RollbackError naming the rule."""
        refusal = decide(
            model_repo,
            await self.github.installation(model_repo),
            deploy_repo,
            await self.github.installation(deploy_repo),
            self.allowlist,
        )
        if refusal is not None:
            log.warning(
                "guard: rollback from %s to %s refused (%s): %s", model_repo, deploy_repo, refusal.rule, refusal
            )
            raise RollbackError(str(refusal))

    async def _deploy(self, model_repo: str, full_name: str) -> DeployRepo:
        await self._allowed(model_repo, full_name)
        return await self.github.deploy_repo(full_name, self.workdir / _SAFE.sub("_", full_name))

    async def _open_pr(self, incident: IncidentView) -> IncidentView:
        async with self.engine.connect() as conn:
            target = await deployments.deployment(conn, incident.target_deployment_id)
        if target is None:
            raise RollbackError(f"deployment row {incident.target_deployment_id} to restore is gone")
        deploy = await self._deploy(incident.repo, incident.deploy_repo)
        path = incident.values_path
        text = await deploy.read(path)
        ref = await self._target_ref(deploy, path, target, text)
        reason = f"rolled back from {incident.bad_version[:7]}: {incident.reason}"[:500]
        if not pin(text, reason, ref).changed:
            return await self._set(incident, state="closed", last_error="the environment already runs it, pinned")
        message = commit_message(
            ref, incident.environment, action="rollback", reason=reason, actor=incident.actor or self._bot
        )
        await deploy.open_or_update_pr_branch(incident.branch, {path: lambda t: self._pinned(t, reason, ref)}, message)
        pull = await self.github.open_or_update_pr(
            incident.deploy_repo, incident.branch, deploy.branch, pr_title(incident), pr_body(incident)
        )
        if pull is None:
            raise RollbackError(
                f"{incident.branch} has nothing to merge into {deploy.branch} of {incident.deploy_repo}"
            )
        log.warning("guard: rollback PR %s opened for %s", pull.get("html_url"), incident.key)
        number, url = int(pull["number"]), str(pull.get("html_url") or "")
        async with self.engine.begin() as conn:
            await store.update_incident(conn, incident.id, state="open", pr_number=number, pr_url=url)
            opened = replace(incident, state="open", pr_number=number, pr_url=url)
            await self.tell(conn, "rollback.opened", opened)
        return opened

    async def _target_ref(self, deploy: DeployRepo, path: str, target: DeploymentView, text: str | None) -> ModelRef:
        """The values the target version was deployed with, from the deploy repository's history."""

        def search() -> ModelRef | None:
            repo = deploy.repo
            try:
                log_out = repo.git.log("--format=%H", f"refs/remotes/origin/{deploy.branch}", "--", path)
            except git.GitCommandError:
                return None
            for sha in log_out.split():
                try:
                    ref = current_ref(repo.git.show(f"{sha}:{path}", strip_newline_in_stdout=False))
                except (git.GitCommandError, ManifestError):
                    continue
                if ref is not None and ref.revision == target.version:
                    return replace(ref, pinned=False, pin_reason="")
            return None

        found = await asyncio.to_thread(search)
        if found is not None:
            return found
        current = current_ref(text)
        if current is None:
            raise RollbackError(f"{deploy.display_url} has no model values at {path} to roll back")
        # Never deployed through this file's history (e.g. the path changed): same file, other version.
        return replace(
            current,
            revision=target.version,
            sha256=target.sha256 or current.sha256,
            source_pr=target.source_pr,
            pinned=False,
            pin_reason="",
            artifact="",  # the current artifact holds the bad version's bytes; this version's is not known here
        )

    async def _merge(self, incident: IncidentView) -> IncidentView:
        assert incident.pr_number is not None
        pull = await self.github.pull(incident.deploy_repo, incident.pr_number)
        if pull.get("merged"):
            return await self._merged(incident, str(pull.get("merge_commit_sha") or ""))
        if pull.get("state") == "closed":
            return await self._set(incident, state="closed")
        sha = await self.github.merge_pr(incident.deploy_repo, incident.pr_number, pr_title(incident))
        return await self._merged(incident, sha)

    async def _merged(self, incident: IncidentView, sha: str) -> IncidentView:
        """The rollback is live in git: record it on the deployments rows (once)."""
        async with self.engine.begin() as conn:
            fresh = await store.incident_by_key(conn, incident.key)
            if fresh is None or fresh.state != "open":
                return fresh or incident
            await store.update_incident(conn, incident.id, state="merged", merge_sha=sha or None)
            target = await deployments.deployment(conn, incident.target_deployment_id)
            await deployments.mark_rolled_back(conn, incident.bad_deployment_id)
            if target is not None:
                await deployments.insert(
                    conn,
                    track=self.live_tracking,  # the restored version is followed until it serves again
                    repo=target.repo,
                    environment=target.environment,
                    model=target.model,
                    version=target.version,
                    source_pr=target.source_pr,
                    deploy_repo=incident.deploy_repo,
                    deploy_commit=sha or None,
                    deploy_pr=incident.pr_number,
                    values_path=incident.values_path or None,  # the file the rollback PR restored
                    variant=target.variant,
                    sha256=target.sha256,
                    actor=incident.actor or self._bot,
                    state="deployed",
                    health="unknown",
                    pinned=True,
                    kind="rollback",
                    detail=f"rollback from {incident.bad_version[:7]}: {incident.reason}"[:2000],
                )
            merged = replace(incident, state="merged", merge_sha=sha or None)
            await self.tell(conn, "rollback.merged", merged)
        log.warning("guard: rollback %s merged (%s)", incident.key, sha[:7])
        return merged

    async def _comment(self, incident: IncidentView) -> IncidentView:
        async with self.engine.connect() as conn:
            bad = await deployments.deployment(conn, incident.bad_deployment_id)
        if bad is not None and bad.source_pr:
            # The marker makes the comment idempotent: a crash between posting it and recording that
            # we did must not post it twice.
            mark = f"<!-- modelship:guard-incident:{incident.key} -->"
            if not any(mark in body for body in await self.github.comments(incident.repo, bad.source_pr)):
                await self.github.comment(incident.repo, bad.source_pr, f"{source_comment(incident)}\n\n{mark}")
        return await self._set(incident, commented=True)
