"""The deployments table through its one owner, on SQLite and PostgreSQL: what runs, what ran, what moved."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import deployments


async def deploy(
    engine: AsyncEngine, version: str, state: str = "deployed", env: str = "prod", **values: object
) -> int:
    async with engine.begin() as conn:
        return await deployments.record(
            conn, repo="o/m", environment=env, model="iris", version=version, deploy_repo="o/d", state=state, **values
        )


async def states(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        return [(d.version, d.state) for d in await deployments.history(conn, "o/m", "prod", "iris")]


async def test_the_current_deployment_is_the_newest_deployed_row_per_environment_and_model(engine: AsyncEngine) -> None:
    await deploy(engine, "v1")
    v2 = await deploy(engine, "v2")
    await deploy(engine, "v3", "failed")  # a failed deploy never replaced v2
    staging = await deploy(engine, "v3", env="staging")
    async with engine.connect() as conn:
        current = await deployments.current_deployments(conn)
        assert [(d.id, d.environment, d.version) for d in current] == [(v2, "prod", "v2"), (staging, "staging", "v3")]
        latest = await deployments.latest(conn, "o/m", "prod", "iris")
        assert latest is not None and latest["version"] == "v3" and latest["state"] == "failed"
        v1 = await deployments.latest(conn, "o/m", "prod", "iris", version="v1")
        assert v1 is not None and v1["state"] == "superseded"
    # Recording a deployed version superseded the one that ran; a failure left it running.
    assert await states(engine) == [("v1", "superseded"), ("v2", "deployed"), ("v3", "failed")]


async def test_a_proposal_is_retired_once_and_an_abandoned_one_can_still_merge(engine: AsyncEngine) -> None:
    pending = await deploy(engine, "v1", "pending", deploy_pr=7)
    replaced = await deploy(engine, "v0", "pending", deploy_pr=7)
    async with engine.begin() as conn:
        await deployments.abandon_proposal(conn, replaced, "replaced on o/d#7")
        await deployments.abandon_proposal(conn, replaced, "said twice")  # no longer pending: kept as it was
        [row] = [r for r in await deployments.of_deploy_pr(conn, "o/d", 7) if r["id"] == replaced]
        assert (row["state"], row["detail"]) == ("abandoned", "replaced on o/d#7")
        assert await deployments.retire_proposal(conn, pending)
        assert not await deployments.retire_proposal(conn, pending), "another worker took it first"
        assert await deployments.retire_proposal(conn, replaced), "a PR closed, reopened and merged"


async def test_the_guard_marks_health_and_rollbacks_and_the_github_deployment_is_remembered(
    engine: AsyncEngine,
) -> None:
    bad = await deploy(engine, "v2", source_pr=4, sha256="b" * 64)
    async with engine.begin() as conn:
        await deployments.set_health(conn, bad, "degraded")
        await deployments.set_github_deployment(conn, bad, 99)
        [row] = await deployments.of_source_pr(conn, "o/m", 4)
        assert (row["health"], row["github_deployment_id"]) == ("degraded", 99)
        await deployments.mark_rolled_back(conn, bad)
        view = await deployments.deployment(conn, bad)
        assert view is not None and (view.state, view.health, view.short) == ("rolled_back", "degraded", "v2")
        assert [r["id"] for r in await deployments.of_repo(conn, "o/m")] == [bad]
        assert await deployments.deployed_digests(conn) == {"b" * 64}


async def test_each_kind_of_row_round_trips_and_an_unknown_kind_is_refused(engine: AsyncEngine) -> None:
    ids = {kind: await deploy(engine, f"v-{kind}", kind=kind) for kind in deployments.KINDS}
    plain = await deploy(engine, "v-plain")  # a writer that says nothing is a deploy
    async with engine.connect() as conn:
        rows = {r["id"]: r["kind"] for r in await deployments.of_model(conn, "o/m", "iris")}
        views = {d.id: d.kind for d in await deployments.history(conn, "o/m", "prod", "iris")}
    assert {rows[i]: kind for kind, i in ids.items()} == {k: k for k in deployments.KINDS}
    assert rows[plain] == views[plain] == "deploy"
    assert views == rows
    with pytest.raises(ValueError, match=r"deployments\.kind 'hotfix' is not one of deploy, promote, rollback, unpin"):
        await deploy(engine, "v-bad", kind="hotfix")


async def test_an_unpin_row_carries_on_what_the_running_version_had_and_starts_no_rollout(engine: AsyncEngine) -> None:
    pinned = await deploy(engine, "v1", kind="rollback", pinned=True, github_deployment_id=41, health="healthy")
    async with engine.begin() as conn:
        lifted = await deployments.record_unpin(
            conn, repo="o/m", environment="prod", model="iris", version="v1", deploy_repo="o/d", actor="alice"
        )
        row = await deployments.running(conn, "o/m", "prod", "iris")
        assert row is not None and row["id"] == lifted
        carried = (row["kind"], row["pinned"], row["health"], row["github_deployment_id"])
        assert carried == ("unpin", False, "healthy", 41)
        assert row["rollout"] is None and await deployments.rollouts(conn) == []
        # The values file named a version no running row has (written by hand): the row starts fresh.
        other = await deployments.record_unpin(
            conn, repo="o/m", environment="prod", model="iris", version="v0", deploy_repo="o/d", actor="alice"
        )
        fresh = await deployments.running(conn, "o/m", "prod", "iris")
        assert fresh is not None and fresh["id"] == other
        assert (fresh["health"], fresh["github_deployment_id"]) == ("unknown", None)
    assert await states(engine) == [("v1", "superseded"), ("v1", "superseded"), ("v0", "deployed")]
    assert pinned < lifted < other


async def test_the_matrix_look_reads_the_stamp_and_the_rows_of_the_targets_changed_since_it(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        empty, none = await deployments.matrix_look(conn)
    assert (empty.last, empty.max_id, empty.rows, empty.newer, none) == (None, 0, 0, 0, [])

    first = await deploy(engine, "a")
    pending = await deploy(engine, "b", state="pending")  # a proposal under way: the running row is still "a"
    staging = await deploy(engine, "a", env="staging")
    async with engine.connect() as conn:
        stamp, every = await deployments.matrix_look(conn)
    assert (stamp.max_id, stamp.rows, stamp.newer) == (staging, 3, 3)
    assert [(r["id"], r["review_summary"]) for r in every] == [(first, None), (pending, None), (staging, None)]
    assert all(r["changed_at"] is not None for r in every) and "stamp_rows" not in every[0]

    assert stamp.last is not None
    async with engine.begin() as conn:
        await deployments.set_health(conn, staging, "degraded")
    async with engine.connect() as conn:
        later, changed = await deployments.matrix_look(conn, stamp.last, stamp.max_id)
        quiet, nothing = await deployments.matrix_look(conn, later.last, later.max_id)
    assert [(r["id"], r["health"]) for r in changed] == [(staging, "degraded")]  # only the target that changed
    assert (later.rows, later.newer) == (3, 0) and later.last is not None and later.last > stamp.last
    assert (quiet, nothing) == (later, [])
