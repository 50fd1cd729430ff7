"""Watcher rounds against a real Prometheus: what is persisted, what is an alert, what is never a rollback.

The rounds are driven one by one with a stepped clock (one interval per round), so each test
controls how many analyses ran; the queries and the model servers are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from bot.app import Service
from bot.config.repo import parse_repo_config
from bot.guard.analysis import CheckState, Decision
from bot.guard.prometheus import PrometheusHTTP
from bot.guard.service import Guard
from bot.guard.templates import QueryTemplate, load_templates
from bot.guard.watcher import Watcher, guard_checks, is_due, window
from bot.settings import SOURCE_ROOT
from bot.store.guard_models import GuardCheckState
from devkit.devhub import RunningDevHub
from devkit.guard_world import MODELS, V2, World, build_world, config, create_app, rows, running_bot
from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA
from devkit.traffic import predict_forever
from tests.fixtures.prometheus import PrometheusServer, free_port
from tests.guard.conftest import ModelServer

PROMQL = SOURCE_ROOT / "config" / "promql"  # the default of MODELSHIP_PROMQL_DIR


class Clock:
    """Real time to start with (deploy times are real), then one interval per round."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def bot_world(devhub: RunningDevHub, data_dir: Path, **guard: Any) -> AsyncIterator[tuple[Service, World]]:
    app = await create_app(devhub.hub)
    async with running_bot(devhub, data_dir, app) as service:
        world = await build_world(devhub.hub, service.services.engine, app, guard_config=config(**guard))
        yield service, world


def watcher(
    service: Service,
    url: str,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    holder: str | None = None,
    lease_ttl: float | None = None,
    **templates: QueryTemplate,
) -> Watcher:
    guard = service.services.guard
    assert isinstance(guard, Guard)
    return Watcher(
        service.services.engine,
        PrometheusHTTP(url, session, timeout=2),
        guard.rollbacks,
        templates={**load_templates(PROMQL), **templates},
        clock=clock,
        holder=holder,
        lease_ttl=lease_ttl,
    )


async def decisions(w: Watcher, clock: Clock, rounds: int) -> list[Decision]:
    seen = []
    for _ in range(rounds):
        clock.now += 1.0
        [evaluation] = (await w.round()).evaluations
        seen.append(evaluation.decision)
    return seen


