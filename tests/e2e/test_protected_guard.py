"""A protected environment under the guard, end to end: promoted through deploy-repo PRs that a person
merges, watched through a real Prometheus scraping real model servers, rolled back on a breach.

Nothing here writes a ``deployments`` row by hand: production runs what the merged deploy PRs recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.queue import ClaimedJob
from bot.store.review_models import Deployment
from devkit import demo
from devkit.devhub import DevHub, RunningDevHub
from devkit.guard_world import create_app, running_bot, wait_until
from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA
from tests.fixtures.bot import settle_jobs
from tests.fixtures.model_servers import ModelServer
from tests.fixtures.prometheus import PrometheusServer

pytestmark = pytest.mark.slow

MODELS, DEPLOY = "acme/iris", "acme/iris-deploy"
BOT = "modelship[bot]"
CONFIG = f"""\
version: 1
models:
  - name: iris
    path: models/iris.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
  staging: {{auto: true, requires: []}}  # reviews are not this test's subject (no review runs here)
  production:
    upstream: staging
    via: pull_request
    guard:
      interval: 1s
      initial_delay: 0s
      failure_limit: 3
      auto_merge: false
      checks:
        - {{template: error_rate, max: 0.02, window: 5s}}
deploy: {{repository: {DEPLOY}}}
"""


async def production(engine: AsyncEngine) -> list[tuple[str, str, str, bool]]:
    """(version, state, health, pinned) of every production row, oldest first."""
    async with engine.connect() as conn:
        query = select(Deployment.version, Deployment.state, Deployment.health, Deployment.pinned)
        query = query.where(Deployment.repo == MODELS, Deployment.environment == "production")
        return [tuple(r) for r in await conn.execute(query.order_by(Deployment.id))]  # type: ignore[misc]


async def ship(hub: DevHub, engine: AsyncEngine, branch: str, content: bytes) -> tuple[int, str]:
    """A PR that changes the model, merged: staging gets it on its own."""
    await hub.push(MODELS, branch, {"models/iris.onnx": content})
    number = await hub.open_pr(MODELS, branch)
    sha = await hub.merge_pr(MODELS, number)
    await asyncio.sleep(0.2)
    await settle_jobs(engine, horizon=10, timeout=30)
    return number, sha


async def promote_and_merge(hub: DevHub, engine: AsyncEngine, number: int, version: str) -> None:
    """`/modelship promote production`, then carol merges the deploy PR the bot opened."""
    await hub.comment(MODELS, number, "/modelship promote production")

    def opened() -> list[Any]:
        return [p for p in hub.pulls.get(DEPLOY, {}).values() if p.state == "open" and p.user.login == BOT]

    await wait_until(opened, 30)
    [pull] = opened()
    await hub.merge_pr(DEPLOY, pull.number, user="carol")

    async def recorded() -> bool:
        return (version, "deployed") in [(v, s) for v, s, _, _ in await production(engine)]

    await wait_until(recorded, 30)


def server_for(start: Callable[..., ModelServer], prometheus: PrometheusServer, version: str) -> ModelServer:
    server = start(version)
    prometheus.add_target(server.address)
    prometheus.wait_for(f'up{{instance="{server.address}"}} == 1', 30)
    return server


async def test_a_merged_production_deploy_is_watched_and_a_breach_opens_a_rollback_pr(
    devhub: RunningDevHub,
    tmp_path: Path,
    prometheus: PrometheusServer,
    start_model_server: Callable[..., ModelServer],
) -> None:
    hub = devhub.hub
    app = await create_app(hub)
    settings = {"prometheus_url": prometheus.url, "guard_interval_seconds": 1.0}
    async with running_bot(devhub, tmp_path / "bot", app, **settings) as service:

        async def no_review(job: ClaimedJob) -> None:
            """Reviews are another feature (and need a sandbox); deploys do not wait for them."""

        cast(dict[str, Any], service.workers.runners)["review"] = no_review
        engine = service.services.engine
        await hub.create_repo(DEPLOY, {"README.md": "# deploy\n"})
        await hub.create_repo(
            MODELS,
            {".modelship.yml": CONFIG, "models/iris.onnx": b"v0", "data/eval.csv": "a,label\n1,0\n"},
        )
        await hub.install("acme", [MODELS, DEPLOY], app[0])
        hub.set_permission(MODELS, "alice", "write")

        first_pr, v1 = await ship(hub, engine, "one", b"iris v1")
        v1_server = await asyncio.to_thread(server_for, start_model_server, prometheus, v1)
        await promote_and_merge(hub, engine, first_pr, v1)
        second_pr, v2 = await ship(hub, engine, "two", b"iris v2")
        v2_server = await asyncio.to_thread(server_for, start_model_server, prometheus, v2)
        await promote_and_merge(hub, engine, second_pr, v2)

        async with demo.traffic([v1_server.url, v2_server.url], [IRIS_SETOSA, IRIS_VIRGINICA]) as session:
            try:

                async def v2_healthy() -> bool:
                    return (await production(engine))[-1] == (v2, "deployed", "healthy", False)

                await wait_until(v2_healthy, 30)  # the guard watches what the merged deploy PR recorded

                async with session.post(f"{v2_server.url}/admin/faults", json={"error_rate": 0.5}) as response:
                    assert response.status == 200

                def rollback_pulls() -> list[Any]:
                    return [p for p in hub.pulls[DEPLOY].values() if p.head_ref == "modelship/rollback/production/iris"]

                await wait_until(rollback_pulls, 20)
                [pull] = rollback_pulls()
                assert pull.state == "open"  # auto_merge: false, so a person decides
                assert f"`{v2}`" in (pull.body or "") and "error_rate" in (pull.body or "")

                await hub.merge_pr(DEPLOY, pull.number, user="carol")

                async def restored() -> bool:
                    rows = await production(engine)
                    return (v2, "rolled_back") in [(v, s) for v, s, _, _ in rows] and rows[-1][::3] == (v1, True)

                await wait_until(restored, 10)
            finally:
                async with session.post(f"{v2_server.url}/admin/faults", json={"error_rate": 0.0}) as response:
                    assert response.status == 200
