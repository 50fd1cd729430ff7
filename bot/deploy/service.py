"""Deploy flows: a merged PR (the deploy job) and the chat-ops commands ``deploy``, ``promote``, ``unpin``.

Each flow gathers the facts (the base branch's ``.modelship.yml``, the PR's files, the review's sha256
and variant), asks the pure cores what to do (``bot.deploy.targets`` which targets and variant,
``bot.deploy.manifest`` what to write), writes through ``bot.deploy.gitops`` (a commit, or a PR for
protected environments) and tells people through ``bot.deploy.records``.

Every step is idempotent, so a redelivered merge or a retried job writes nothing twice: the plan says
"unchanged" and nothing new is recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.artifacts.registry import OciRegistry
from bot.config.deploy_allowlist import DeployAllowlist
from bot.config.repo import CONFIG_PATH, RepoConfig, RepoConfigError
from bot.context import Services
from bot.deploy.artifact import ArtifactPins
from bot.deploy.chart import ModelServerChart
from bot.deploy.gating import REVIEW_PASSED, Unmet, review_unmet
from bot.deploy.gitops import RetryPolicy
from bot.deploy.manifest import commit_message, current_ref, unpin, values_path
from bot.deploy.records import DeployRecords
from bot.deploy.sources import ModelRepository
from bot.deploy.targets import (
    DeployFailure,
    MergeRequest,
    Result,
    Target,
    environment,
    failed,
    gave_up,
    merge_targets,
    merged_ref,
    on_hold,
)
from bot.deploy.writer import DeployWriter
from bot.errors import Failure
from bot.store import deployments
from bot.store.queue import ClaimedJob, enqueue, job_row
from bot.store.reviews import head_review
from bot.worker import JobFailure

if TYPE_CHECKING:
    from bot.deploy.live import LiveTracker

log = logging.getLogger(__name__)

KIND = "deploy"


class DeployService:
    """The deploy flows; what they read, write and record is in ``sources``, ``writer`` and ``records``."""

    def __init__(
        self,
        services: Services,
        *,
        chart: ModelServerChart,
        web_url: str,
        retry: RetryPolicy | None = None,
        allowlist: DeployAllowlist | None = None,
        registry: OciRegistry | None = None,
        live_tracking: bool = False,
    ) -> None:
        self.services = services
        self.web_url = web_url.rstrip("/")
        # MODELSHIP_REGISTRY: every ref a deploy writes pins an artifact the registry has (bot.deploy.artifact).
        self.pins = ArtifactPins(registry, data_dir=services.data_dir, web_url=self.web_url)
        self.sources = ModelRepository(services.engine, deploy_root=services.deploy_root, pins=self.pins)
        self.writer = DeployWriter(
            services.github,
            services.engine,
            chart=chart,
            web_url=self.web_url,
            data_dir=services.data_dir,
            bot_login=services.bot_login,
            retry=retry,
            allowlist=allowlist,
        )
        self.installations = self.writer.installations
        self.tracker: LiveTracker | None = None  # live tracking, when the service runs it (bot.deploy.feature)
        self.records = DeployRecords(
            services.engine,
            web_url=self.web_url,
            bot_login=services.bot_login,
            live_tracking=live_tracking,
            emit=services.emit,
        )

    async def config_at(self, gh: GitHubAPI, repo: str, ref: str) -> RepoConfig | None:
        """The repository config at ``ref`` (RepoConfigError when it is invalid)."""
        return await self.sources.config_at(gh, repo, ref)

    async def update_sticky(self, gh: GitHubAPI, repo: str, number: int) -> None:
        await self.records.update_sticky(gh, repo, number)

    # -- flows -----------------------------------------------------------------------------------

    async def on_merge(self, job: ClaimedJob) -> None:
        """The deploy job: write every auto (and protected) environment for the models the PR changed."""
        request = MergeRequest(**job.payload)
        gh = await self.services.github.for_installation(request.installation_id)
        try:
            config = await self.sources.config_at(gh, request.repo, request.base_sha)
        except RepoConfigError as exc:
            log.info("deploy of %s#%s skipped: %s", request.repo, request.number, exc)
            return
        if config is None or config.deploy is None:
            return
        targets: list[Target] = []
        results: list[Result] = []
        for spec in await self.sources.changed_models(gh, request.repo, request.number, config):
            try:
                ref, metrics = await self.sources.model_ref(
                    gh,
                    request.repo,
                    spec,
                    revision=request.merge_sha,
                    review_sha=request.head_sha,
                    number=request.number,
                    sequence=request.merged_at,
                )
            except DeployFailure as exc:
                # Recorded against the merge commit, so the failure shows up like any other version's.
                ref = merged_ref(spec, request)
                results += [failed(env, spec.name, str(exc), ref) for env, _ in merge_targets(config)]
                continue
            targets += [Target(env, rule, ref, metrics, on_merge=True) for env, rule in merge_targets(config)]
        if await _held(self.services, request.repo, request.number):
            results += [on_hold(t) for t in targets]
            targets = []
        # requires: [review_passed] (the default of auto environments): only a merge whose exact head passed.
        review = await head_review(self.services.engine, request.repo, request.number, request.head_sha)
        gated = [
            (t, review_unmet(t.rule.requires, review, env=t.env, model=t.ref.name, head_sha=request.head_sha))
            for t in targets
        ]
        results += [Result(t.env, t.ref.name, "skipped", str(unmet), t.ref) for t, unmet in gated if unmet is not None]
        targets = [t for t, unmet in gated if unmet is None]
        deploy_name, template = config.deploy.repository, config.deploy.path_template
        for result in results:
            await self.records.record(gh, request.repo, deploy_name, result, request.actor, path_template=template)
        for target in targets:
            try:
                result = await self.writer.write(
                    gh, request.repo, config, target, installation_id=request.installation_id, actor=request.actor
                )
            except DeployFailure as exc:
                result = failed(target.env, target.ref.name, str(exc), target.ref)
            # Any other error ends the job (retried inside it first when transient); the job system then
            # calls on_final_failure, which records the targets that got no result. Each result is recorded
            # at once: a later target's failure retries the job, and by then this one is "unchanged".
            await self.records.record(gh, request.repo, deploy_name, result, request.actor, path_template=template)
        await self.records.update_sticky(gh, request.repo, request.number)

    async def on_final_failure(self, job: ClaimedJob, failure: JobFailure) -> None:
        """The deploy job ended without finishing: every (environment, model) of the merge that has no record
        yet is recorded as failed, its GitHub Deployment gets an ``error`` status, and the Deploy comment
        says what happened and how to try again."""
        request = MergeRequest(**job.payload)
        gh = await self.services.github.for_installation(request.installation_id)
        try:
            config = await self.sources.config_at(gh, request.repo, request.base_sha)
        except RepoConfigError:
            return  # the job never had a deploy to do
        if config is None or config.deploy is None:
            return
        kind, _, message = failure.error.partition(": ")
        why = f"an internal error (`{kind}`, job {job.id})" if failure.failure is Failure.BUG else message or kind
        for spec in await self.sources.changed_models(gh, request.repo, request.number, config):
            ref = merged_ref(spec, request)
            for env, _ in merge_targets(config):
                async with self.services.engine.connect() as conn:
                    if await deployments.latest(conn, request.repo, env, spec.name, version=request.merge_sha):
                        continue  # this target got its result before the job stopped
                result = failed(env, spec.name, gave_up(env, failure.attempts, why), ref)
                await self.records.record(
                    gh,
                    request.repo,
                    config.deploy.repository,
                    result,
                    request.actor,
                    path_template=config.deploy.path_template,
                    failure="error",
                )
        await self.records.update_sticky(gh, request.repo, request.number)

    async def deploy_head(
        self,
        gh: GitHubAPI,
        repo: str,
        number: int,
        config: RepoConfig,
        env: str,
        *,
        installation_id: int,
        actor: str,
        variant: str | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> list[Result]:
        """``deploy <env>``: the PR's head, for the models it changes (ordered by the time of the deploy).

        ``force`` (chat-ops allowed it: admin, or listed in the environment's ``allowed``) ships a head whose
        review did not pass; the override is written into the commit's trailers and the result."""
        rule = environment(config, env)
        pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
        head = str(pull["head"]["sha"])
        if await _held(self.services, repo, number):
            raise DeployFailure("this PR is on hold: comment `/modelship unhold` first")
        specs = await self.sources.changed_models(gh, repo, number, config)
        if not specs:
            raise DeployFailure(
                f"this PR changes no model or dataset listed in `{CONFIG_PATH}`, so there is nothing to deploy"
            )
        review = await head_review(self.services.engine, repo, number, head)
        targets: list[tuple[Target, Unmet | None]] = []
        for spec in specs:
            ref, metrics = await self.sources.model_ref(
                gh,
                repo,
                spec,
                revision=head,
                review_sha=head,
                number=number,
                sequence=int(time.time()),
                variant=variant,
            )
            unmet = review_unmet(rule.requires, review, env=env, model=spec.name, head_sha=head)
            if unmet is not None and not force:
                raise DeployFailure(str(unmet))  # before anything is written, for any model
            override = unmet.trailer(actor) if unmet is not None else None
            targets.append((Target(env, rule, ref, metrics, override=override), unmet))
        results = []
        for target, unmet in targets:
            result = await self.writer.write(
                gh, repo, config, target, installation_id=installation_id, actor=actor, dry_run=dry_run
            )
            if unmet is not None and result.ok:
                forced = f"forced past `{REVIEW_PASSED}` by {actor}: {unmet.why}"
                result = replace(result, detail=f"{forced}; {result.detail}" if result.detail else forced)
            results.append(result)
        await self._finish(gh, repo, number, config, results, actor)
        return results

    async def promote(
        self,
        gh: GitHubAPI,
        repo: str,
        config: RepoConfig,
        env: str,
        *,
        installation_id: int,
        actor: str,
        dry_run: bool = False,
        number: int | None = None,
    ) -> list[Result]:
        """``promote <env>``: copy what runs in ``environments.<env>.upstream`` into ``env``."""
        rule = environment(config, env)
        assert config.deploy is not None
        if rule.upstream is None:
            raise DeployFailure(f"`environments.{env}.upstream` is not set in `{CONFIG_PATH}`: nothing to promote from")
        deploy, _ = await self.writer.target_repo(repo, installation_id, config.deploy.repository)
        results: list[Result] = []
        for spec in config.models:
            upstream_path = values_path(rule.upstream, spec.name, config.deploy.path_template)
            ref = current_ref(await deploy.read(upstream_path))
            if ref is None:
                results.append(
                    Result(env, spec.name, "skipped", f"nothing is deployed in `{rule.upstream}` ({upstream_path})")
                )
                continue
            if rule.require_healthy_upstream and (health := await self.records.health(repo, rule.upstream, ref)) != (
                "healthy"
            ):
                why = (
                    f"`{ref.short}` in `{rule.upstream}` is {health}, and "
                    f"`environments.{env}.require_healthy_upstream` asks for healthy"
                )
                results.append(Result(env, spec.name, "skipped", why, ref))
                continue
            reason = f"Promoted from {rule.upstream} by {actor}."
            try:
                ref = await self.pins.present(ref, env)
            except DeployFailure as exc:
                results.append(failed(env, spec.name, str(exc), ref))
                continue
            results.append(
                await self.writer.write(
                    gh,
                    repo,
                    config,
                    Target(env, rule, ref),
                    installation_id=installation_id,
                    actor=actor,
                    action="promote",
                    dry_run=dry_run,
                    reason=reason,
                )
            )
        results = [replace(r, kind="promote") for r in results]  # refusals too: the timeline shows the attempt
        await self._finish(gh, repo, number, config, results, actor)
        return results

    async def unpin(
        self, gh: GitHubAPI, repo: str, config: RepoConfig, env: str, *, installation_id: int, actor: str
    ) -> list[Result]:
        """``unpin <env>``: lift the pin (one commit per pinned model) so merges roll forward again."""
        environment(config, env)
        assert config.deploy is not None
        deploy, _ = await self.writer.target_repo(repo, installation_id, config.deploy.repository)
        results = []
        for spec in config.models:
            path = values_path(env, spec.name, config.deploy.path_template)
            ref = current_ref(await deploy.read(path))
            if ref is None or not ref.pinned:
                continue
            message = commit_message(
                ref, env, action="unpin", actor=actor, reason=f"Unpinned by {actor}; was: {ref.pin_reason}"
            )
            done = await deploy.commit({path: lambda text: unpin(text).text}, message)
            state = "deployed" if done.changed else "unchanged"
            unpinned = replace(ref, pinned=False, pin_reason="")
            results.append(
                Result(
                    env,
                    spec.name,
                    state,
                    f"unpinned; was: {ref.pin_reason}" if ref.pin_reason else "unpinned",
                    unpinned,
                    deploy_commit=done.sha if done.changed else None,
                    kind="unpin",
                )
            )
        # The timeline's "unpin" row: the same version runs on, no longer pinned (who and why with it).
        for result in results:
            await self.records.record_unpin(
                repo, config.deploy.repository, result, actor, path_template=config.deploy.path_template
            )
        return results

    async def _finish(
        self, gh: GitHubAPI, repo: str, number: int | None, config: RepoConfig, results: list[Result], actor: str
    ) -> None:
        assert config.deploy is not None
        for result in results:
            await self.records.record(
                gh, repo, config.deploy.repository, result, actor, path_template=config.deploy.path_template
            )
        if all(r.state == "dry-run" for r in results):
            return
        # The PR that shipped a version hears about it too (a promotion is often asked for elsewhere).
        shipped = {r.ref.source_pr for r in results if r.ref is not None and r.ref.repository == repo}
        for pr in sorted(n for n in {number, *shipped} if n is not None):
            await self.records.update_sticky(gh, repo, pr)


async def _held(services: Services, repo: str, number: int) -> bool:
    from bot.chatops.store import is_held

    return await is_held(services.engine, repo, number)


# --------------------------------------------------------------------------- wiring


async def enqueue_merge(conn: AsyncConnection, request: MergeRequest, *, max_attempts: int = 3) -> None:
    """Queue the deploy job under the PR's sub-key (``/modelship status`` lists it). Git work on one deploy
    repository is serialised by DeployRepo's lock, so deploy jobs of different PRs may overlap their
    GitHub calls; ordering by merge time keeps an older version from overwriting a newer one."""
    key = f"{request.repo}#{request.number}:deploy"
    await enqueue(conn, [job_row(KIND, key, payload=asdict(request), max_attempts=max_attempts)])
