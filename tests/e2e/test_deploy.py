"""Deploy end to end: PRs merge in devhub, the real bot commits to a deploy repository over git HTTP.

One devhub and one bot serve the module; every test has its own model and deploy repositories. What
counts is what landed: commits and files in the deploy repository's bare git, PRs there, GitHub
Deployments on the model repository, rows in the ``deployments`` table, the comments on the PR.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from bot.chatops.ratelimit import RateLimiter
from bot.config.deploy_allowlist import DeployAllowlist
from bot.context import need
from bot.deploy.cli import promote
from bot.deploy.gitops import RetryPolicy
from bot.deploy.helm import check_values
from bot.deploy.manifest import current_ref, parse_trailers
from bot.deploy.service import DeployService
from bot.review.jobs import ReviewRequest
from bot.store.models import Job
from bot.store.queue import ClaimedJob
from bot.store.review_models import Deployment
from bot.store.reviews import ReviewedModel, ReviewRecord, head_review, save_review
from devkit.devhub import DevHub, start
from tests.fixtures.bot import RunningBot, bot_running, settle_jobs
from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key

BOT = "modelship[bot]"
CHART = Path(__file__).resolve().parents[2] / "charts/model-server"
STAGING = "environments/staging/churn/values.yaml"

HUMAN_VALUES = """\
# Staging values for churn: owned by the platform team.
replicaCount: 1  # one is plenty in staging

model:
  name: churn  # served as /v2/models/churn
  repository: acme/old
  revision: "0000000000000000000000000000000000000000"
  path: models/churn.onnx
  sha256: "0000000000000000000000000000000000000000000000000000000000000000"
  variant: original
  sequence: 1
"""


def config(deploy_repo: str, environments: str) -> str:
    return f"""\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
{environments}
deploy: {{repository: {deploy_repo}}}
"""


@dataclass
class World:
    hub: DevHub
    bot: RunningBot

    @property
    def services(self) -> Any:
        return self.bot.service.services

    @property
    def deploy(self) -> DeployService:
        return need(self.services.deploy, "deploy")


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("deploy")
    running = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)

    try:
        async with bot_running(running, tmp) as bot:

            async def review_passes(job: ClaimedJob) -> None:
                """The review runner is another feature (and needs a sandbox): here every head it is asked about
                passes (what `requires: [review_passed]`, the default of auto environments, lets through),
                unless the test recorded that head's review itself."""
                request = ReviewRequest.from_payload(job.payload)
                engine = bot.service.services.engine
                if await head_review(engine, request.repo, request.number, request.head_sha) is None:
                    await save_review(
                        engine,
                        repo=request.repo,
                        number=request.number,
                        head_sha=request.head_sha,
                        base_sha=request.base_sha,
                        conclusion="success",
                        record=ReviewRecord(models={"churn": ReviewedModel("compared", gates_passed=True)}),
                    )

            cast(dict[str, Any], bot.service.workers.runners)["review"] = review_passes
            # Every test comments as alice; the flood limit is chat-ops' own subject.
            bot.service.services.limiter = RateLimiter(capacity=10_000, per_second=1_000)
            yield World(running.hub, bot)
    finally:
        await running.stop()


@pytest.fixture(autouse=True)
def contract_kept(world: World) -> Iterator[None]:
    """Every request the bot made to devhub in the test kept GitHub's OpenAPI contract."""
    before = len(world.hub.contract_violations)
    yield
    assert world.hub.contract_violations[before:] == []


# --------------------------------------------------------------------------- helpers


@dataclass
class Repos:
    model: str
    deploy: str


async def repos(world: World, name: str, environments: str, deploy_files: dict[str, str] | None = None) -> Repos:
    model, deploy = f"acme/{name}", f"acme/{name}-deploy"
    await world.hub.create_repo(deploy, {"README.md": "# deploy\n", **(deploy_files or {})})
    await world.hub.create_repo(
        model,
        {
            "README.md": "# models\n",
            "models/churn.onnx": b"v0",
            "data/eval.csv": "a,label\n1,0\n",
            ".modelship.yml": config(deploy, environments),
        },
    )
    await world.hub.install("acme", [model, deploy])
    world.hub.set_permission(model, "alice", "write")
    return Repos(model, deploy)


