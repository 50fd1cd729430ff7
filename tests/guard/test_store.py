"""The guard's own tables on SQLite and PostgreSQL: what a restarted watcher reads back."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.guard import store
from bot.guard.analysis import CheckState
from bot.store import deployments
from bot.store.base import utcnow
from bot.store.models import Installation


async def deploy(engine: AsyncEngine, version: str) -> int:
    async with engine.begin() as conn:
        return await deployments.insert(
            conn, repo="o/m", environment="prod", model="iris", version=version, deploy_repo="o/d", state="deployed"
        )


async def test_states_are_upserted_and_a_redeploy_of_the_same_version_starts_fresh(engine: AsyncEngine) -> None:
    first = await deploy(engine, "v1")
    async with engine.begin() as conn:
        [d] = await deployments.current_deployments(conn)
        for failures in (1, 2):
            await store.save_states(
                conn, d, [("error_rate", "degraded", "r", CheckState(consecutive_failures=failures))]
            )
        stored = await store.load_states(conn, [d])
    assert stored[first]["error_rate"].state.consecutive_failures == 2

    again = await deploy(engine, "v1")
    async with engine.connect() as conn:
        [d] = await deployments.current_deployments(conn)
        assert d.id == again and await store.load_states(conn, [d]) == {again: {}}


async def test_an_incident_key_is_taken_once(engine: AsyncEngine) -> None:
    values = {
        "key": "guard:o/m:prod:iris:1",
        "repo": "o/m",
        "environment": "prod",
        "model": "iris",
        "bad_version": "v2",
        "bad_deployment_id": 2,
        "target_version": "v1",
        "target_deployment_id": 1,
        "deploy_repo": "o/d",
        "values_path": "environments/prod/iris/values.yaml",
        "branch": "modelship/rollback/prod/iris",
        "trigger": "guard",
    }
    async with engine.begin() as conn:
        assert await store.create_incident(conn, values)
        assert not await store.create_incident(conn, {**values, "reason": "again"})
        [incident] = await store.incidents(conn, open_only=True)
    assert incident.state == "opening" and incident.is_open


async def test_the_installation_of_a_repository_comes_from_the_installation_webhooks(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            Installation.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "id": 1,
                    "account": "acme",
                    "repositories": {"all": False, "names": ["acme/models"]},
                    "deleted": False,
                },
                {"id": 2, "account": "beta", "repositories": {"all": True, "names": []}, "deleted": False},
                {"id": 3, "account": "gone", "repositories": {"all": True, "names": []}, "deleted": True},
            ],
        )
    assert await store.installation_for(engine, "acme/models") == 1
    assert await store.installation_for(engine, "beta/anything") == 2
    assert await store.installation_for(engine, "acme/deploy") is None
    assert await store.installation_for(engine, "gone/x") is None


async def test_one_of_many_replicas_racing_for_the_watcher_lease_gets_it(engine: AsyncEngine) -> None:
    async def take(holder: str, ttl: float = 30.0, now: datetime | None = None) -> bool:
        async with engine.begin() as conn:
            return await store.take_lease(conn, "guard-watcher", holder, ttl, now)

    won = list(await asyncio.gather(*[take(f"pod-{i}") for i in range(8)]))
    assert won.count(True) == 1, won
    leader = f"pod-{won.index(True)}"
    assert await take(leader)  # the holder renews
    assert not await take("pod-late")
    later = utcnow() + timedelta(seconds=31)  # the leader stopped renewing
    racing = list(await asyncio.gather(*[take(f"pod-{i}", now=later) for i in range(8)]))
    assert racing.count(True) == 1, racing
    async with engine.begin() as conn:
        await store.drop_lease(conn, "guard-watcher", f"pod-{racing.index(True)}")
    assert await take("pod-late")
