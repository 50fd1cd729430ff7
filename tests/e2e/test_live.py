"""Deployed means serving, end to end: a merge is `in_progress` until every ready replica serves the new file.

Real devhub (GitHub Deployments and statuses checked against GitHub's OpenAPI), the real bot with live
tracking on a 0.5 s round, a real Prometheus scraping real model servers (devkit's launcher) that export
``modelship_model_info{sha256=…}``. The test plays the cluster: once the deploy commit lands it starts
(or does not start) model servers on the committed file, as Argo CD or Flux would.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import onnx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from bot.context import DeployTransition
from bot.store.guard_models import GuardIncident
from bot.store.queue import ClaimedJob
from bot.store.review_models import Deployment
from devkit.devhub import DevHub, start
from devkit.onnx_models import write_iris_classifier
from devkit.processes import ModelServer, ProcessError, model_server
from tests.fixtures.bot import RunningBot, bot_running, settle_jobs
from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key
from tests.fixtures.prometheus import PrometheusServer

pytestmark = pytest.mark.slow

ENV = "staging"
DEADLINE = 12  # seconds: long enough for a replica to start and be scraped, short enough for a test


def config(model: str, deploy_repo: str, *, deadline: float = 60, on_not_live: str = "rollback") -> str:
    # requires: [] — no review runs here (live tracking is the subject), and auto environments otherwise
    # ship only heads whose review passed (tests/e2e/test_deploy_gating.py).
    return f"""\
version: 1
models:
  - name: {model}
    path: models/{model}.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
  {ENV}: {{auto: true, requires: [], progress_deadline: {deadline:g}s, on_not_live: {on_not_live}}}
deploy: {{repository: {deploy_repo}}}
"""


@dataclass
class World:
    hub: DevHub
    bot: RunningBot
    prometheus: PrometheusServer
    files: dict[str, bytes]  # version name -> ONNX bytes (each a different, valid iris model)
    tmp: Path
    servers: list[ModelServer] = field(default_factory=list)
    heard: list[DeployTransition] = field(default_factory=list)

    @property
    def engine(self) -> Any:
        return self.bot.service.services.engine


@pytest.fixture(scope="module")
def iris_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Three iris classifiers that differ in their bytes (the ONNX doc string), so each has its own sha256."""
    path = tmp_path_factory.mktemp("iris") / "iris.onnx"
    write_iris_classifier(path)
    files = {}
    for version in ("v1", "v2", "v3"):
        model = onnx.load(path)
        model.doc_string = f"iris {version}"
        files[version] = model.SerializeToString()
    return files


@pytest.fixture(scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, prometheus: PrometheusServer, iris_files: dict[str, bytes]
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("live")
    running = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)

    async def no_review(job: ClaimedJob) -> None:
        """Reviews are another feature; the deploy ships the committed file's own sha256."""

    try:
        settings = {"prometheus_url": prometheus.url, "live_interval_seconds": 0.5, "guard_interval_seconds": 1.0}
        async with bot_running(running, tmp, **settings) as bot:
            cast(dict[str, Any], bot.service.workers.runners)["review"] = no_review
            world = World(running.hub, bot, prometheus, iris_files, tmp)

            async def listen(conn: Any, event: DeployTransition) -> None:
                world.heard.append(event)

            bot.service.services.deploy_listeners.append(listen)
            try:
                yield world
            finally:
                for server in world.servers:
                    prometheus.remove_target(server.address)
                    server.stop()
    finally:
        await running.stop()


@pytest.fixture(autouse=True)
def contract_kept(world: World) -> Iterator[None]:
    """Every request the bot made to devhub (Deployment statuses included) kept GitHub's OpenAPI contract."""
    before = len(world.hub.contract_violations)
    yield
    assert world.hub.contract_violations[before:] == []


# --------------------------------------------------------------------------- helpers


async def repos(world: World, model: str, **options: Any) -> tuple[str, str]:
    repo, deploy = f"acme/{model}", f"acme/{model}-deploy"
    await world.hub.create_repo(deploy, {"README.md": "# deploy\n"})
    await world.hub.create_repo(
        repo,
        {
            "README.md": "# models\n",
            "data/eval.csv": "a,label\n1,0\n",
            ".modelship.yml": config(model, deploy, **options),
        },
    )
    await world.hub.install("acme", [repo, deploy])
    return repo, deploy