async def settle(world: World, timeout: float = 30.0) -> None:
    """Wait until no job is running or due soon (retries with backoff count as due)."""
    await asyncio.sleep(0.2)  # the delivery reaches the intake asynchronously
    await settle_jobs(world.services.engine, horizon=10, timeout=timeout)


async def merge(world: World, repo: str, branch: str, content: bytes) -> tuple[int, str]:
    await world.hub.push(repo, branch, {"models/churn.onnx": content})
    number = await world.hub.open_pr(repo, branch)
    await settle(world)  # the review of the head is recorded before the merge (requires: [review_passed])
    sha = await world.hub.merge_pr(repo, number)
    await settle(world)
    return number, sha


async def say(world: World, repo: str, number: int, body: str) -> str:
    comment_id = await world.hub.comment(repo, number, body, user="alice")
    await settle(world)
    found = [
        c.body for c in world.hub.comments.values() if c.repo == repo and c.user.login == BOT and c.id > comment_id
    ]
    assert found, f"no reply to {body!r}"
    return found[-1]


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, check=True, capture_output=True, text=True).stdout


def commits(world: World, repo: str, ref: str = "main") -> list[str]:
    return git(world.hub.git.path(repo), "rev-list", ref).split()


def show(world: World, repo: str, path: str, ref: str = "main") -> str:
    return git(world.hub.git.path(repo), "show", f"{ref}:{path}")


def sticky(world: World, repo: str, number: int) -> str:
    bodies = [
        c.body
        for c in world.hub.comments.values()
        if c.repo == repo and c.issue_number == number and "<!-- modelship:deploy -->" in c.body
    ]
    assert len(bodies) == 1, f"expected one deploy comment, found {len(bodies)}"
    return bodies[0]


async def history(world: World, repo: str) -> list[Any]:
    async with world.services.engine.connect() as conn:
        query = select(Deployment).where(Deployment.repo == repo).order_by(Deployment.id)
        return list((await conn.execute(query)).all())


# --------------------------------------------------------------------------- merges


async def test_merge_commits_once_and_a_redelivery_writes_nothing(world: World) -> None:
    r = await repos(world, "merge", "  staging: {auto: true}", {STAGING: HUMAN_VALUES})
    before = commits(world, r.deploy)

    number, merge_sha = await merge(world, r.model, "new-churn", b"churn v1")

    after = commits(world, r.deploy)
    assert len(after) == len(before) + 1
    message = git(world.hub.git.path(r.deploy), "log", "-1", "--format=%B", "main")
    assert parse_trailers(message) == {
        "Modelship-Model": "churn",
        "Modelship-Version": merge_sha,
        "Modelship-Source-PR": f"{r.model}#{number}",
        "Modelship-Environment": "staging",
    }
    text = show(world, r.deploy, STAGING)
    check_values(CHART, text)  # Helm renders what landed
    assert "# one is plenty in staging" in text and "# served as /v2/models/churn" in text
    ref = current_ref(text)
    assert ref is not None
    assert (ref.repository, ref.revision, ref.source_pr) == (r.model, merge_sha, number)
    assert ref.sha256 == hashlib.sha256(b"churn v1").hexdigest()

    rows = await history(world, r.model)
    assert [(x.environment, x.state, x.deploy_commit, x.actor, x.values_path) for x in rows] == [
        ("staging", "deployed", after[0], "alice", STAGING)  # the file as committed: the dashboard's values diff
    ]
    deployments = [d for d in world.hub.deployments.values() if d.repo == r.model]
    assert [(d.sha, d.environment) for d in deployments] == [(merge_sha, "staging")]
    assert [s.state for s in deployments[0].statuses] == ["in_progress", "success"]
    assert after[0] in deployments[0].statuses[-1].log_url
    assert after[0] in sticky(world, r.model, number)

    closed = next(d for d in reversed(world.hub.deliveries) if (d.event, d.action) == ("pull_request", "closed"))
    await world.hub.redeliver(closed.guid)
    await settle(world)
    assert commits(world, r.deploy) == after
    assert len(await history(world, r.model)) == 1
    assert len([d for d in world.hub.deployments.values() if d.repo == r.model]) == 1


