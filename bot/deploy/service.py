"""Deploy at the edges: merged PRs and chat-ops commands become commits (or PRs) in the deploy repository.

``manifest`` decides what to write and ``gitops`` how to commit it; this module gathers the facts
(the base branch's ``.modelship.yml``, the PR's files, the review's sha256 and variant), carries the
writes out, and tells people: a row per deployment in the ``deployments`` table, a GitHub Deployment
with statuses on the model repository, and a sticky "Deploy" comment on the source PR.

Every step is idempotent, so a redelivered merge or a retried job writes nothing twice: the plan says
"unchanged" and nothing new is recorded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from gidgethub import BadRequest, GitHubException
from gidgethub.abc import GitHubAPI
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.context import Services
from bot.deploy.gitops import DeployError, DeployRepo, Edit, RetryPolicy
from bot.deploy.helm import HelmRefused, check_values
from bot.deploy.manifest import (
    ManifestError,
    ModelRef,
    Plan,
    commit_message,
    current_ref,
    load_values,
    plan_deploy,
    pr_branch_name,
    unpin,
    values_path,
)
from bot.deploy.tenancy import DeployAllowlist, decide
from bot.errors import TransientError
from bot.github.installations import Installations, from_table
from bot.repoconfig import (
    CONFIG_PATH,
    Environment,
    ModelSpec,
    RepoConfig,
    RepoConfigError,
)
from bot.services.repo_config import ContentsError, read_file, read_repo_config
from bot.services.sticky import marker, upsert_sticky
from bot.store.queue import ClaimedJob, enqueue, job_row
from bot.store.review_models import Deployment, Review

log = logging.getLogger(__name__)

KIND = "deploy"
EXTRAS_KEY = "deploy"  # Services.extras[...]: the DeployService
MARK = marker("deploy")
DEPLOYMENTS = cast(Table, Deployment.__table__)
REVIEWS = cast(Table, Review.__table__)


# What `/modelship deploy --variant fp32|int8` accepts among the variants the optimizer produces.
VARIANT_FAMILIES: dict[str, tuple[str, ...]] = {
    "fp32": ("onnx_fp32", "onnx_optimized"),
    "int8": ("int8_dynamic", "int8_static"),
}


class DeployFailure(Exception):
    """A deploy cannot go ahead; the message is safe to show users and names what to fix."""


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class MergeRequest:
    """The deploy job's payload: a PR merged into the default branch."""

    repo: str
    number: int
    installation_id: int
    merge_sha: str
    base_sha: str  # policy (.modelship.yml) is read here: never from the PR itself
    head_sha: str
    merged_at: int  # Unix seconds: the version's sequence
    actor: str
    deploy_repo: str


@dataclass(frozen=True)
class Target:
    """One model version to write into one environment."""

    env: str
    rule: Environment
    ref: ModelRef
    metrics: Mapping[str, float | int | str] = field(default_factory=dict)
    on_merge: bool = False  # a merge reaches a non-auto environment only through a PR

    @property
    def via_pr(self) -> bool:
        return self.rule.via == "pull_request" or (self.on_merge and not self.rule.auto)


@dataclass(frozen=True)
class Result:
    """What happened to one target. ``state``: deployed | proposed | unchanged | skipped | invalid |
    failed | dry-run."""

    env: str
    model: str
    state: str
    detail: str = ""
    ref: ModelRef | None = None
    deploy_commit: str | None = None
    deploy_pr: int | None = None
    diff: str = ""

    @property
    def ok(self) -> bool:
        return self.state not in ("invalid", "failed")


def changed_models(config: RepoConfig, files: Iterable[str]) -> list[ModelSpec]:
    """Models whose file or dataset the PR touched."""
    touched = set(files)
    return [m for m in config.models if m.path in touched or m.dataset.path in touched]


def merge_targets(config: RepoConfig) -> list[tuple[str, Environment]]:
    """Environments a merge writes to: auto ones (commit or PR), and protected ones that are not
    fed by promotion (a PR). An environment with ``upstream`` and ``auto: false`` is reached by
    ``promote`` only."""
    return [(name, env) for name, env in config.environments.items() if env.auto or env.upstream is None]