async def merge(world: World, repo: str, model: str, version: str) -> int:
    await world.hub.push(repo, f"ship-{version}", {f"models/{model}.onnx": world.files[version]})
    number = await world.hub.open_pr(repo, f"ship-{version}")
    await world.hub.merge_pr(repo, number)
    await asyncio.sleep(0.2)
    await settle_jobs(world.engine, horizon=5, timeout=60)
    return number


def serve(world: World, model: str, version: str) -> ModelServer:
    """One replica of ``model`` in ENV serving ``version``'s file, scraped by Prometheus (what a sync does)."""
    path = world.tmp / f"{model}-{version}-{len(world.servers)}.onnx"
    path.write_bytes(world.files[version])
    sha = hashlib.sha256(world.files[version]).hexdigest()
    server = model_server(path, name=model, version=version, sha256=sha, env=ENV, log=path.with_suffix(".log"))
    server.start()
    world.servers.append(server)
    world.prometheus.add_target(server.address)
    return server


def retire(world: World, server: ModelServer) -> None:
    world.prometheus.remove_target(server.address)
    server.stop()


async def scraped(world: World, model: str, version: str, replicas: int, timeout: float = 30) -> None:
    sha = hashlib.sha256(world.files[version]).hexdigest()
    promql = f'count(modelship_model_info{{model="{model}", sha256="{sha}"}}) == {replicas}'
    await asyncio.to_thread(world.prometheus.wait_for, promql, timeout)


async def row(world: World, repo: str, version: str) -> Any:
    sha = hashlib.sha256(world.files[version]).hexdigest()
    async with world.engine.connect() as conn:
        query = select(Deployment).where(Deployment.repo == repo, Deployment.sha256 == sha).order_by(Deployment.id)
        return (await conn.execute(query)).all()[-1]


async def phase_becomes(world: World, repo: str, version: str, phase: str, timeout: float) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        current = await row(world, repo, version)
        if current.rollout == phase and current.rollout_told == phase:
            return current
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{repo} {version} is {current.rollout} ({current.rollout_detail}), not {phase}")
        await asyncio.sleep(0.2)


def statuses(world: World, repo: str, version_row: Any) -> list[Any]:
    return list(world.hub.deployments[version_row.github_deployment_id].statuses)


def dossier(world: World, repo: str, number: int) -> str:
    [body] = [
        c.body
        for c in world.hub.comments.values()
        if c.repo == repo and c.issue_number == number and "<!-- modelship:deploy -->" in c.body
    ]
    return body


def rollback_pulls(world: World, deploy: str, model: str) -> list[Any]:
    return [p for p in world.hub.pulls.get(deploy, {}).values() if p.head_ref == f"modelship/rollback/{ENV}/{model}"]


# --------------------------------------------------------------------------- scenarios


async def test_a_merge_is_in_progress_until_the_new_file_is_served_then_success_with_timings(world: World) -> None:
    repo, _ = await repos(world, "iris-live")

    number = await merge(world, repo, "iris-live", "v1")

    committed = await phase_becomes(world, repo, "v1", "committed", 10)
    [in_progress] = statuses(world, repo, committed)
    assert in_progress.state == "in_progress" and committed.deploy_commit in in_progress.environment_url
    assert "waiting until every replica serves it" in in_progress.description
    await asyncio.sleep(1.5)  # rounds go by: nothing serves the file, so nothing more is said
    assert [s.state for s in statuses(world, repo, committed)] == ["in_progress"]

    serve(world, "iris-live", "v1")
    live = await phase_becomes(world, repo, "v1", "live", 30)

    [_, success] = statuses(world, repo, live)
    assert success.state == "success" and success.description.startswith("live: every ready replica serves")
    assert success.log_url.endswith(f"/{repo}/pull/{number}")  # the PR's dossier
    assert live.deploy_commit in success.environment_url
    body = dossier(world, repo, number)
    assert f"committed [{live.deploy_commit[:7]}]" in body and "✅ live at" in body and "after the commit" in body
    assert live.live_at > live.committed_at
    heard = [(e.phase, e.key) for e in world.heard if e.repo == repo]
    assert heard == [("committed", f"deploy:{live.id}:committed"), ("live", f"deploy:{live.id}:live")]