async def test_the_review_supplies_sha256_variant_and_metrics(world: World) -> None:
    r = await repos(world, "reviewed", "  staging: {auto: true}")
    await world.hub.push(r.model, "tuned", {"models/churn.onnx": b"churn tuned"})
    number = await world.hub.open_pr(r.model, "tuned")
    pull = world.hub.pull(r.model, number)
    digest = hashlib.sha256(b"churn tuned").hexdigest()
    churn = ReviewedModel(
        status="compared",
        metrics={"f1": 0.91},
        gates_passed=True,
        model_path="models/churn.onnx",
        model_sha256=digest,
        variant="int8_dynamic",
        variant_sha256="e" * 64,
    )
    await save_review(  # what the review runner stores for this head
        world.services.engine,
        repo=r.model,
        number=number,
        head_sha=pull.head_sha,
        base_sha=pull.base_sha,
        conclusion="success",
        record=ReviewRecord(models={"churn": churn}),
    )

    await world.hub.merge_pr(r.model, number)
    await settle(world)

    ref = current_ref(show(world, r.deploy, STAGING))
    # The pinned hash is the variant file's, not the source model's: the server loads the variant.
    assert ref is not None and (ref.sha256, ref.variant) == ("e" * 64, "int8_dynamic")
    message = git(world.hub.git.path(r.deploy), "log", "-1", "--format=%B", "main")
    assert "f1: 0.91" in message and "Variant:   int8" in message
    assert [(x.variant, x.sha256) for x in await history(world, r.model)] == [("int8_dynamic", "e" * 64)]


async def test_values_that_violate_the_schema_are_not_committed(world: World) -> None:
    broken = HUMAN_VALUES.replace("replicaCount: 1", "replicaCount: -3")
    r = await repos(world, "schema", "  staging: {auto: true}", {STAGING: broken})
    before = commits(world, r.deploy)

    number, _ = await merge(world, r.model, "bad", b"churn v2")

    assert commits(world, r.deploy) == before
    body = sticky(world, r.model, number)
    assert "replicaCount" in body and "-3" in body and "minimum" in body
    assert [x.state for x in await history(world, r.model)] == ["failed"]


@pytest.mark.parametrize("via", ["commit", "pull_request"])
async def test_values_helm_refuses_commit_nothing_and_the_pr_quotes_helm(world: World, via: str) -> None:
    # A person typed a resource quantity Kubernetes does not understand into the environment's file.
    typo = HUMAN_VALUES.replace("replicaCount: 1", "replicaCount: 1\nresources:\n  limits:\n    memory: 2 GB")
    path = STAGING.replace("staging", "production")
    r = await repos(world, f"helm-{via}", f"  production: {{auto: true, via: {via}}}", {path: typo})
    before = commits(world, r.deploy)

    number, _ = await merge(world, r.model, "bad", b"churn v2")

    assert commits(world, r.deploy) == before
    # No branch and no deploy PR propose what Helm refuses.
    assert git(world.hub.git.path(r.deploy), "branch", "--format=%(refname:short)").split() == ["main"]
    assert not world.hub.pulls.get(r.deploy)
    body = sticky(world, r.model, number)
    assert "Helm refused to render charts/model-server" in body and "`resources.limits.memory`" in body
    # Helm's own words, quoted: the value path and the value.
    assert "- at '/resources/limits/memory': '2 GB' does not match pattern" in body, body
    rows = await history(world, r.model)
    assert [x.state for x in rows] == ["failed"] and "2 GB" in (rows[0].detail or "")


