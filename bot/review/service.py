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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gidgethub.abc import GitHubAPI

from bot.context import Services
from bot.repoconfig import RepoConfig, RepoConfigError
from bot.review import report
from bot.review.checkout import CONFIG_FILE, fetch_pull_request
from bot.review.compare import ReviewComparison
from bot.review.evaluation import compare_runs, make_readable, optimization_of, review_sandbox_spec, run_side
from bot.review.jobs import KIND, ReviewRequest
from bot.review.optimization import render_optimization
from bot.sandbox.runner import Mount, SandboxResult, SandboxRunner
from bot.services.repo_config import read_repo_config
from bot.services.sticky import marker, upsert_sticky
from bot.store.queue import ClaimedJob
from bot.store.review_models import Review

log = logging.getLogger(__name__)

CHECK_NAME = "modelship/review"
MARK = marker("review")
assert MARK == report.REVIEW_MARKER


SANDBOX_KEY = "sandbox"  # Services.extras[...]: the SandboxConfig reviews run in (bot.doctor probes it)
TURNED_OFF = "reviews are turned off on this server: MODELSHIP_SANDBOX=off"


@dataclass(frozen=True)
class SandboxConfig:
    runner: SandboxRunner | None
    image: str
    unavailable_reason: str = ""
    turned_off: bool = False  # MODELSHIP_SANDBOX=off: said in every review's check run and comment


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changed_under(paths: list[str], changed: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(f, glob) for f in changed for glob in paths)


