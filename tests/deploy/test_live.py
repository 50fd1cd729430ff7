"""The live tracker's loop on a real database (SQLite and PostgreSQL): one replica tracks, a restart carries on,
and every phase is heard exactly once.

Prometheus is the one edge played here (a scripted VectorProvider: what the replicas serve this round);
tests/e2e/test_live.py runs the same loop against a real Prometheus and real model servers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config.repo import parse_repo_config
from bot.context import DeployTransition
from bot.deploy.live import LiveTracker
from bot.deploy.records import DeployRecords
from bot.guard.prometheus import Series, VectorResult
from bot.guard.templates import load_templates
from bot.settings import SOURCE_ROOT
from bot.store import deployments

OLD, NEW = "b" * 64, "a" * 64
CONFIG = parse_repo_config(
    """\
version: 1
models:
  - {name: churn, path: models/churn.onnx, task: classification, dataset: {path: data/eval.csv, target: label}}
environments:
  staging: {auto: true, progress_deadline: 60s}
deploy: {repository: acme/deploy}
"""
)
TEMPLATE = load_templates(SOURCE_ROOT / "config" / "promql" / "live")["serving"]


class Replicas:
    """What Prometheus answers: ready replicas by sha256 (set by the test), and the queries it got."""

    def __init__(self, **by_sha: int) -> None:
        self.by_sha = dict(by_sha)
        self.queries: list[str] = []

    async def vector(self, promql: str) -> VectorResult:
        self.queries.append(promql)
        return VectorResult(tuple(Series({"sha256": sha}, float(n)) for sha, n in self.by_sha.items()))


class Configs:
    async def read_config(self, repo: str) -> Any:
        return CONFIG


class Heard:
    def __init__(self) -> None:
        self.events: list[DeployTransition] = []

    async def __call__(self, conn: AsyncConnection, event: DeployTransition) -> None:
        self.events.append(event)


async def no_github(repo: str) -> Any:
    return None  # rows without a GitHub Deployment or source PR never call GitHub


def tracker(engine: AsyncEngine, replicas: Replicas, heard: Heard, *, holder: str, ttl: float = 60) -> LiveTracker:
    return LiveTracker(
        engine,
        DeployRecords(engine, web_url="https://github.com", bot_login="modelship[bot]", live_tracking=True),
        configs=Configs(),
        github_for=no_github,
        provider=replicas,
        template=TEMPLATE,
        listeners=[heard],
        interval=0.1,
        holder=holder,
        lease_ttl=ttl,
    )


async def deploy(engine: AsyncEngine, sha256: str, commit: str) -> int:
    async with engine.begin() as conn:
        return await deployments.record(
            conn,
            track=True,  # the service runs live tracking
            repo="acme/models",
            environment="staging",
            model="churn",
            version=commit * 40,
            deploy_repo="acme/deploy",
            deploy_commit=commit * 40,
            sha256=sha256,
            state="deployed",
        )


async def phase(engine: AsyncEngine, deployment_id: int) -> tuple[str, str]:
    async with engine.connect() as conn:
        row = await deployments.latest(conn, "acme/models", "staging", "churn")
    assert row is not None and row["id"] == deployment_id
    return row["rollout"], row["rollout_told"]


async def test_a_deployed_row_starts_committed_and_remembers_the_file_served_before(engine: AsyncEngine) -> None:
    await deploy(engine, OLD, "1")
    second = await deploy(engine, NEW, "2")

    async with engine.connect() as conn:
        row = await deployments.latest(conn, "acme/models", "staging", "churn")
    assert row is not None and row["id"] == second
    assert (row["rollout"], row["previous_sha256"], row["live_at"]) == ("committed", OLD, None)
    assert row["committed_at"] is not None


async def test_only_the_lease_holder_tracks_and_another_replica_takes_over_when_it_resigns(engine: AsyncEngine) -> None:
    await deploy(engine, OLD, "1")
    new = await deploy(engine, NEW, "2")
    replicas, heard = Replicas(**{OLD: 1, NEW: 1}), Heard()
    a, b = tracker(engine, replicas, heard, holder="pod-a"), tracker(engine, replicas, heard, holder="pod-b")

    first, second = await a.round(), await b.round()

    assert first.leading and not second.leading
    assert len(replicas.queries) == 1  # Prometheus was asked once, by the leader
    assert 'model="churn"' in replicas.queries[0] and 'env="staging"' in replicas.queries[0]
    assert await phase(engine, new) == ("rolling_out", "rolling_out")

    await a.lease.resign()
    replicas.by_sha = {NEW: 2}
    taken = await b.round()

    assert taken.leading and await phase(engine, new) == ("live", "live")


async def test_a_restarted_tracker_carries_on_and_every_phase_is_heard_once(engine: AsyncEngine) -> None:
    await deploy(engine, OLD, "1")
    new = await deploy(engine, NEW, "2")
    replicas, heard = Replicas(**{OLD: 1, NEW: 1}), Heard()
    before = tracker(engine, replicas, heard, holder="pod-a")
    await before.round()
    await before.round()  # nothing changed: nothing new is heard

    after = tracker(engine, replicas, heard, holder="pod-a")  # the process restarted (same pod)
    replicas.by_sha = {NEW: 1}
    await after.round()
    await after.round()

    assert [(e.phase, e.key) for e in heard.events if e.deployment_id == new] == [
        ("committed", f"deploy:{new}:committed"),
        ("rolling_out", f"deploy:{new}:rolling_out"),
        ("live", f"deploy:{new}:live"),
    ]
    [live] = [e for e in heard.events if e.phase == "live"]
    assert live.live_at is not None and live.committed_at is not None and live.sha256 == NEW


async def test_a_listener_that_fails_rolls_the_told_mark_back_and_hears_it_again(engine: AsyncEngine) -> None:
    new = await deploy(engine, NEW, "1")
    replicas, heard = Replicas(**{NEW: 1}), Heard()
    calls: list[str] = []

    async def flaky(conn: AsyncConnection, event: DeployTransition) -> None:
        calls.append(event.phase)
        if len(calls) == 1:
            raise RuntimeError("outbox full")

    watcher = tracker(engine, replicas, heard, holder="pod-a")
    watcher.listeners = [flaky, heard]
    await watcher.round()  # the failure is logged and rolled back; the round tells it again at its end

    assert calls == ["committed", "committed"]
    # Not judged in the round whose start could not be told: no phase is ever skipped for a listener.
    assert await phase(engine, new) == ("committed", "committed")

    await watcher.round()

    assert await phase(engine, new) == ("live", "live")
    assert [e.phase for e in heard.events] == ["committed", "live"]  # each once: the failed try wrote nothing


async def test_a_commit_wakes_the_loop_so_committed_is_heard_at_once_not_a_round_later(engine: AsyncEngine) -> None:
    import asyncio

    replicas, heard = Replicas(), Heard()
    loop = tracker(engine, replicas, heard, holder="pod-a")
    loop.interval = 60.0  # the next regular round is a minute away
    running = asyncio.create_task(loop.run())
    try:
        for _ in range(50):  # the first round (nothing to do) has run
            if loop.rounds:
                break
            await asyncio.sleep(0.05)
        new = await deploy(engine, NEW, "1")
        loop.wake()  # what DeployRecords.on_deployed does after recording the commit
        for _ in range(40):
            if heard.events:
                break
            await asyncio.sleep(0.05)
        assert [(e.deployment_id, e.phase) for e in heard.events] == [(new, "committed")]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_rows_from_before_live_tracking_are_never_judged_or_failed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:  # what migration 5c0d7e1f9a3b leaves on an upgraded database
        old = await deployments.record(
            conn, repo="acme/models", environment="staging", model="churn", version="1" * 40,
            deploy_repo="acme/deploy", deploy_commit="1" * 40, sha256=OLD, state="deployed", rollout=None,
        )  # fmt: skip
    replicas, heard = Replicas(), Heard()

    await tracker(engine, replicas, heard, holder="pod-a").round()

    assert replicas.queries == [] and heard.events == []
    assert await phase(engine, old) == (None, None)