async def test_a_pinned_environment_is_not_rolled_forward_until_unpinned(world: World) -> None:
    pinned = HUMAN_VALUES + "  pinned: true\n  pinReason: rollback after error rate 7%\n"
    r = await repos(world, "pinned", "  staging: {auto: true}", {STAGING: pinned})
    before = commits(world, r.deploy)

    number, merge_sha = await merge(world, r.model, "forward", b"churn v3")

    assert commits(world, r.deploy) == before
    rows = await history(world, r.model)
    assert [(x.state, x.version) for x in rows] == [("skipped", merge_sha)]
    assert "pinned" in (rows[0].detail or "") and "pinned" in sticky(world, r.model, number)

    reply = await say(world, r.model, number, "/modelship unpin staging")
    assert "committed" in reply
    assert len(commits(world, r.deploy)) == len(before) + 1
    ref = current_ref(show(world, r.deploy, STAGING))
    assert ref is not None and not ref.pinned and ref.revision == "0" * 40  # the version stays
    # The timeline's unpin row: the same version runs on, unpinned, with who and the pin it lifted.
    unpinned = (await history(world, r.model))[-1]
    assert (unpinned.kind, unpinned.state, unpinned.version, unpinned.pinned) == ("unpin", "deployed", "0" * 40, False)
    assert unpinned.actor == "alice" and "rollback after error rate 7%" in (unpinned.detail or "")
    assert unpinned.values_path == STAGING

    _, second = await merge(world, r.model, "forward-again", b"churn v4")
    ref = current_ref(show(world, r.deploy, STAGING))
    assert ref is not None and ref.revision == second


async def test_a_held_pr_is_not_deployed_on_merge(world: World) -> None:
    r = await repos(world, "held", "  staging: {auto: true}")
    await world.hub.push(r.model, "risky", {"models/churn.onnx": b"churn risky"})
    number = await world.hub.open_pr(r.model, "risky")
    await settle(world)
    await say(world, r.model, number, "/modelship hold")
    before = commits(world, r.deploy)

    await world.hub.merge_pr(r.model, number)
    await settle(world)

    assert commits(world, r.deploy) == before
    assert [x.state for x in await history(world, r.model)] == ["skipped"]
    assert "on hold" in sticky(world, r.model, number)


async def test_a_protected_environment_gets_one_pr_updated_by_the_next_merge(world: World) -> None:
    r = await repos(world, "protected", "  production: {auto: true, via: pull_request}")
    main_before = commits(world, r.deploy)

    _, first = await merge(world, r.model, "one", b"churn v5")
    _, second = await merge(world, r.model, "two", b"churn v6")

    assert commits(world, r.deploy) == main_before  # nothing lands on main without a review
    pulls = [p for p in world.hub.pulls[r.deploy].values() if p.state == "open"]
    assert len(pulls) == 1 and pulls[0].head_ref == "modelship/deploy/production/churn"
    ref = current_ref(show(world, r.deploy, "environments/production/churn/values.yaml", pulls[0].head_ref))
    assert ref is not None and ref.revision == second
    # The PR's title and body describe the version its branch now carries, not the one it opened with.
    assert second[:7] in pulls[0].title and first[:7] not in pulls[0].title, pulls[0].title
    assert f"Modelship-Version: {second}" in (pulls[0].body or "")
    edited = [d for d in world.hub.sender.deliveries if d.event == "pull_request" and d.action == "edited"]
    assert edited, "GitHub sends pull_request.edited when the title changes"
    rows = await history(world, r.model)
    assert [(x.state, x.version, x.deploy_pr) for x in rows] == [
        ("pending", first, pulls[0].number),
        ("pending", second, pulls[0].number),
    ]


@pytest.mark.slow
async def test_an_unreachable_deploy_repository_is_retried_then_reported(world: World) -> None:
    r = await repos(world, "down", "  staging: {auto: true}")
    service = world.deploy
    await settle(world)
    # GitHub says the deploy repository's git is somewhere nothing answers.
    github = world.services.github
    github.remember_repository({"full_name": r.deploy, "clone_url": "http://127.0.0.1:9/acme/down-deploy.git"})
    service.writer.retry = RetryPolicy(network_attempts=2, base_s=0.01, cap_s=0.05)
    try:
        number, merge_sha = await merge(world, r.model, "unlucky", b"churn v7")
    finally:
        service.writer.retry = None

    async with world.services.engine.connect() as conn:
        query = select(Job.attempts, Job.state).where(Job.kind == "deploy").order_by(Job.id.desc()).limit(1)
        job = (await conn.execute(query)).one()
    # Retried inside the job (the shared retry helper), then the job ends; its final-failure hook reports it.
    assert tuple(job) == (1, "parked")
    rows = await history(world, r.model)
    assert [(x.state, x.version) for x in rows] == [("failed", merge_sha)]
    assert "unreachable: gave up after 2 attempts" in (rows[0].detail or "")
    body = sticky(world, r.model, number)
    assert "unreachable" in body and "/modelship deploy staging" in body
    deployments = [d for d in world.hub.deployments.values() if d.repo == r.model]
    assert [s.state for d in deployments for s in d.statuses] == ["error"]
    assert len(commits(world, r.deploy)) == 1  # only the README: nothing half-written
    status = await say(world, r.model, number, "/modelship status")
    assert "**Deployments**" in status and "failed" in status and "unreachable" in status


