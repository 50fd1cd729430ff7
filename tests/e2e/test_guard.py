"""The guard end to end: the real bot watches real model servers through a real Prometheus.

Two model servers serve iris V1 and V2 with metrics; Prometheus scrapes them every second; devhub
hosts the model repository (two shipped PRs) and the deploy repository (V1 then V2 in its history).
The bot's watcher runs as in production, on a 1 s interval with failure_limit 3.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.context import need
from bot.deploy.service import DeployService
from bot.deploy.targets import Target
from bot.store.guard_models import GuardIncident
from devkit import demo
from devkit.devhub import RunningDevHub
from devkit.guard_world import (
    DEPLOY,
    MODELS,
    REF2,
    V1,
    V2,
    World,
    build_world,
    config,
    create_app,
    rows,
    running_bot,
    wait_until,
)
from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA
from tests.fixtures.model_servers import ModelServer
from tests.fixtures.prometheus import PrometheusServer

INTERVAL, FAILURE_LIMIT = 1.0, 3
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(prometheus: PrometheusServer, start_model_server: Callable[..., ModelServer]) -> dict[str, ModelServer]:
    started = {version: start_model_server(version) for version in (V1, V2)}
    for server in started.values():
        prometheus.add_target(server.address)
    for version in (V1, V2):
        prometheus.wait_for(f'up{{instance="{started[version].address}"}} == 1', 30)
    return started


@pytest.fixture
async def traffic(servers: dict[str, ModelServer]) -> AsyncIterator[aiohttp.ClientSession]:
    """Steady requests to both versions; faults are switched off again afterwards."""
    async with demo.traffic([s.url for s in servers.values()], [IRIS_SETOSA, IRIS_VIRGINICA]) as session:
        try:
            yield session
        finally:
            for server in servers.values():
                async with session.post(f"{server.url}/admin/faults", json={"error_rate": 0.0}) as response:
                    assert response.status == 200


async def inject_errors(session: aiohttp.ClientSession, server: ModelServer, rate: float = 0.5) -> None:
    async with session.post(f"{server.url}/admin/faults", json={"error_rate": rate}) as response:
        assert response.status == 200


def guard_settings(prometheus: PrometheusServer) -> dict[str, object]:
    return {"prometheus_url": prometheus.url, "guard_interval_seconds": INTERVAL}


async def health_of(engine: AsyncEngine, version: str) -> str:
    return str(next(r.health for r in reversed(await rows(engine)) if r.version == version))


async def restored(engine: AsyncEngine) -> bool:
    states = [(r.version, r.state, r.pinned) for r in await rows(engine)]
    return (V2, "rolled_back", False) in states and states[-1] == (V1, "deployed", True)


async def test_an_error_rate_breach_rolls_back_to_the_last_healthy_version_and_pins_it(
    devhub: RunningDevHub,
    tmp_path: Path,
    prometheus: PrometheusServer,
    servers: dict[str, ModelServer],
    traffic: aiohttp.ClientSession,
) -> None:
    app = await create_app(devhub.hub)
    async with running_bot(devhub, tmp_path / "bot", app, **guard_settings(prometheus)) as service:
        engine = service.services.engine
        world = await build_world(devhub.hub, engine, app, guard_config=config(auto_merge=True))

        async def v2_healthy() -> bool:
            return await health_of(engine, V2) == "healthy"

        await wait_until(v2_healthy, 30)
        # The PR that shipped V2 shows the guard's verdict in its dossier (the Deploy comment).
        await wait_until(lambda: any("✅ healthy" in c for c in world.comments_on(2)), 10)

        breach = time.monotonic()
        await inject_errors(traffic, servers[V2])
        await wait_until(lambda: world.rollback_pulls(), INTERVAL * FAILURE_LIMIT + 10)
        took = time.monotonic() - breach
        assert took <= INTERVAL * FAILURE_LIMIT + 10, f"rollback PR after {took:.1f}s"

        [pull] = world.rollback_pulls()
        await wait_until(lambda: pull.merged, 10)  # auto_merge: true
        body = pull.body or ""
        assert "error_rate" in body and "```promql" in body and "```mermaid" in body and "max 0.02" in body
        values = await world.deployed_values()
        assert values is not None and values.revision == V1 and values.pinned
        assert "error_rate" in values.pin_reason
        await wait_until(lambda: world.rollback_notes(2), 10)
        [comment] = world.rollback_notes(2)
        assert f"rolled back iris `{V2[:7]}`" in comment and str(pull.number) in comment

        assert await restored(engine)

        # A later merge of the same bad version does not deploy over the pin: the real auto-deploy path.
        deploy = service.services.deploy
        assert isinstance(deploy, DeployService)
        installation = await deploy.installations(MODELS)
        assert installation is not None
        gh = await service.services.github.for_installation(installation)
        repo_config = await deploy.config_at(gh, MODELS, "main")
        assert repo_config is not None
        rule = repo_config.environments["production"]
        result = await deploy.writer.write(
            gh,
            MODELS,
            repo_config,
            Target("production", rule, REF2, on_merge=True),
            installation_id=installation,
            actor="alice",
        )
        assert result.state == "skipped" and result.detail.startswith("pinned")
        after = await world.deployed_values()
        assert after is not None and after.revision == V1 and after.pinned

        # Status and /metrics tell the same story.
        status = await need(service.services.guard, "guard").status(MODELS)
        assert f"`{V1[:7]}`" in status and "| yes |" in status
        async with aiohttp.ClientSession() as client:
            bot_address = urlsplit(devhub.hub.sender.url or "").netloc
            async with client.get(f"http://{bot_address}/metrics") as response:
                exported = await response.text()
        assert f'modelship_guard_health{{env="production",model="iris",repo="{MODELS}"}}' in exported
        assert "modelship_guard_check_value{" in exported


async def test_one_incident_is_one_pr_across_a_restart_and_a_human_merge_is_recorded(
    devhub: RunningDevHub,
    tmp_path: Path,
    prometheus: PrometheusServer,
    servers: dict[str, ModelServer],
    traffic: aiohttp.ClientSession,
) -> None:
    app = await create_app(devhub.hub)
    data_dir = tmp_path / "bot"
    await inject_errors(traffic, servers[V2])
    async with running_bot(devhub, data_dir, app, **guard_settings(prometheus)) as service:
        world = await build_world(devhub.hub, service.services.engine, app, guard_config=config(auto_merge=False))
        await wait_until(lambda: world.rollback_pulls(), 30)
        await wait_until(lambda: world.rollback_notes(2), 10)

    # A new bot on the same database, in the middle of the incident: the breach goes on.
    async with running_bot(devhub, data_dir, app, **guard_settings(prometheus)) as service:
        engine = service.services.engine
        await asyncio.sleep(INTERVAL * (FAILURE_LIMIT + 2))
        [pull] = world.rollback_pulls()
        assert pull.state == "open" and len(world.rollback_notes(2)) == 1
        async with engine.connect() as conn:
            incidents = (await conn.execute(select(GuardIncident.state, GuardIncident.pr_number))).all()
        assert [tuple(i) for i in incidents] == [("open", pull.number)]
        assert await health_of(engine, V2) == "degraded"

        await devhub.hub.merge_pr(DEPLOY, pull.number)
        await wait_until(lambda: restored(engine), 10)
        assert len(world.rollback_pulls()) == 1


async def test_the_rollback_command_in_a_pr_comment_uses_the_same_path(devhub: RunningDevHub, tmp_path: Path) -> None:
    app = await create_app(devhub.hub)
    async with running_bot(devhub, tmp_path / "bot", app) as service:
        world: World = await build_world(
            devhub.hub, service.services.engine, app, guard_config=config(auto_merge=False)
        )
        devhub.hub.set_permission(MODELS, "alice", "write")
        await devhub.hub.comment(MODELS, 2, "/modelship rollback production --dry-run")
        await wait_until(lambda: any("Dry run" in c for c in world.comments_on(2)), 20)
        assert world.rollback_pulls() == []

        await devhub.hub.comment(MODELS, 2, f"/modelship rollback production to {V1[:7]}")
        await wait_until(lambda: world.rollback_pulls(), 20)
        await wait_until(lambda: any("Rollback of iris" in c for c in world.comments_on(2)), 20)
        [pull] = world.rollback_pulls()
        [reply] = [c for c in world.comments_on(2) if "Rollback of iris" in c]
        assert f"#{pull.number}" in reply and "pinned" in reply
        assert "requested by @alice" in (pull.body or "")