async def test_two_replicas_one_still_on_the_old_file_is_not_live_until_both_serve_the_new_one(world: World) -> None:
    repo, _ = await repos(world, "iris-pair")
    await merge(world, repo, "iris-pair", "v1")
    old = [serve(world, "iris-pair", "v1"), serve(world, "iris-pair", "v1")]
    await phase_becomes(world, repo, "v1", "live", 30)

    await merge(world, repo, "iris-pair", "v2")
    serve(world, "iris-pair", "v2")
    retire(world, old[0])
    await scraped(world, "iris-pair", "v2", 1)
    half = await phase_becomes(world, repo, "v2", "rolling_out", 15)
    await asyncio.sleep(2)  # several rounds with one replica on each file

    half = await row(world, repo, "v2")
    assert half.rollout == "rolling_out" and half.live_at is None
    assert "1 of 2 ready replicas serve the new file" in half.rollout_detail
    assert "1 replica still serves the old file" in half.rollout_detail
    assert [s.state for s in statuses(world, repo, half)] == ["in_progress"]

    serve(world, "iris-pair", "v2")
    retire(world, old[1])
    live = await phase_becomes(world, repo, "v2", "live", 30)
    assert [s.state for s in statuses(world, repo, live)] == ["in_progress", "success"]


async def test_a_deploy_still_served_by_the_old_file_at_the_deadline_fails_and_is_rolled_back(world: World) -> None:
    repo, deploy = await repos(world, "iris-stuck", deadline=DEADLINE)
    await merge(world, repo, "iris-stuck", "v1")
    serve(world, "iris-stuck", "v1")
    await phase_becomes(world, repo, "v1", "live", 30)

    number = await merge(world, repo, "iris-stuck", "v2")  # the cluster never picks it up: v1 keeps serving

    failed = await phase_becomes(world, repo, "v2", "failed", DEADLINE + 15)
    reason = f"not live after {DEADLINE}s: 0 of 1 ready replicas serve the new file"
    assert failed.rollout_detail.startswith(reason) and "1 replica still serves the old file" in failed.rollout_detail
    [_, failure] = statuses(world, repo, failed)
    assert failure.state == "failure" and failure.description.startswith(reason)
    assert "not live" in dossier(world, repo, number) and "still serves the old file" in dossier(world, repo, number)

    async with world.engine.connect() as conn:
        [incident] = (await conn.execute(select(GuardIncident).where(GuardIncident.repo == repo))).all()
    assert (incident.trigger, incident.bad_deployment_id) == ("live", failed.id)
    v1 = await row(world, repo, "v1")
    assert incident.target_version == v1.version  # the last version seen live
    for _ in range(100):
        if rollback_pulls(world, deploy, "iris-stuck"):
            break
        await asyncio.sleep(0.2)
    [pull] = rollback_pulls(world, deploy, "iris-stuck")
    assert f"not live after {DEADLINE}s" in pull.body and "```promql" in pull.body and "(pinned)" in pull.title


async def test_with_on_not_live_alert_a_server_that_crashes_on_load_fails_the_deploy_alerts_and_opens_no_pr(
    world: World,
) -> None:
    repo, deploy = await repos(world, "iris-alert", deadline=DEADLINE, on_not_live="alert")
    await merge(world, repo, "iris-alert", "v1")
    old = serve(world, "iris-alert", "v1")
    await phase_becomes(world, repo, "v1", "live", 30)
    labels = {"repo": repo, "env": ENV, "model": "iris-alert", "check": "live"}
    alerts = REGISTRY.get_sample_value("modelship_guard_alerts_total", labels) or 0

    await merge(world, repo, "iris-alert", "v3")
    # The sync replaces the replica; the new one gets bytes that are not the pinned file and refuses to serve.
    retire(world, old)
    broken = world.tmp / "iris-alert-v3-broken.onnx"
    broken.write_bytes(world.files["v3"][:-10])
    pinned = hashlib.sha256(world.files["v3"]).hexdigest()
    crashing = model_server(
        broken, name="iris-alert", version="v3", sha256=pinned, env=ENV, log=broken.with_suffix(".log")
    )
    with pytest.raises(ProcessError, match="refusing to serve"):
        crashing.start()

    failed = await phase_becomes(world, repo, "v3", "failed", DEADLINE + 15)
    assert failed.rollout_detail.startswith(f"not live after {DEADLINE}s: no replica is up")
    assert [s.state for s in statuses(world, repo, failed)] == ["in_progress", "failure"]
    assert REGISTRY.get_sample_value("modelship_guard_alerts_total", labels) == alerts + 1
    assert REGISTRY.get_sample_value("modelship_guard_alert_open", labels) == 1
    await asyncio.sleep(1)
    assert rollback_pulls(world, deploy, "iris-alert") == []
    async with world.engine.connect() as conn:
        assert (await conn.execute(select(GuardIncident).where(GuardIncident.repo == repo))).all() == []