async def test_a_deploy_repository_without_the_app_fails_at_once_naming_the_key(world: World) -> None:
    model = "acme/orphan"
    await world.hub.create_repo(
        model,
        {
            "models/churn.onnx": b"v0",
            "data/eval.csv": "a,label\n1,0\n",
            ".modelship.yml": config("acme/nowhere", "  staging: {auto: true}"),
        },
    )
    await world.hub.install("acme", [model])

    number, merge_sha = await merge(world, model, "lost", b"churn v11")

    rows = await history(world, model)
    assert [(x.state, x.version) for x in rows] == [("failed", merge_sha)]
    body = sticky(world, model, number)
    assert "not installed on the deploy repository `acme/nowhere`" in body and "deploy.repository" in body


# --------------------------------------------------------------------------- chat-ops


async def test_promote_copies_the_healthy_upstream_version_and_dry_runs_write_nothing(world: World) -> None:
    environments = "  staging: {auto: true}\n  production: {upstream: staging, require_healthy_upstream: true}"
    r = await repos(world, "promote", environments)
    number, merge_sha = await merge(world, r.model, "ship", b"churn v8")
    staged = commits(world, r.deploy)
    assert len(staged) == 2  # README + the staging deploy; production is reached by promotion only

    refused = await say(world, r.model, number, "/modelship promote production")
    assert "unknown" in refused and "require_healthy_upstream" in refused
    async with world.services.engine.begin() as conn:  # what the guard writes once staging looks good
        await conn.execute(update(Deployment).where(Deployment.repo == r.model).values(health="healthy"))

    preview = await say(world, r.model, number, "/modelship promote production --dry-run")
    assert "+++ b/environments/production/churn/values.yaml" in preview and merge_sha in preview
    assert commits(world, r.deploy) == staged

    await say(world, r.model, number, "/modelship promote production")
    assert len(commits(world, r.deploy)) == len(staged) + 1
    production = current_ref(show(world, r.deploy, "environments/production/churn/values.yaml"))
    assert production == current_ref(show(world, r.deploy, STAGING))
    message = git(world.hub.git.path(r.deploy), "log", "-1", "--format=%B", "main")
    assert message.startswith("promote(production): churn") and "Promoted from staging by alice" in message
    kinds = [(x.environment, x.kind, x.state, x.values_path) for x in await history(world, r.model)]
    assert kinds == [
        ("staging", "deploy", "deployed", STAGING),
        ("production", "promote", "skipped", "environments/production/churn/values.yaml"),
        ("production", "promote", "deployed", "environments/production/churn/values.yaml"),
    ]
    body = sticky(world, r.model, number)
    assert "`production`" in body and "`staging`" in body


async def test_deploy_command_ships_the_pr_head_and_its_dry_run_shows_the_diff(world: World) -> None:
    r = await repos(world, "manual", "  staging: {auto: true}")
    await world.hub.push(r.model, "candidate", {"models/churn.onnx": b"churn v9"})
    number = await world.hub.open_pr(r.model, "candidate")
    await settle(world)
    head = world.hub.pull(r.model, number).head_sha
    before = commits(world, r.deploy)

    preview = await say(world, r.model, number, "/modelship deploy staging --dry-run")
    assert "/dev/null" in preview and head in preview
    assert commits(world, r.deploy) == before

    refused = await say(world, r.model, number, "/modelship deploy staging --variant int8")
    assert "no reviewed `int8` variant" in refused and commits(world, r.deploy) == before

    reply = await say(world, r.model, number, "/modelship deploy staging --variant original")
    assert "committed" in reply
    ref = current_ref(show(world, r.deploy, STAGING))
    assert ref is not None and (ref.revision, ref.variant) == (head, "original")