def test_repository_durations_become_promql_windows_and_checks_inherit_the_guard_policy() -> None:
    guard = parse_repo_config(config(failure_limit=4, error_limit=2)).environments["production"].guard
    assert guard is not None
    [check] = guard_checks(guard)
    assert (check.window, check.failure_limit, check.consecutive_error_limit) == ("5s", 4, 2)
    assert window(0.5) == "500ms" and window(300) == "300s"
    assert is_due({}, 30, 0) and not is_due({"c": CheckState(last_checked=100.0)}, 30, 110.0)
    assert is_due({"c": CheckState(last_checked=100.0)}, 30, 129.9)  # a round a little early still counts


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_prometheus_down_is_an_error_then_an_alert_and_never_a_rollback(
    devhub: RunningDevHub, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with bot_world(devhub, tmp_path / "bot", failure_limit=1, error_limit=3) as (service, _):
        clock = Clock()
        w = watcher(service, f"http://127.0.0.1:{free_port()}", session, clock)
        labels = {"repo": MODELS, "env": "production", "model": "iris", "check": "error_rate"}
        before = REGISTRY.get_sample_value("modelship_guard_alerts_total", labels)
        seen = await decisions(w, clock, 4)
        assert seen == [Decision.ERROR, Decision.ERROR, Decision.ERROR_ALERT, Decision.ERROR]
        after = REGISTRY.get_sample_value("modelship_guard_alerts_total", labels)
        assert after == (before or 0) + 1
        assert [(r.state, r.health) for r in await rows(service.services.engine)][-1] == ("deployed", "error")
        status = await service.services.guard.status(MODELS)
        assert "ALERT: acme/models production iris `error_rate`: 4 failed queries in a row" in status
        assert "unreachable" in status and "Open incidents**\n\nNone." in status


async def test_with_several_replicas_one_watches_until_it_stops_or_its_lease_expires(
    devhub: RunningDevHub, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with bot_world(devhub, tmp_path / "bot") as (service, _):
        clock, down = Clock(), f"http://127.0.0.1:{free_port()}"
        a = watcher(service, down, session, clock, holder="pod-a", lease_ttl=60)
        b = watcher(service, down, session, clock, holder="pod-b", lease_ttl=0.5)

        first, second = await a.round(), await b.round()
        assert first.leading and len(first.evaluations) == 1
        assert not second.leading and second.evaluations == []  # no second count, no second query

        running = asyncio.create_task(a.run())
        await asyncio.sleep(0.2)
        running.cancel()  # a shut down leader hands its lease back at once
        with contextlib.suppress(asyncio.CancelledError):
            await running
        clock.now += 1.0
        taken = await b.round()
        assert taken.leading and len(taken.evaluations) == 1

        # pod-b dies without resigning: pod-a waits for its lease (0.5 s) to expire, then takes over.
        clock.now += 1.0
        assert not (await a.round()).leading
        await asyncio.sleep(0.6)
        assert (await a.round()).leading


@pytest.mark.parametrize(
    ("query", "outcome"),
    [("vector(0) > 1", "no_data"), ("vector(0) / 0", "nan"), ("vector(1) / 0", "inf")],
    ids=["empty", "nan", "inf"],
)
async def test_empty_nan_and_inf_answers_are_inconclusive_however_many_in_a_row(
    devhub: RunningDevHub,
    tmp_path: Path,
    session: aiohttp.ClientSession,
    prometheus: PrometheusServer,
    query: str,
    outcome: str,
) -> None:
    async with bot_world(devhub, tmp_path / "bot", failure_limit=1) as (service, world):
        clock = Clock()
        probe = QueryTemplate(name="error_rate", query=query)
        w = watcher(service, prometheus.url, session, clock, error_rate=probe)
        assert await decisions(w, clock, 3) == [Decision.INCONCLUSIVE] * 3
        assert world.rollback_pulls() == []
        assert [r.health for r in await rows(service.services.engine)][-1] == "inconclusive"
        async with service.services.engine.connect() as conn:
            [stored] = (await conn.execute(select(GuardCheckState.state))).scalars().all()
        assert stored["last_outcome"] == outcome and stored["consecutive_failures"] == 0


@pytest.mark.slow
async def test_breaches_below_the_failure_limit_wait_and_the_count_survives_a_restart(
    devhub: RunningDevHub,
    tmp_path: Path,
    session: aiohttp.ClientSession,
    prometheus: PrometheusServer,
    start_model_server: Callable[..., ModelServer],
) -> None:
    server = start_model_server(V2)
    prometheus.add_target(server.address)
    load = asyncio.create_task(predict_forever(session, [server.url], [IRIS_SETOSA, IRIS_VIRGINICA], 0.04))
    try:
        async with session.post(f"{server.url}/admin/faults", json={"error_rate": 0.5}) as response:
            assert response.status == 200
        rate = f'modelship_model_requests_total{{version="{V2}"'
        await asyncio.to_thread(
            prometheus.wait_for,
            f'sum(rate({rate},status=~"5.."}}[5s])) / sum(rate({rate}}}[5s])) > 0.02',
            30,
        )
        async with bot_world(devhub, tmp_path / "bot", failure_limit=4) as (service, world):
            clock = Clock()
            first = watcher(service, prometheus.url, session, clock)
            assert await decisions(first, clock, 3) == [Decision.DEGRADED] * 3
            assert world.rollback_pulls() == []  # 3 breaches in a row, failure_limit 4
            async with service.services.engine.connect() as conn:
                [stored] = (await conn.execute(select(GuardCheckState.state))).scalars().all()
            assert stored["consecutive_failures"] == 3

            # A new watcher (as after a restart) reads the count back: the 4th breach rolls back.
            second = watcher(service, prometheus.url, session, clock)
            # auto_merge: the next round already watches the restored V1, which serves nothing here.
            assert await decisions(second, clock, 2) == [Decision.ROLLBACK, Decision.INCONCLUSIVE]
            [pull] = world.rollback_pulls()
            assert pull.merged
            assert "error_rate" in (pull.body or "") and "```mermaid" in (pull.body or "")
            assert "breach 4 of 4 in a row" in (pull.body or "")
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        prometheus.remove_target(server.address)