def flat_metrics(summary: Mapping[str, Any]) -> dict[str, float | int | str]:
    """A review's metrics as one line each: ``{"f1": {"head": 0.9, ...}}`` becomes ``f1: 0.9``."""
    out: dict[str, float | int | str] = {}
    for key, value in (summary.get("metrics") or {}).items():
        if isinstance(value, Mapping):
            value = value.get("head", value.get("value"))
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            out[str(key)] = value
    return out


def iso_seconds(stamp: str | None) -> int:
    if not stamp:
        return int(time.time())
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def render_section(rows: list[Mapping[str, Any]], web_url: str) -> str:
    """The sticky Deploy comment: the newest state of each (environment, model) of this PR."""
    lines = [
        MARK,
        "### Modelship · Deploy",
        "",
        "| Environment | Model | Version | State | Where |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        where = ""
        if row["deploy_commit"]:
            where = f"[{row['deploy_commit'][:7]}]({web_url}/{row['deploy_repo']}/commit/{row['deploy_commit']})"
        elif row["deploy_pr"]:
            where = f"[{row['deploy_repo']}#{row['deploy_pr']}]({web_url}/{row['deploy_repo']}/pull/{row['deploy_pr']})"
        lines.append(
            f"| `{row['environment']}` | `{row['model']}` | `{row['version'][:7]}` ({row['variant']}) "
            f"| {_STATE_LABEL.get(row['state'], row['state'])} | {where} |"
        )
    problems = [r for r in rows if r["detail"] and r["state"] in ("failed", "skipped")]
    for row in problems:
        lines += ["", f"**{row['environment']} / {row['model']}** — {row['state']}:", "", row["detail"]]
    return "\n".join(lines) + "\n"


_STATE_LABEL = {
    "deployed": "✅ deployed",
    "pending": "⏳ deploy PR open",
    "failed": "❌ failed",
    "skipped": "⏭️ skipped",
    "superseded": "superseded",
    "rolled_back": "↩️ rolled back",
    "abandoned": "🚫 deploy PR closed unmerged",
}


def describe(results: Iterable[Result], web_url: str, deploy_repo: str) -> str:
    """A chat-ops reply body for the results of one command."""
    out: list[str] = []
    for r in results:
        head = f"**{r.env} / {r.model}**"
        if r.state == "deployed" and r.deploy_commit:
            out.append(f"{head}: committed [{r.deploy_commit[:7]}]({web_url}/{deploy_repo}/commit/{r.deploy_commit}).")
        elif r.state == "proposed" and r.deploy_pr:
            out.append(f"{head}: opened or updated {deploy_repo}#{r.deploy_pr} (protected environment).")
        elif r.state == "dry-run":
            diff = r.diff.strip() or "(no change: nothing would be written)"
            note = f" ({r.detail})" if r.detail and r.detail != "update" else ""
            out.append(
                f"{head}: dry run, nothing was written{note}. The deploy repository would change by:\n\n"
                f"```diff\n{diff}\n```"
            )
        elif r.state == "unchanged":
            out.append(f"{head}: already at this version; nothing to write.")
        else:
            out.append(f"{head}: {r.state} — {r.detail}")
    return "\n\n".join(out) or "Nothing to do."


def _naming(values: tuple[str, ...]) -> str:
    return f" ({', '.join(f'`{v}`' for v in values)})" if values else ""


# --------------------------------------------------------------------------- the service


class DeployService:
    def __init__(
        self,
        services: Services,
        *,
        charts_dir: Path,
        web_url: str,
        retry: RetryPolicy | None = None,
        max_attempts: int = 3,
        allowlist: DeployAllowlist | None = None,
    ) -> None:
        chart = charts_dir / "model-server"
        try:
            self.schema: dict[str, Any] = json.loads((chart / "values.schema.json").read_text())
            self.defaults = load_values((chart / "values.yaml").read_text())
        except (OSError, ValueError) as exc:
            raise DeployFailure(f"MODELSHIP_CHARTS_DIR: cannot read the model-server chart in {chart}: {exc}") from exc
        self.chart = chart
        self.services = services
        self.web_url = web_url.rstrip("/")
        self.retry = retry
        self.max_attempts = max_attempts
        self._repos: dict[str, DeployRepo] = {}
        self.allowlist = allowlist or DeployAllowlist.default()  # MODELSHIP_DEPLOY_ALLOWLIST
        self.installations = Installations(services.github, from_table(services.engine))

    # -- collaborators ---------------------------------------------------------------------------

    async def target_repo(self, model_repo: str, model_installation: int, deploy_name: str) -> tuple[DeployRepo, int]:
        """The deploy repository ``model_repo`` may use, with its installation; DeployFailure naming the rule
        (bot.deploy.tenancy) otherwise. Every read and write of a deploy repository comes through here."""
        deploy_installation = await self.installations(deploy_name)
        refusal = decide(model_repo, model_installation, deploy_name, deploy_installation, self.allowlist)
        if refusal is not None:
            log.warning("deploy from %s to %s refused (%s): %s", model_repo, deploy_name, refusal.rule, refusal)
            raise DeployFailure(str(refusal))
        assert deploy_installation is not None
        return await self.deploy_repo(deploy_name, deploy_installation), deploy_installation

    async def deploy_repo(self, full_name: str, installation_id: int) -> DeployRepo:
        repo = self._repos.get(full_name)
        if repo is None:
            github = self.services.github
            workdir = self.services.data_dir / "deploy" / full_name.replace("/", "__")
            repo = DeployRepo(
                await github.clone_url(full_name, installation_id),
                workdir,
                token=github.git_token(installation_id),
                author_name=self.services.bot_login,
                author_email=f"{self.services.bot_login}@users.noreply.github.com",
                retry=self.retry,
            )
            self._repos[full_name] = repo
        return repo

    # -- reading the model repository ------------------------------------------------------------

    async def config_at(self, gh: GitHubAPI, repo: str, ref: str) -> RepoConfig | None:
        config = await read_repo_config(gh, repo, ref, deploy_root=self.services.deploy_root)
        if isinstance(config, RepoConfigError):
            raise config
        return config

    async def model_ref(
        self,
        gh: GitHubAPI,
        repo: str,
        spec: ModelSpec,
        *,
        revision: str,
        review_sha: str | None,
        number: int | None,
        sequence: int,
        variant: str | None = None,
    ) -> tuple[ModelRef, dict[str, float | int | str]]:
        """The immutable reference: sha256 and variant from the review when there is one, else the
        sha256 of the bytes at ``revision`` (hashed here, never loaded)."""
        reviewed = await self._reviewed(repo, number, review_sha, spec.name) if number is not None else {}
        sha256 = reviewed.get("model_sha256") if reviewed.get("model_path", spec.path) == spec.path else None
        if not sha256:
            data = await read_bytes(gh, repo, spec.path, revision)
            if data is None:
                raise DeployFailure(f"`{spec.path}` (model `{spec.name}`) does not exist at {revision[:7]}")
            sha256 = hashlib.sha256(data).hexdigest()
        chosen = str(reviewed.get("variant") or "original") if variant is None else variant
        if chosen != "original":
            # The server loads the variant file, so the pinned hash must be the variant's own: only the
            # variant the review kept (and hashed) can ship. `--variant fp32|int8` names its family.
            kept = str(reviewed.get("variant") or "")
            matches = kept == chosen or kept in VARIANT_FAMILIES.get(chosen, ())
            if not matches or not reviewed.get("variant_sha256"):
                raise DeployFailure(
                    f"no reviewed `{chosen}` variant of model `{spec.name}` at {revision[:7]}: comment "
                    "`/modelship optimize` to produce it, or deploy `--variant original`"
                )
            chosen, sha256 = kept, reviewed["variant_sha256"]
        ref = ModelRef(
            name=spec.name,
            repository=repo,
            revision=revision,
            path=spec.path,
            sha256=str(sha256),
            variant=chosen,
            sequence=sequence,
            source_pr=number,
        )
        return ref, flat_metrics(reviewed)

    async def _reviewed(self, repo: str, number: int, head_sha: str | None, model: str) -> dict[str, Any]:
        query = select(REVIEWS.c.head_sha, REVIEWS.c.summary).where(REVIEWS.c.repo == repo, REVIEWS.c.number == number)
        async with self.services.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(REVIEWS.c.id.desc()))).all()
        row = next((r for r in rows if r.head_sha == head_sha), rows[0] if rows else None)
        if row is None:
            return {}
        found = ((row.summary or {}).get("models") or {}).get(model)
        return dict(found) if isinstance(found, Mapping) else {}

    # -- writing ---------------------------------------------------------------------------------

    async def write(
        self,
        gh: GitHubAPI,
        repo: str,
        config: RepoConfig,
        target: Target,
        *,
        installation_id: int,
        actor: str,
        action: str = "deploy",
        dry_run: bool = False,
        reason: str | None = None,
    ) -> Result:
        """Plan and write one target: a commit, a deploy-repo PR, or (dry run) the diff."""
        assert config.deploy is not None
        deploy_name = config.deploy.repository
        ref, env = target.ref, target.env
        path = values_path(env, ref.name, config.deploy.path_template)
        plans: list[Plan] = []

        def edit(text: str | None) -> str | None:
            # Helm itself judges the new values (schema with Go's regexps, templates): it runs here, in
            # the deploy repository's worker thread, before anything is committed or proposed.
            plan = plan_deploy(text, ref, env=env)
            plans.append(plan)
            if plan.text is not None:
                check_values(self.chart, plan.text)
            return plan.text

        source_url = f"{self.web_url}/{ref.repository}/pull/{ref.source_pr}" if ref.source_pr else None
        message = commit_message(
            ref, env, action=action, source_pr_url=source_url, metrics=target.metrics, actor=actor, reason=reason
        )
        deploy, deploy_installation = await self.target_repo(repo, installation_id, deploy_name)
        try:
            if dry_run:
                diff = await deploy.preview({path: edit})
                return Result(env, ref.name, "dry-run", plans[-1].reason if plans else "", ref, diff=diff)
            if target.via_pr:
                return await self._propose(deploy, deploy_name, deploy_installation, target, path, edit, message, plans)
            done = await deploy.commit({path: edit}, message)
        except HelmRefused as exc:
            detail = (
                f"Helm refused to render charts/model-server with the values for `{path}` in `{deploy_name}`"
                f"{_naming(exc.refusal.values)}, so nothing was committed:\n```\n{exc.refusal.message}\n```"
            )
            return Result(env, ref.name, "invalid", detail, ref)
        except ManifestError as exc:
            problems = "\n".join(f"- `{p.replace('`', chr(39))}`" for p in exc.problems)
            detail = (
                f"the values for `{path}` in `{deploy_name}` would violate the chart's schema "
                f"(charts/model-server/values.schema.json), so nothing was committed:\n{problems}"
            )
            return Result(env, ref.name, "invalid", detail, ref)
        if done.changed:
            return Result(env, ref.name, "deployed", "", ref, deploy_commit=done.sha)
        return _not_written(env, ref, plans)

    async def _propose(
        self,
        deploy: DeployRepo,
        deploy_name: str,
        deploy_installation: int,
        target: Target,
        path: str,
        edit: Edit,
        message: str,
        plans: list[Plan],
    ) -> Result:
        ref = target.ref
        branch = pr_branch_name(target.env, ref.name)
        done = await deploy.open_or_update_pr_branch(branch, {path: edit}, message)
        if plans and not plans[-1].changed and plans[-1].reason != "unchanged":
            return _not_written(target.env, ref, plans)
        deploy_gh = await self.services.github.for_installation(deploy_installation)
        number = await ensure_pull(deploy_gh, deploy_name, branch, deploy.branch, message)
        if number is None:
            return _not_written(target.env, ref, plans)
        state = "proposed" if done.changed else "unchanged"
        return Result(target.env, ref.name, state, "", ref, deploy_pr=number)

    # -- records ---------------------------------------------------------------------------------

    async def record(self, gh: GitHubAPI, repo: str, deploy_repo: str, result: Result, actor: str) -> None:
        """Write the history row and the GitHub Deployment for a result worth remembering."""
        ref = result.ref
        if ref is None or result.state in ("unchanged", "dry-run"):
            if ref is not None and result.state == "unchanged":
                await self._ensure_github_deployment(gh, repo, deploy_repo, result)
            return
        state = {"deployed": "deployed", "proposed": "pending", "invalid": "failed"}.get(result.state, result.state)
        async with self.services.engine.begin() as conn:
            latest = await _latest(conn, repo, result.env, ref.name)
            if (
                latest is not None
                and (latest.state, latest.version, latest.detail)
                == (
                    state,
                    ref.revision,
                    result.detail or None,
                )
                and state != "deployed"
            ):
                return  # the same skip or failure again (a redelivery): say it once
            if state == "deployed":
                await conn.execute(
                    update(DEPLOYMENTS)
                    .where(
                        DEPLOYMENTS.c.repo == repo,
                        DEPLOYMENTS.c.environment == result.env,
                        DEPLOYMENTS.c.model == ref.name,
                        DEPLOYMENTS.c.state == "deployed",
                    )
                    .values(state="superseded")
                )
            await conn.execute(
                DEPLOYMENTS.insert().values(
                    repo=repo,
                    environment=result.env,
                    model=ref.name,
                    version=ref.revision,
                    source_pr=ref.source_pr,
                    deploy_repo=deploy_repo,
                    deploy_commit=result.deploy_commit,
                    deploy_pr=result.deploy_pr,
                    variant=ref.variant,
                    sha256=ref.sha256,
                    actor=actor,
                    state=state,
                    pinned=ref.pinned,
                    detail=result.detail or None,
                )
            )
        if state in ("deployed", "pending", "failed"):
            await self._ensure_github_deployment(gh, repo, deploy_repo, result)

    async def _ensure_github_deployment(self, gh: GitHubAPI, repo: str, deploy_repo: str, result: Result) -> None:
        """One GitHub Deployment per history row, created once (a retried job finishes the job)."""
        ref = result.ref
        assert ref is not None
        async with self.services.engine.connect() as conn:
            row = await _latest(conn, repo, result.env, ref.name, version=ref.revision)
        if row is None or row.github_deployment_id is not None or row.state not in ("deployed", "pending", "failed"):
            return
        created = await gh.post(
            f"/repos/{repo}/deployments",
            data={
                "ref": ref.revision,
                "environment": result.env,
                "auto_merge": False,
                "required_contexts": [],
                "description": f"{ref.name} {ref.short} ({ref.variant})"[:140],
                "payload": {"model": ref.name, "deploy_repository": deploy_repo, "sha256": ref.sha256},
                "production_environment": result.env == "production",
            },
        )
        deployment_id = int(created["id"])
        statuses = f"/repos/{repo}/deployments/{deployment_id}/statuses"
        if row.state == "deployed" and row.deploy_commit:
            commit_url = f"{self.web_url}/{deploy_repo}/commit/{row.deploy_commit}"
            await gh.post(statuses, data={"state": "in_progress", "log_url": commit_url})
            await gh.post(
                statuses,
                data={
                    "state": "success",
                    "log_url": commit_url,
                    "environment_url": commit_url,
                    "description": f"committed {row.deploy_commit[:7]} to {deploy_repo}",
                },
            )
        elif row.state == "pending" and row.deploy_pr:
            pr_url = f"{self.web_url}/{deploy_repo}/pull/{row.deploy_pr}"
            await gh.post(
                statuses,
                data={
                    "state": "queued",
                    "log_url": pr_url,
                    "description": f"waiting for {deploy_repo}#{row.deploy_pr}",
                },
            )
        else:
            await gh.post(statuses, data={"state": "failure", "description": (row.detail or "failed")[:140]})
        async with self.services.engine.begin() as conn:
            await conn.execute(
                update(DEPLOYMENTS).where(DEPLOYMENTS.c.id == row.id).values(github_deployment_id=deployment_id)
            )

    async def update_sticky(self, gh: GitHubAPI, repo: str, number: int) -> None:
        async with self.services.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        select(DEPLOYMENTS)
                        .where(DEPLOYMENTS.c.repo == repo, DEPLOYMENTS.c.source_pr == number)
                        .order_by(DEPLOYMENTS.c.id)
                    )
                )
                .mappings()
                .all()
            )
        newest: dict[tuple[str, str], Any] = {}
        for row in rows:
            newest[(row["environment"], row["model"])] = row
        if newest:
            body = render_section(list(newest.values()), self.web_url)
            await upsert_sticky(gh, repo, number, MARK, body, bot_login=self.services.bot_login)

    # -- flows -----------------------------------------------------------------------------------

    async def on_merge(self, job: ClaimedJob) -> None:
        """The deploy job: write every auto (and protected) environment for the models the PR changed."""
        request = MergeRequest(**job.payload)
        gh = await self.services.github.for_installation(request.installation_id)
        try:
            config = await self.config_at(gh, request.repo, request.base_sha)
        except RepoConfigError as exc:
            log.info("deploy of %s#%s skipped: %s", request.repo, request.number, exc)
            return
        if config is None or config.deploy is None:
            return
        files = [
            f["filename"] async for f in gh.getiter(f"/repos/{request.repo}/pulls/{request.number}/files?per_page=100")
        ]
        targets: list[Target] = []
        results: list[Result] = []
        for spec in changed_models(config, files):
            try:
                ref, metrics = await self.model_ref(
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
                ref = ModelRef(
                    spec.name,
                    request.repo,
                    request.merge_sha,
                    spec.path,
                    "",
                    "original",
                    request.merged_at,
                    request.number,
                )
                results += [_failed(env, spec.name, str(exc), ref) for env, _ in merge_targets(config)]
                continue
            targets += [Target(env, rule, ref, metrics, on_merge=True) for env, rule in merge_targets(config)]
        if await _held(self.services, request.repo, request.number):
            results += [_on_hold(t) for t in targets]
            targets = []
        deploy_name = config.deploy.repository
        for result in results:
            await self.record(gh, request.repo, deploy_name, result, request.actor)
        last_attempt = job.attempts >= job.max_attempts
        for target in targets:
            try:
                result = await self.write(
                    gh, request.repo, config, target, installation_id=request.installation_id, actor=request.actor
                )
            except (DeployError, DeployFailure, GitHubException, OSError) as exc:
                if not last_attempt and not isinstance(exc, DeployFailure):
                    raise TransientError(f"deploy of {target.ref.name} to {target.env} failed: {exc}") from exc
                detail = str(exc)
                if not isinstance(exc, DeployFailure):
                    detail += (
                        f" — the deploy job tried {job.attempts} times and gave up; nothing was written. "
                        f"Once the deploy repository is reachable, comment `/modelship deploy {target.env}` on a PR "
                        "or merge again"
                    )
                result = _failed(target.env, target.ref.name, detail, target.ref)
            # Recorded at once: a later target's failure retries the job, and by then this one is "unchanged".
            await self.record(gh, request.repo, deploy_name, result, request.actor)
        await self.update_sticky(gh, request.repo, request.number)

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
    ) -> list[Result]:
        """``deploy <env>``: the PR's head, for the models it changes (ordered by the time of the deploy)."""
        rule = _rule(config, env)
        pull = await gh.getitem(f"/repos/{repo}/pulls/{number}")
        head = str(pull["head"]["sha"])
        if await _held(self.services, repo, number):
            raise DeployFailure("this PR is on hold: comment `/modelship unhold` first")
        files = [f["filename"] async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")]
        specs = changed_models(config, files)
        if not specs:
            raise DeployFailure(
                f"this PR changes no model or dataset listed in `{CONFIG_PATH}`, so there is nothing to deploy"
            )
        results = []
        for spec in specs:
            ref, metrics = await self.model_ref(
                gh,
                repo,
                spec,
                revision=head,
                review_sha=head,
                number=number,
                sequence=int(time.time()),
                variant=variant,
            )
            results.append(
                await self.write(
                    gh,
                    repo,
                    config,
                    Target(env, rule, ref, metrics),
                    installation_id=installation_id,
                    actor=actor,
                    dry_run=dry_run,
                )
            )
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
        rule = _rule(config, env)
        assert config.deploy is not None
        if rule.upstream is None:
            raise DeployFailure(f"`environments.{env}.upstream` is not set in `{CONFIG_PATH}`: nothing to promote from")
        deploy_name = config.deploy.repository
        deploy, _ = await self.target_repo(repo, installation_id, deploy_name)
        results: list[Result] = []
        for spec in config.models:
            upstream_path = values_path(rule.upstream, spec.name, config.deploy.path_template)
            ref = current_ref(await deploy.read(upstream_path))
            if ref is None:
                results.append(
                    Result(env, spec.name, "skipped", f"nothing is deployed in `{rule.upstream}` ({upstream_path})")
                )
                continue
            if rule.require_healthy_upstream and (health := await self._health(repo, rule.upstream, ref)) != "healthy":
                results.append(
                    Result(
                        env,
                        spec.name,
                        "skipped",
                        f"`{ref.short}` in `{rule.upstream}` is {health}, and "
                        f"`environments.{env}.require_healthy_upstream` asks for healthy",
                        ref,
                    )
                )
                continue
            target = Target(env, rule, ref)
            reason = f"Promoted from {rule.upstream} by {actor}."
            results.append(
                await self.write(
                    gh,
                    repo,
                    config,
                    target,
                    installation_id=installation_id,
                    actor=actor,
                    action="promote",
                    dry_run=dry_run,
                    reason=reason,
                )
            )
        await self._finish(gh, repo, number, config, results, actor)
        return results

    async def unpin(
        self, gh: GitHubAPI, repo: str, config: RepoConfig, env: str, *, installation_id: int, actor: str
    ) -> list[Result]:
        """``unpin <env>``: lift the pin (one commit per pinned model) so merges roll forward again."""
        _rule(config, env)
        assert config.deploy is not None
        deploy_name = config.deploy.repository
        deploy, _ = await self.target_repo(repo, installation_id, deploy_name)
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
            results.append(
                Result(env, spec.name, state, "unpinned", ref, deploy_commit=done.sha if done.changed else None)
            )
        return results

    async def _finish(
        self, gh: GitHubAPI, repo: str, number: int | None, config: RepoConfig, results: list[Result], actor: str
    ) -> None:
        assert config.deploy is not None
        for result in results:
            await self.record(gh, repo, config.deploy.repository, result, actor)
        if all(r.state == "dry-run" for r in results):
            return
        # The PR that shipped a version hears about it too (a promotion is often asked for elsewhere).
        shipped = {r.ref.source_pr for r in results if r.ref is not None and r.ref.repository == repo}
        for pr in sorted(n for n in {number, *shipped} if n is not None):
            await self.update_sticky(gh, repo, pr)

    async def _health(self, repo: str, env: str, ref: ModelRef) -> str:
        async with self.services.engine.connect() as conn:
            row = await _latest(conn, repo, env, ref.name, version=ref.revision)
        return row.health if row is not None else "unknown (no deployment record)"


def _rule(config: RepoConfig, env: str) -> Environment:
    if config.deploy is None:
        raise DeployFailure(f"`{CONFIG_PATH}` has no `deploy: {{repository: owner/name}}` section")
    rule = config.environments.get(env)
    if rule is None:
        known = ", ".join(f"`{e}`" for e in config.environments) or "none"
        raise DeployFailure(f"`environments.{env}` is not in `{CONFIG_PATH}` (environments: {known})")
    return rule


def _not_written(env: str, ref: ModelRef, plans: list[Plan]) -> Result:
    reason = plans[-1].reason if plans else "unchanged"
    if reason == "unchanged":
        return Result(env, ref.name, "unchanged", "", ref)
    if reason.startswith("pinned"):
        reason += f" (comment `/modelship unpin {env}`)"
    return Result(env, ref.name, "skipped", reason, ref)


def _on_hold(target: Target) -> Result:
    why = f"the PR is on hold: comment `/modelship unhold`, then `/modelship deploy {target.env}`"
    return Result(target.env, target.ref.name, "skipped", why, target.ref)


def _failed(env: str, model: str, detail: str, ref: ModelRef | None = None) -> Result:
    return Result(env, model, "failed", detail, ref)


async def _latest(conn: AsyncConnection, repo: str, env: str, model: str, *, version: str | None = None) -> Any:
    query = select(DEPLOYMENTS).where(
        DEPLOYMENTS.c.repo == repo, DEPLOYMENTS.c.environment == env, DEPLOYMENTS.c.model == model
    )
    if version is not None:
        query = query.where(DEPLOYMENTS.c.version == version)
    return (await conn.execute(query.order_by(DEPLOYMENTS.c.id.desc()).limit(1))).first()


async def _held(services: Services, repo: str, number: int) -> bool:
    from bot.chatops.store import is_held

    return await is_held(services.engine, repo, number)


# --------------------------------------------------------------------------- GitHub reads


async def read_bytes(gh: GitHubAPI, repo: str, path: str, ref: str) -> bytes | None:
    try:
        return await read_file(gh, repo, path, ref)
    except ContentsError as exc:
        raise DeployFailure(f"{exc} at {ref[:7]}") from exc


async def ensure_pull(gh: GitHubAPI, repo: str, branch: str, base: str, message: str) -> int | None:
    """The open PR for ``branch`` in the deploy repository, opened (or retitled) from ``message``; None: no diff."""
    owner = repo.split("/", 1)[0]
    title, _, rest = message.partition("\n")
    body = rest.strip() or title
    async for pull in gh.getiter(f"/repos/{repo}/pulls?state=open&head={quote(f'{owner}:{branch}', safe='')}"):
        number = int(pull["number"])
        # The branch now carries a newer version: the PR must say so too, not only its latest commit.
        if pull.get("title") != title or (pull.get("body") or "") != body:
            await gh.patch(f"/repos/{repo}/pulls/{number}", data={"title": title, "body": body})
        return number
    try:
        created = await gh.post(
            f"/repos/{repo}/pulls", data={"title": title, "head": branch, "base": base, "body": body}
        )
    except BadRequest as exc:
        if exc.status_code == 422 and "No commits between" in f"{exc} {getattr(exc, 'errors', '')}":
            return None
        raise
    return int(created["number"])


# --------------------------------------------------------------------------- wiring


async def enqueue_merge(conn: AsyncConnection, request: MergeRequest, *, max_attempts: int = 3) -> None:
    """Queue the deploy job under the PR's sub-key (``/modelship status`` lists it). Git work on one deploy
    repository is serialised by DeployRepo's lock, so deploy jobs of different PRs may overlap their
    GitHub calls; ordering by merge time keeps an older version from overwriting a newer one."""
    key = f"{request.repo}#{request.number}:deploy"
    await enqueue(conn, [job_row(KIND, key, payload=asdict(request), max_attempts=max_attempts)])


def of(services: Services) -> DeployService:
    found = services.extras.get(EXTRAS_KEY)
    if not isinstance(found, DeployService):
        raise LookupError("the deploy feature is not set up (bot.deploy.service.setup)")
    return found


def render_status(rows: Iterable[Mapping[str, Any]]) -> str:
    """The Deployments section of `/modelship status`: the newest state of each environment and model."""
    from bot.chatops.status import cell

    newest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in rows:
        newest[(row["environment"], row["model"])] = row
    lines = ["**Deployments**", ""]
    if not newest:
        return "\n".join([*lines, "Nothing deployed from this repository yet.", ""])
    lines += ["| Environment | Model | Version | State | Health | Detail |", "| --- | --- | --- | --- | --- | --- |"]
    for (env, model), row in sorted(newest.items()):
        lines.append(
            f"| {cell(env)} | {cell(model)} | `{row['version'][:7]}` | {row['state']} | {row['health']} "
            f"| {cell(row['detail'], 120)} |"
        )
    return "\n".join(lines) + "\n"  # a blank line ends the table before the next section


async def status_rows(services: Services, repo: str) -> list[Any]:
    async with services.engine.connect() as conn:
        query = select(DEPLOYMENTS).where(DEPLOYMENTS.c.repo == repo).order_by(DEPLOYMENTS.c.id)
        return list((await conn.execute(query)).mappings().all())