# --------------------------------------------------------------------------- command line


async def test_cli_promote_uses_the_same_service(world: World, tmp_path: Path) -> None:
    r = await repos(world, "cli", "  staging: {auto: true}\n  production: {upstream: staging}")
    await merge(world, r.model, "ship", b"churn v10")
    staged = commits(world, r.deploy)
    settings = world.bot.settings
    assert settings.github_private_key is not None
    env = {
        "MODELSHIP_WEBHOOK_SECRET": "unused-by-the-cli",
        "MODELSHIP_GITHUB_APP_ID": str(settings.github_app_id),
        "MODELSHIP_GITHUB_PRIVATE_KEY": settings.github_private_key.get_secret_value(),
        "MODELSHIP_GITHUB_API_URL": settings.github_api_url,
        "MODELSHIP_DATA_DIR": str(tmp_path / "cli"),
        "MODELSHIP_DATABASE_URL": settings.effective_database_url,
    }
    runner = CliRunner()
    args = ["--repo", r.model, "--env", "production"]

    dry = await asyncio.to_thread(runner.invoke, promote, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "+++ b/environments/production/churn/values.yaml" in dry.output
    assert commits(world, r.deploy) == staged

    done = await asyncio.to_thread(runner.invoke, promote, args, env=env)
    assert done.exit_code == 0, done.output
    assert len(commits(world, r.deploy)) == len(staged) + 1
    assert current_ref(show(world, r.deploy, "environments/production/churn/values.yaml")) == current_ref(
        show(world, r.deploy, STAGING)
    )
    rows = await history(world, r.model)
    assert [(x.environment, x.state) for x in rows] == [("staging", "deployed"), ("production", "deployed")]


# --------------------------------------------------------------------------- tenancy


async def tenants(world: World, name: str, environments: str) -> Repos:
    """eve's model repository (eve's installation) names victim's deploy repository (victim's installation)."""
    model, deploy = f"eve/{name}", f"victim/{name}-infra"
    await world.hub.create_repo(deploy, {"README.md": "# victim's deploy\n", STAGING: HUMAN_VALUES})
    await world.hub.create_repo(
        model,
        {
            "models/churn.onnx": b"v0",
            "data/eval.csv": "a,label\n1,0\n",
            ".modelship.yml": config(deploy, environments),
        },
    )
    eve = await world.hub.install("eve", [model])
    victim = await world.hub.install("victim", [deploy])
    assert eve != victim
    world.hub.set_permission(model, "alice", "write")
    return Repos(model, deploy)


@contextmanager
def allowlist(world: World, *entries: str) -> Iterator[None]:
    """The operator's MODELSHIP_DEPLOY_ALLOWLIST for one block (the module shares one bot)."""
    world.deploy.writer.allowlist = DeployAllowlist.parse(entries)
    try:
        yield
    finally:
        world.deploy.writer.allowlist = DeployAllowlist.default()


def cli_env(world: World, tmp_path: Path, **extra: str) -> dict[str, str]:
    settings = world.bot.settings
    assert settings.github_private_key is not None
    return {
        "MODELSHIP_WEBHOOK_SECRET": "unused-by-the-cli",
        "MODELSHIP_GITHUB_APP_ID": str(settings.github_app_id),
        "MODELSHIP_GITHUB_PRIVATE_KEY": settings.github_private_key.get_secret_value(),
        "MODELSHIP_GITHUB_API_URL": settings.github_api_url,
        "MODELSHIP_DATA_DIR": str(tmp_path / "cli"),
        "MODELSHIP_DATABASE_URL": settings.effective_database_url,
        **extra,
    }


async def test_a_merge_never_writes_into_another_tenants_deploy_repository(world: World) -> None:
    r = await tenants(world, "steal", "  staging: {auto: true}")
    before = commits(world, r.deploy)

    number, merge_sha = await merge(world, r.model, "evil", b"churn evil")

    assert commits(world, r.deploy) == before and show(world, r.deploy, STAGING) == HUMAN_VALUES
    assert [(x.state, x.version) for x in await history(world, r.model)] == [("failed", merge_sha)]
    body = sticky(world, r.model, number)
    assert "refused by MODELSHIP_DEPLOY_ALLOWLIST" in body and f"`{r.deploy}`" in body

    # An operator's allow-list that is far too broad still cannot join two installations.
    with allowlist(world, "*/*=*/*"):
        number, merge_sha = await merge(world, r.model, "evil-again", b"churn evil 2")

    assert commits(world, r.deploy) == before and show(world, r.deploy, STAGING) == HUMAN_VALUES
    body = sticky(world, r.model, number)
    assert "refused by the same-installation rule" in body and f"`{r.deploy}`" in body
    deployments = [d for d in world.hub.deployments.values() if d.repo == r.model]
    assert [s.state for d in deployments for s in d.statuses] == ["failure", "failure"]


async def test_promote_from_chat_or_cli_never_reads_or_writes_another_tenants_deploy_repository(
    world: World, tmp_path: Path
) -> None:
    r = await tenants(world, "promo", "  staging: {auto: true}\n  production: {upstream: staging}")
    await world.hub.push(r.model, "ask", {"notes.md": "promote please\n"})
    number = await world.hub.open_pr(r.model, "ask")
    before = commits(world, r.deploy)

    refused = await say(world, r.model, number, "/modelship promote production")
    assert commits(world, r.deploy) == before
    assert "refused by MODELSHIP_DEPLOY_ALLOWLIST" in refused and f"`{r.deploy}`" in refused
    # A dry run would have shown the victim's values in its diff: it is refused before any read.
    preview = await say(world, r.model, number, "/modelship promote production --dry-run")
    assert "refused by MODELSHIP_DEPLOY_ALLOWLIST" in preview and "acme/old" not in preview
    assert commits(world, r.deploy) == before

    runner = CliRunner()
    env = cli_env(world, tmp_path, MODELSHIP_DEPLOY_ALLOWLIST="*/*=*/*")
    done = await asyncio.to_thread(runner.invoke, promote, ["--repo", r.model, "--env", "production"], env=env)
    assert done.exit_code == 1, done.output
    assert "refused by the same-installation rule" in done.output and f"`{r.deploy}`" in done.output
    assert commits(world, r.deploy) == before
    assert "environments/production/churn/values.yaml" not in git(world.hub.git.path(r.deploy), "ls-tree", "-r", "main")


async def test_within_one_installation_only_allowed_pairs_deploy(world: World) -> None:
    r = await repos(world, "pairs", "  staging: {auto: true}")
    before = commits(world, r.deploy)

    with allowlist(world, "acme/*=acme/infra", f"{r.model}=acme/gitops-*"):
        number, _ = await merge(world, r.model, "not-listed", b"churn pairs 1")

    assert commits(world, r.deploy) == before
    body = sticky(world, r.model, number)
    assert "refused by MODELSHIP_DEPLOY_ALLOWLIST" in body
    assert "MODELSHIP_DEPLOY_ALLOWLIST allows only: `acme/*=acme/infra`" in body

    with allowlist(world, "acme/*=acme/infra", f"{r.model}={r.deploy}"):
        number, merge_sha = await merge(world, r.model, "listed", b"churn pairs 2")

    assert len(commits(world, r.deploy)) == len(before) + 1
    ref = current_ref(show(world, r.deploy, STAGING))
    assert ref is not None and ref.revision == merge_sha
    assert [x.state for x in await history(world, r.model)] == ["failed", "deployed"]


async def test_a_path_template_into_the_workflows_is_refused_naming_key_and_line(world: World) -> None:
    r = await repos(world, "workflow", "  staging: {auto: true}")
    text = config(r.deploy, "  staging: {auto: true}").replace(
        f"deploy: {{repository: {r.deploy}}}",
        f"deploy:\n  repository: {r.deploy}\n  path_template: .github/workflows/{{env}}-{{model}}.yml",
    )
    await world.hub.push(r.model, "main", {".modelship.yml": text})
    await world.hub.push(r.model, "hook", {"models/churn.onnx": b"churn hook"})
    number = await world.hub.open_pr(r.model, "hook")
    before = commits(world, r.deploy)

    reply = await say(world, r.model, number, "/modelship deploy staging")

    assert "is invalid" in reply and "line 11: deploy.path_template" in reply and "'.github' component" in reply
    assert commits(world, r.deploy) == before