class ReviewService:
    def __init__(self, services: Services, sandbox: SandboxConfig) -> None:
        self.services = services
        self.sandbox = sandbox

    # ------------------------------------------------------------------ job entry point
    async def run_job(self, job: ClaimedJob) -> None:
        request = ReviewRequest.from_payload(job.payload)
        gh = await self.services.github.for_installation(request.installation_id)
        await self.review(gh, request, job_id=job.id)

    async def review(self, gh: GitHubAPI, req: ReviewRequest, *, job_id: int) -> None:
        pr = await gh.getitem(f"/repos/{req.repo}/pulls/{req.number}")
        if pr["state"] != "open":
            return  # closed while queued
        if pr["head"]["sha"] != req.head_sha:
            return  # a newer push is queued behind us and supersedes this review
        base_sha = pr["base"]["sha"]
        config = await read_repo_config(gh, req.repo, base_sha)
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
            await self._record(req, base_sha, "failure", {"config_error": [str(p) for p in config.problems]})
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
            await self._record(req, base_sha, "waiting", {})
            return
        models = [m.name for m in config.models if not req.model or m.name == req.model]
        check_id = await self._check(gh, req, None)
        # From here on a cancellation (a newer push) can land at any await: each must close the check run.
        try:
            await self._comment(gh, req, report.render_in_progress(head_sha=req.head_sha, models=models))
            comparison, optimization = await self._evaluate(gh, req, pr, config, job_id)
            opt_md = render_optimization(optimization)
            body = report.render_review_comment(
                comparison, head_sha=req.head_sha, base_sha=base_sha, optimization=opt_md
            )
            comment_id = await self._comment(gh, req, body)
            await self._finish_check(
                gh,
                req,
                check_id,
                report.render_check_run(comparison, head_sha=req.head_sha, base_sha=base_sha, optimization=opt_md),
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
        await self._record(
            req,
            base_sha,
            "success" if comparison.passed else "failure",
            self._summary(comparison, optimization, comment_id, check_id),
        )

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
    ) -> tuple[ReviewComparison, dict[str, Any] | None]:
        data = self.services.data_dir
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
            )
            await asyncio.to_thread(make_readable, workdir)
            base_run, head_run = await asyncio.gather(
                self._run_side(config, checkout.base_dir, req.model, optimize=False),
                self._run_side(
                    config,
                    checkout.head_dir,
                    req.model,
                    optimize=req.optimize and config.optimize.onnx,
                    keep_to=self.artifacts(req),
                ),
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
        comparison = await asyncio.to_thread(compare_runs, config, req.model, base_run, head_run)
        return comparison, optimization_of(head_run)

    def artifacts(self, req: ReviewRequest) -> Path:
        """Where a head's optimized variants are kept, so that deploy can ship exactly the chosen file."""
        return self.services.data_dir / "artifacts" / req.repo.replace("/", "--") / req.head_sha

    async def _run_side(
        self, config: RepoConfig, tree: Path, only: str | None, *, optimize: bool, keep_to: Path | None = None
    ) -> SandboxResult:
        assert self.sandbox.runner is not None
        spec = review_sandbox_spec(config, tree, only, optimize=optimize, image=self.sandbox.image)
        if keep_to is not None:
            spec = replace(spec, keep="variants", keep_to=keep_to)
        return await run_side(self.sandbox.runner, spec, side=tree.name)

    async def _comment(self, gh: GitHubAPI, req: ReviewRequest, body: str) -> int:
        return await upsert_sticky(gh, req.repo, req.number, MARK, body, bot_login=self.services.bot_login)

    async def _check(self, gh: GitHubAPI, req: ReviewRequest, output: dict[str, str] | None) -> int:
        """Create (or find, on a retried job) the check run for this head; complete it when output is given."""
        existing = await gh.getitem(
            f"/repos/{req.repo}/commits/{req.head_sha}/check-runs?check_name={CHECK_NAME}&per_page=100"
        )
        runs = [r for r in existing.get("check_runs", []) if r.get("name") == CHECK_NAME]
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

    def _summary(
        self, comparison: ReviewComparison, optimization: dict[str, Any] | None, comment_id: int, check_id: int
    ) -> dict[str, Any]:
        chosen = {m["name"]: m.get("chosen") for m in (optimization or {}).get("models", []) if m.get("chosen")}
        models = {}
        for model in comparison.models:
            head = model.head
            entry: dict[str, Any] = {
                "status": model.status,
                "metrics": {r.name: r.head for r in model.metrics if r.head is not None},
                "gates_passed": all(g.status != "fail" for g in model.gates),
                "model_path": head.model_path if head else None,
                "model_sha256": head.model_sha256 if head else None,
                "variant": "original",
                "variant_sha256": head.model_sha256 if head else None,
            }
            if chosen.get(model.name):
                pick = chosen[model.name]
                entry["variant"] = pick["variant"]
                entry["variant_sha256"] = pick["sha256"]
                if pick.get("location") == "out":
                    # variants/<model>/<file> under /out, kept under the artifacts directory of this head.
                    entry["variant_artifact"] = str(Path(pick["path"]).relative_to("variants"))
            models[model.name] = entry
        return {"models": models, "comment_id": comment_id, "check_run_id": check_id}

    async def _record(self, req: ReviewRequest, base_sha: str, conclusion: str, summary: dict[str, Any]) -> None:
        from sqlalchemy import delete, insert

        async with self.services.engine.begin() as conn:
            await conn.execute(
                delete(Review).where(
                    Review.repo == req.repo, Review.number == req.number, Review.head_sha == req.head_sha
                )
            )
            await conn.execute(
                insert(Review).values(
                    repo=req.repo,
                    number=req.number,
                    head_sha=req.head_sha,
                    base_sha=base_sha,
                    conclusion=conclusion,
                    summary=summary,
                )
            )


async def setup(services: Services, settings: Any) -> Any:
    """Feature hook for bot.service: the `review` job runner and its sandbox."""
    from bot.service import Feature

    sandbox = make_sandbox(settings)
    services.extras[SANDBOX_KEY] = sandbox
    return Feature(runners={KIND: ReviewService(services, sandbox).run_job})


class SandboxUnavailable(Exception):
    """The configured container engine cannot be used; the message names the setting."""


def make_sandbox(settings: Any) -> SandboxConfig:
    if settings.sandbox == "off":
        return SandboxConfig(None, settings.sandbox_image, TURNED_OFF, turned_off=True)
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

        mounts = LocalRuntime.discover(Path(sys.prefix), Path(__file__).resolve().parents[2]).mounts()
    return SandboxConfig(DockerEngineRunner(client, runtime_mounts=mounts), settings.sandbox_image)
