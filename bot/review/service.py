"""The review job: evaluate a PR's base and head models in the sandbox, then keep the sticky comment
and the `modelship/review` check run up to date.

Order matters for safety: policy is read from the BASE commit through the API before any PR content
is fetched; nothing from the PR runs unless the PR is trusted or a maintainer approved its head SHA;
the bot process only moves bytes — models and data are read inside the sandbox alone.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import shutil
import sys
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gidgethub.abc import GitHubAPI

from bot.artifacts.publish import Publication, failure_reason, kept_file, kept_run, publish, write_evidence
from bot.artifacts.registry import OciRegistry
from bot.config.repo import RepoConfig, RepoConfigError
from bot.context import Feature, Services
from bot.errors import Backoff
from bot.github.contents import read_repo_config
from bot.github.sticky import marker, upsert_sticky
from bot.review import report
from bot.review.artifacts import ArtifactPolicy, collect, write_manifest
from bot.review.checkout import CONFIG_FILE, ExportLimits, TreeRefused, fetch_pull_request
from bot.review.compare import ReviewComparison
from bot.review.evaluation import (
    SandboxLimits,
    SandboxMaxima,
    compare_runs,
    make_readable,
    optimization_of,
    review_sandbox_spec,
    run_side,
    sandbox_limits,
    selected_models,
)
from bot.review.integrity import Verified, git_hashes, verify
from bot.review.jobs import KIND, ReviewRequest
from bot.review.optimization import render_optimization
from bot.review.stored import report_to_json
from bot.sandbox.runner import Mount, SandboxResult, SandboxRunner
from bot.store.deployments import deployed_digests
from bot.store.queue import ClaimedJob
from bot.store.reviews import ReviewedModel, ReviewRecord, save_review
from bot.worker import JobFailure
from contract.oci import ArtifactError

log = logging.getLogger(__name__)

CHECK_NAME = "modelship/review"
MARK = marker("review")
assert MARK == report.REVIEW_MARKER


TURNED_OFF = "reviews are turned off on this server: MODELSHIP_SANDBOX=off"


@dataclass(frozen=True)
class SandboxConfig:
    runner: SandboxRunner | None
    image: str
    unavailable_reason: str = ""
    turned_off: bool = False  # MODELSHIP_SANDBOX=off: said in every review's check run and comment
    maxima: SandboxMaxima = field(default_factory=SandboxMaxima)
    export: ExportLimits = field(default_factory=ExportLimits)
    artifacts: ArtifactPolicy = field(default_factory=ArtifactPolicy)


@dataclass(frozen=True)
class _Evaluated:
    comparison: ReviewComparison
    optimization: dict[str, Any] | None
    verified: Verified
    limits: SandboxLimits
    reused: tuple[str, ...] = ()  # a side answered from an identical earlier run (bot.sandbox.reuse)

    @property
    def notes(self) -> tuple[str, ...]:
        return self.limits.notes + self.verified.notes + self.reused

    @property
    def passed(self) -> bool:
        return self.comparison.passed and not self.verified.problems


def reuse_note(side: str, run: SandboxResult) -> str:
    """What the comment says of a side that was not run again (its numbers, latency too, are that run's)."""
    assert run.reused is not None
    return (
        f"ℹ️ The {side} side was not run again: its inputs (tree, config as the sandbox reads it, image and "
        f"limits; sha256 `{run.reused.key[:12]}`) are byte-identical to a run that finished "
        f"{run.reused.age_s:.0f} s earlier, whose result, measured latencies included, is shown."
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changed_under(paths: list[str], changed: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(f, glob) for f in changed for glob in paths)


class ReviewService:
    def __init__(
        self,
        services: Services,
        sandbox: SandboxConfig,
        *,
        retry: Backoff | None = None,
        registry: OciRegistry | None = None,
    ) -> None:
        self.services = services
        self.sandbox = sandbox
        self.registry = registry  # MODELSHIP_REGISTRY: kept variants are published there (None: not published)
        # In-job retries of transient failures (git 5xx, resets): about 8 s of patience before the job fails.
        self.retry = retry or Backoff(attempts=5, base_s=0.5, cap_s=4.0)

    # ------------------------------------------------------------------ job entry point
    async def run_job(self, job: ClaimedJob) -> None:
        request = ReviewRequest.from_payload(job.payload)
        gh = await self.services.github.for_installation(request.installation_id)
        await self.review(gh, request, job_id=job.id)

    async def on_final_failure(self, job: ClaimedJob, failure: JobFailure) -> None:
        """The review job ended without a result: complete its check run and say why in the sticky comment.

        A check run that is already completed keeps its result (this job finished it, or never reopened an
        earlier review's). The comment is left to a newer review when the PR's head has moved on.
        """
        req = ReviewRequest.from_payload(job.payload)
        gh = await self.services.github.for_installation(req.installation_id)
        comment, output = report.render_review_failed(
            head_sha=req.head_sha,
            failure=str(failure.failure),
            error=failure.error,
            job_id=job.id,
            attempts=failure.attempts,
        )
        runs = await self._check_runs(gh, req)
        if runs and runs[0].get("status") == "completed":
            log.info("review job %s ended without a result; check run %s already completed", job.id, runs[0]["id"])
            return
        if runs:
            await self._finish_check(gh, req, int(runs[0]["id"]), output)
        else:
            await self._check(gh, req, output)
        pr = await gh.getitem(f"/repos/{req.repo}/pulls/{req.number}")
        if pr["state"] == "open" and pr["head"]["sha"] == req.head_sha:
            await self._comment(gh, req, comment)

    async def review(self, gh: GitHubAPI, req: ReviewRequest, *, job_id: int) -> None:
        pr = await gh.getitem(f"/repos/{req.repo}/pulls/{req.number}")
        if pr["state"] != "open":
            return  # closed while queued
        if pr["head"]["sha"] != req.head_sha:
            return  # a newer push is queued behind us and supersedes this review
        base_sha = pr["base"]["sha"]
        config = await read_repo_config(gh, req.repo, base_sha, deploy_root=self.services.deploy_root)
        if config is None:
            await self._comment(
                gh,
                req,
                f"{MARK}\nℹ️ **Modelship**: no `{CONFIG_FILE}` on the base branch "
                f"`{pr['base']['ref']}`, so there is nothing to review for head "
                f"`{req.head_sha[:12]}`. Add one (schema: `config/modelship.schema.json`).\n",
            )
            return
        if isinstance(config, RepoConfigError):
            await self._comment(gh, req, report.render_config_error(config.problems, ref=pr["base"]["ref"]))
            await self._check(gh, req, report.render_config_error_check_run(config.problems))
            await self._record(
                req, base_sha, "failure", ReviewRecord(config_error=tuple(str(p) for p in config.problems)), job_id
            )
            return
        if pr.get("draft") and not config.draft and req.trigger == "pull_request":
            return
        if req.trigger == "pull_request":
            files = [f["filename"] async for f in gh.getiter(f"/repos/{req.repo}/pulls/{req.number}/files")]
            if not changed_under(config.review_paths, files):
                return
        if self.sandbox.runner is None:  # nothing would run, trusted or not: say why instead
            await self._not_evaluated(gh, req)
            return
        allowed, why = await self._trusted(gh, req, pr)
        if not allowed:
            await self._comment(
                gh,
                req,
                why
                or report.render_waiting_for_approval(
                    head_sha=req.head_sha, author=pr["user"]["login"], app_slug=self.services.app_slug
                ),
            )
            await self._record(req, base_sha, "waiting", ReviewRecord(), job_id)
            return
        models = [m.name for m in config.models if not req.model or m.name == req.model]
        check_id = await self._check(gh, req, None)
        # From here on a cancellation (a newer push) can land at any await: each must close the check run.
        try:
            await self._comment(gh, req, report.render_in_progress(head_sha=req.head_sha, models=models))
            try:
                done = await self._evaluate(gh, req, pr, config, job_id)
            except TreeRefused as exc:
                # Deterministic (a link out of the tree, over a cap): say so instead of retrying.
                body, output = report.render_tree_refused(str(exc), head_sha=req.head_sha, hint=exc.hint)
                await self._comment(gh, req, body)
                await self._finish_check(gh, req, check_id, output)
                await self._record(req, base_sha, "failure", ReviewRecord(tree_refused=str(exc)), job_id)
                return
            opt_md = render_optimization(done.optimization)
            notes, problems = done.notes, done.verified.problems
            body = report.render_review_comment(
                done.comparison,
                head_sha=req.head_sha,
                base_sha=base_sha,
                optimization=opt_md,
                notes=notes,
                problems=problems,
            )
            summary = self._summary(done, 0, check_id)
            summary, published = await self._publish(req, pr, done, summary, body)
            if published is not None:
                body = report.render_review_comment(
                    done.comparison,
                    head_sha=req.head_sha,
                    base_sha=base_sha,
                    optimization=opt_md,
                    deploy=published,
                    notes=notes,
                    problems=problems,
                )
            comment_id = await self._comment(gh, req, body)
            await self._finish_check(
                gh,
                req,
                check_id,
                report.render_check_run(
                    done.comparison,
                    head_sha=req.head_sha,
                    base_sha=base_sha,
                    optimization=opt_md,
                    notes=notes,
                    problems=problems,
                ),
            )
        except asyncio.CancelledError:
            await asyncio.shield(
                self._finish_check(
                    gh,
                    req,
                    check_id,
                    {
                        "title": "Superseded",
                        "summary": "A newer review of this PR replaced this one.",
                        "text": "",
                        "conclusion": "cancelled",
                    },
                )
            )
            raise
        conclusion = "success" if done.passed else "failure"
        kept = report_to_json(done.comparison, done.optimization, notes, problems)
        await self._record(req, base_sha, conclusion, replace(summary, comment_id=comment_id), job_id, kept)

    # ------------------------------------------------------------------ steps
    async def _not_evaluated(self, gh: GitHubAPI, req: ReviewRequest) -> None:
        """No sandbox on this server: the check run and the comment say so, and who can change it."""
        if self.sandbox.turned_off:
            why = TURNED_OFF
            fix = (
                "An operator turns them on by setting `MODELSHIP_CONTAINER_ENGINE_URL` and removing "
                "`MODELSHIP_SANDBOX=off`."
            )
        else:
            why = f"the evaluation sandbox is not configured on this server ({self.sandbox.unavailable_reason})"
            fix = "An operator must set `MODELSHIP_CONTAINER_ENGINE_URL`."
        await self._comment(gh, req, f"{MARK}\n⚠️ **Modelship**: {why}. {fix}\n")
        await self._check(
            gh,
            req,
            {"title": "Not evaluated", "summary": f"{why}. {fix}", "text": "", "conclusion": "neutral"},
        )

    async def _trusted(self, gh: GitHubAPI, req: ReviewRequest, pr: dict[str, Any]) -> tuple[bool, str | None]:
        from bot.chatops.service import sandbox_allowed

        return await sandbox_allowed(self.services, gh, req.repo, pr)

    async def _evaluate(
        self, gh: GitHubAPI, req: ReviewRequest, pr: dict[str, Any], config: RepoConfig, job_id: int
    ) -> _Evaluated:
        data = self.services.data_dir
        limits = sandbox_limits(config, self.sandbox.maxima)
        policies = selected_models(config, req.model)
        keep_to = self.artifacts(req)
        workdir = data / "work" / f"review-{job_id}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            github = self.services.github
            github.remember_repository(pr["base"].get("repo"))
            checkout = await fetch_pull_request(
                await github.clone_url(req.repo, req.installation_id),
                github.git_token(req.installation_id),
                data / "git" / req.repo.replace("/", "--"),
                workdir,
                base_ref=pr["base"]["ref"],
                base_sha=pr["base"]["sha"],
                head_sha=req.head_sha,
                number=req.number,
                limits=self.sandbox.export,
                retry=self.retry,
                what=f"git fetch of {req.repo}",
            )
            # The bot's own hashes of the committed model files, before the sandbox sees them.
            from_git = await asyncio.to_thread(git_hashes, checkout.head_dir, policies)
            await asyncio.to_thread(make_readable, workdir)
            base_run, head_run = await asyncio.gather(
                self._run_side(config, checkout.base_dir, req.model, limits, optimize=False),
                self._run_side(
                    config,
                    checkout.head_dir,
                    req.model,
                    limits,
                    optimize=req.optimize and config.optimize.onnx,
                    keep_to=keep_to,
                ),
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        comparison = await asyncio.to_thread(compare_runs, config, req.model, base_run, head_run)
        optimization = optimization_of(head_run)
        verified = await asyncio.to_thread(verify, comparison, optimization, policies, from_git, keep_to)
        for problem in verified.problems:
            log.error("review %s#%d %s: %s", req.repo, req.number, req.head_sha[:12], problem)
        await self._collect_artifacts(keep_to)
        reused = tuple(reuse_note(side, run) for side, run in (("base", base_run), ("head", head_run)) if run.reused)
        return _Evaluated(comparison, optimization, verified, limits, reused)

    async def _collect_artifacts(self, kept: Path) -> None:
        """Record the kept run's hashes, then trim old runs to the caps (deployed files stay)."""
        await asyncio.to_thread(write_manifest, kept)
        async with self.services.engine.connect() as conn:
            deployed = await deployed_digests(conn)
        await asyncio.to_thread(collect, kept.parent.parent, deployed, self.sandbox.artifacts, keep=kept)

    def artifacts(self, req: ReviewRequest) -> Path:
        """Where a head's optimized variants are kept, so that deploy can ship exactly the chosen file."""
        return kept_run(self.services.data_dir, req.repo, req.head_sha)

    async def _publish(
        self, req: ReviewRequest, pr: dict[str, Any], done: _Evaluated, summary: ReviewRecord, body: str
    ) -> tuple[ReviewRecord, str | None]:
        """Push each kept variant (the one deploy would ship) with its evidence; the bot pushes, never the
        sandbox. A refusal or an outage is recorded and said in the comment, never fatal to the review:
        deploy publishes from the same kept files later, or fails visibly."""
        if self.registry is None:
            return summary, None
        models = dict(summary.models)
        published: dict[str, tuple[str, str | None, str | None]] = {}
        run = self.artifacts(req)
        source = str((pr["base"].get("repo") or {}).get("html_url") or "")
        comparisons = {m.name: m for m in done.comparison.models}
        optimized = {str(m.get("name")): m for m in (done.optimization or {}).get("models", []) if isinstance(m, dict)}
        for name, model in summary.models.items():
            if not model.variant_artifact or not model.variant_sha256:
                continue  # nothing kept (original, or a void review): there are no reviewed bytes to publish
            created = _now()
            verdict = "passed" if model.gates_passed else "failed"
            file = kept_file(self.services.data_dir, req.repo, req.head_sha, model.variant_artifact)
            reference, why = None, None
            if file is None:
                why = f"the kept file {model.variant_artifact} is missing"
            else:
                evidence = await asyncio.to_thread(
                    write_evidence,
                    run,
                    name,
                    {
                        "repository": req.repo,
                        "pull_request": req.number,
                        "head_sha": req.head_sha,
                        "base_sha": pr["base"]["sha"],
                        "model": name,
                        "verdict": verdict,
                        "reviewed": asdict(model),
                        "comparison": asdict(comparisons[name]) if name in comparisons else None,
                        "optimization": optimized.get(name),
                    },
                    body,
                )
                publication = Publication(
                    model_repo=req.repo,
                    source_url=source,
                    model=name,
                    revision=req.head_sha,
                    variant=model.variant,
                    file=file,
                    file_sha256=model.variant_sha256,
                    created=created,
                    pull_request=req.number,
                    verdict=verdict,
                )
                try:
                    reference = (await publish(self.registry, publication, evidence)).reference
                except (ArtifactError, OSError) as exc:  # reported; the review stands
                    why = failure_reason(exc)
                    log.warning("review %s#%d: %s not published: %s", req.repo, req.number, name, why)
            models[name] = replace(model, artifact=reference, artifact_error=why, artifact_created=created)
            published[name] = (model.variant, reference, why)
        rendered = report.render_published(published, self.registry.name)
        return replace(summary, models=models), rendered

    async def _run_side(
        self,
        config: RepoConfig,
        tree: Path,
        only: str | None,
        limits: SandboxLimits,
        *,
        optimize: bool,
        keep_to: Path | None = None,
    ) -> SandboxResult:
        assert self.sandbox.runner is not None
        spec = review_sandbox_spec(config, tree, only, optimize=optimize, image=self.sandbox.image, limits=limits)
        if keep_to is not None:
            spec = replace(spec, keep="variants", keep_to=keep_to)
        return await run_side(self.sandbox.runner, spec, side=tree.name)

    async def _comment(self, gh: GitHubAPI, req: ReviewRequest, body: str) -> int:
        return await upsert_sticky(gh, req.repo, req.number, MARK, body, bot_login=self.services.bot_login)

    async def _check(self, gh: GitHubAPI, req: ReviewRequest, output: dict[str, str] | None) -> int:
        """Create (or find, on a retried job) the check run for this head; complete it when output is given."""
        runs = await self._check_runs(gh, req)
        if runs:
            check_id = int(runs[0]["id"])
            if runs[0].get("status") == "completed" and output is None:
                await gh.patch(
                    f"/repos/{req.repo}/check-runs/{check_id}", data={"status": "in_progress", "started_at": _now()}
                )
        else:
            created = await gh.post(
                f"/repos/{req.repo}/check-runs",
                data={"name": CHECK_NAME, "head_sha": req.head_sha, "status": "in_progress", "started_at": _now()},
            )
            check_id = int(created["id"])
        if output is not None:
            await self._finish_check(gh, req, check_id, output)
        return check_id

    async def _check_runs(self, gh: GitHubAPI, req: ReviewRequest) -> list[dict[str, Any]]:
        existing = await gh.getitem(
            f"/repos/{req.repo}/commits/{req.head_sha}/check-runs?check_name={CHECK_NAME}&per_page=100"
        )
        return [r for r in existing.get("check_runs", []) if r.get("name") == CHECK_NAME]

    async def _finish_check(self, gh: GitHubAPI, req: ReviewRequest, check_id: int, output: dict[str, str]) -> None:
        await gh.patch(
            f"/repos/{req.repo}/check-runs/{check_id}",
            data={
                "status": "completed",
                "conclusion": output["conclusion"],
                "completed_at": _now(),
                "output": {"title": output["title"], "summary": output["summary"], "text": output.get("text", "")},
            },
        )

    def _summary(self, done: _Evaluated, comment_id: int, check_id: int) -> ReviewRecord:
        """What deploy builds on. Every hash here is the bot's own (integrity.verify), never the sandbox's."""
        void = bool(done.verified.problems)
        models = {}
        for model in done.comparison.models:
            pinned = None if void else done.verified.models.get(model.name)
            kept = pinned is not None and bool(pinned.variant_artifact)
            models[model.name] = ReviewedModel(
                status=model.status,
                metrics={r.name: r.head for r in model.metrics if r.head is not None},
                gates_passed=not void and all(g.status != "fail" for g in model.gates),
                failed_gates=tuple(f"{g.metric} {g.rule}: {g.reason}" for g in model.gates if g.status == "fail"),
                model_path=model.head.model_path if model.head else None,
                model_sha256=pinned.model_sha256 if pinned else None,
                variant=pinned.variant if pinned and kept else "original",
                variant_sha256=(pinned.variant_sha256 if kept else pinned.model_sha256) if pinned else None,
                variant_artifact=pinned.variant_artifact if pinned and kept else None,
            )
        return ReviewRecord(
            models=models,
            comment_id=comment_id,
            check_run_id=check_id,
            verification_failed=tuple(done.verified.problems),
        )

    async def _record(
        self,
        req: ReviewRequest,
        base_sha: str,
        conclusion: str,
        record: ReviewRecord,
        job_id: int,
        kept: dict[str, Any] | None = None,
    ) -> None:
        await save_review(
            self.services.engine,
            repo=req.repo,
            number=req.number,
            head_sha=req.head_sha,
            base_sha=base_sha,
            conclusion=conclusion,
            record=record,
            report=kept,
        )
        if conclusion not in ("success", "failure"):
            return  # waiting for ok-to-test: no verdict yet
        failed = [gate for m in record.models.values() for gate in m.failed_gates]
        problems = [*record.config_error, *([record.tree_refused] if record.tree_refused else [])]
        data = {
            "repo": req.repo,
            "number": req.number,
            "head_sha": req.head_sha,
            "base_sha": base_sha,
            "passed": conclusion == "success",
            "failed_gates": failed,
            "problems": [*problems, *record.verification_failed][:10],
            "models": sorted(record.models),
        }
        async with self.services.engine.begin() as conn:
            # Keyed by the job: a retried job is the same event, a new review of the same head a new one.
            await self.services.emit(
                conn, "review.finished", f"review:{req.repo}#{req.number}@{req.head_sha}:{job_id}", data
            )


def feature(services: Services, sandbox: SandboxConfig, registry: OciRegistry | None = None) -> Feature:
    """The `review` job runner, in the sandbox and with the registry the composition root built (bot.app)."""
    review = ReviewService(services, sandbox, registry=registry)
    return Feature(runners={KIND: review.run_job}, on_final_failure={KIND: review.on_final_failure})


class SandboxUnavailable(Exception):
    """The configured container engine cannot be used; the message names the setting."""


def make_sandbox(settings: Any, source_root: Path, registry: Any = None) -> SandboxConfig:
    """The sandbox from settings; ``source_root`` holds pipelines/ for the local runner image
    (bot.settings.SOURCE_ROOT, passed by bot.app); ``registry`` (an OciRegistry) carries the review
    inputs to the Kubernetes backend."""
    if settings.sandbox == "off":
        return SandboxConfig(None, settings.sandbox_image, TURNED_OFF, turned_off=True)
    if getattr(settings, "sandbox_backend", "docker") == "kubernetes":
        return _kubernetes_sandbox(settings, registry)
    if not settings.container_engine_url:
        return SandboxConfig(None, settings.sandbox_image, "no container engine URL is set")
    import docker.errors

    from bot.sandbox.docker_engine import DockerEngineRunner, connect

    try:
        client = connect(settings.container_engine_url)  # asks the engine for its API version
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(
            f"MODELSHIP_CONTAINER_ENGINE_URL: cannot reach the container engine at {settings.container_engine_url} "
            f"({type(exc).__name__}); start it (here: scripts/podman-service.sh) or fix the URL"
        ) from None

    mounts: tuple[Mount, ...] = ()
    if settings.sandbox_mount_runtime:
        from bot.sandbox.local_image import LocalRuntime

        mounts = LocalRuntime.discover(Path(sys.prefix), source_root).mounts()
    maxima, export, artifacts, limits = sandbox_policy(settings)
    runner = _reusing(settings, DockerEngineRunner(client, runtime_mounts=mounts, limits=limits))
    return SandboxConfig(runner, settings.sandbox_image, maxima=maxima, export=export, artifacts=artifacts)


def _reusing(settings: Any, runner: SandboxRunner) -> SandboxRunner:
    """Identical runs (the same base tree, config, image and limits of many PRs) answered from the first one."""
    seconds = float(getattr(settings, "sandbox_reuse_seconds", 0.0))
    if not seconds:
        return runner
    from bot.sandbox.reuse import ReusingRunner

    return ReusingRunner(runner, ttl_s=seconds)


def _kubernetes_sandbox(settings: Any, registry: Any) -> SandboxConfig:
    import socket

    from kubernetes.config.config_exception import ConfigException

    from bot.sandbox.kube_jobs import KubeSandboxSettings
    from bot.sandbox.kube_runner import KubernetesJobRunner, connect

    if registry is None:
        raise SandboxUnavailable(
            "MODELSHIP_SANDBOX_BACKEND=kubernetes needs MODELSHIP_REGISTRY: the review inputs reach the sandbox "
            "pod as an image layer pulled from it"
        )
    try:
        clients = connect(settings.kubernetes_kubeconfig)
    except (ConfigException, OSError, ValueError) as exc:
        where = settings.kubernetes_kubeconfig or "the in-cluster service account"
        raise SandboxUnavailable(
            f"MODELSHIP_KUBERNETES_KUBECONFIG: cannot load a Kubernetes configuration from {where} ({exc}); "
            "set it to a kubeconfig file or run the bot in a pod"
        ) from None
    maxima, export, artifacts, limits = sandbox_policy(settings)
    runner = KubernetesJobRunner(
        clients,
        registry,
        inputs_base=settings.kubernetes_inputs_image or settings.sandbox_image,
        owner=settings.kubernetes_instance or socket.gethostname(),
        settings=KubeSandboxSettings(
            namespace=settings.kubernetes_namespace,
            runtime_class=settings.kubernetes_runtime_class,
            out_bytes=settings.sandbox_out_max_bytes or 512 * 1024 * 1024,
            keep_bytes=settings.sandbox_keep_max_bytes,
            keep_files=settings.sandbox_keep_max_files,
        ),
        limits=limits,
    )
    return SandboxConfig(
        _reusing(settings, runner), settings.sandbox_image, maxima=maxima, export=export, artifacts=artifacts
    )


def sandbox_policy(settings: Any) -> tuple[SandboxMaxima, ExportLimits, ArtifactPolicy, Any]:
    """The operator's sandbox caps, from settings."""
    from bot.sandbox.docker_engine import OutputLimits

    return (
        SandboxMaxima(
            cpus=settings.sandbox_max_cpus,
            memory_bytes=settings.sandbox_max_memory_bytes,
            timeout_s=settings.sandbox_max_timeout_seconds,
        ),
        ExportLimits(max_bytes=settings.sandbox_export_max_bytes, max_files=settings.sandbox_export_max_files),
        ArtifactPolicy(max_bytes=settings.artifacts_max_bytes, max_runs=settings.artifacts_max_runs),
        OutputLimits(
            out_bytes=settings.sandbox_out_max_bytes,
            out_files=settings.sandbox_out_max_files,
            keep_bytes=settings.sandbox_keep_max_bytes,
            keep_files=settings.sandbox_keep_max_files,
        ),
    )
