"""Watcher rounds end to end: real model servers, a real Prometheus scraping them, real analysis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.guard.analysis import CheckConfig, CheckState, Decision
from bot.guard.checks import Deployment, Evaluation, evaluate, evaluate_many
from bot.guard.prometheus import Outcome, PrometheusHTTP
from bot.guard.templates import load_templates
from bot.settings import SOURCE_ROOT
from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA
from devkit.traffic import predict_forever
from tests.fixtures.prometheus import SCRAPE_INTERVAL, PrometheusServer, free_port
from tests.guard.conftest import ModelServer

PROMQL = SOURCE_ROOT / "config" / "promql"  # the default of MODELSHIP_PROMQL_DIR

INTERVAL = 1.0
FAILURE_LIMIT = 3
ERROR_RATE = CheckConfig(template="error_rate", max=0.02, window="5s", failure_limit=FAILURE_LIMIT, initial_delay=0)
LATENCY = CheckConfig(template="latency_p95", max=1.0, window="5s", failure_limit=FAILURE_LIMIT, initial_delay=0)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


class Watcher:
    """The loop the bot's watcher runs, kept here to the part this package owns: rounds and states."""

    def __init__(self, provider: PrometheusHTTP, deployments: list[Deployment], checks: list[CheckConfig]) -> None:
        self.provider, self.deployments, self.checks = provider, deployments, checks
        self.templates = load_templates(PROMQL)
        self.states: dict[Deployment, dict[str, CheckState]] = {d: {} for d in deployments}
        self.history: dict[Deployment, list[Evaluation]] = {d: [] for d in deployments}

    async def round(self) -> list[Evaluation]:
        watched = [(d, self.checks, self.states[d]) for d in self.deployments]
        evaluations = await evaluate_many(self.provider, self.templates, watched, now=time.time())
        for evaluation in evaluations:
            self.states[evaluation.deployment] = evaluation.states
            self.history[evaluation.deployment].append(evaluation)
        return evaluations

    async def until(self, done: Callable[[], bool], within: float) -> float:
        """Run a round every INTERVAL until ``done()``; return the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            tick = time.monotonic()
            await self.round()
            if done():
                return time.monotonic() - started
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - tick)))
        raise AssertionError(f"not done within {within:g}s")

    def decisions(self, deployment: Deployment) -> list[Decision]:
        return [e.decision for e in self.history[deployment]]


@pytest.mark.slow
async def test_an_error_rate_breach_on_one_version_rolls_back_that_version_only(
    prometheus: PrometheusServer,
    start_model_server: Callable[..., ModelServer],
    session: aiohttp.ClientSession,
) -> None:
    stable, canary = start_model_server("1"), start_model_server("2")
    for server in (stable, canary):
        prometheus.add_target(server.address)
    load = asyncio.create_task(predict_forever(session, [stable.url, canary.url], [IRIS_SETOSA, IRIS_VIRGINICA], 0.04))
    try:
        await asyncio.to_thread(
            prometheus.wait_for,
            'sum(rate(modelship_model_requests_total{model="iris",version="2"}[5s])) > 0',
            30,
        )
        old, new = Deployment("production", "iris", "1"), Deployment("production", "iris", "2")
        ghost = Deployment("production", "iris", "never-deployed")
        watcher = Watcher(PrometheusHTTP(prometheus.url, session), [old, new, ghost], [ERROR_RATE, LATENCY])

        def both_healthy() -> bool:
            return all(watcher.decisions(d)[-1:] == [Decision.HEALTHY] for d in (old, new))

        await watcher.until(both_healthy, within=15)
        warmed_up = len(watcher.history[old])

        async with session.post(f"{canary.url}/admin/faults", json={"error_rate": 0.5}) as response:
            assert response.status == 200
        took = await watcher.until(lambda: Decision.ROLLBACK in watcher.decisions(new), within=30)

        # Theoretical minimum: failure_limit rounds; the breach first has to be scraped.
        assert took <= INTERVAL * FAILURE_LIMIT + SCRAPE_INTERVAL + 2.0, f"rollback decided after {took:.1f}s"
        rollback = watcher.history[new][-1]
        [failing] = rollback.failing
        assert failing.check.template == "error_rate" and failing.result.value is not None
        assert failing.result.value > 0.02 and 'version="2"' in failing.query
        assert "rolling back" in failing.verdict.reason

        # Once the window holds only faulty traffic the query reports the injected rate; no second rollback.
        await asyncio.sleep(5)
        await watcher.round()
        latest = watcher.history[new][-1]
        [error_rate] = [o for o in latest.outcomes if o.check.template == "error_rate"]
        assert error_rate.result.value == pytest.approx(0.5, abs=0.15)
        assert watcher.decisions(new).count(Decision.ROLLBACK) == 1
        assert latest.decision is Decision.DEGRADED

        assert Decision.ROLLBACK not in watcher.decisions(old)
        assert set(watcher.decisions(old)[warmed_up:]) == {Decision.HEALTHY}
        assert set(watcher.decisions(ghost)) == {Decision.INCONCLUSIVE}  # no data never rolls back
    finally:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        for server in (stable, canary):
            prometheus.remove_target(server.address)


async def test_prometheus_down_raises_the_alert_at_the_error_limit_and_never_rolls_back(
    session: aiohttp.ClientSession,
) -> None:
    provider = PrometheusHTTP(f"http://127.0.0.1:{free_port()}", session, timeout=2)
    check = CheckConfig(template="error_rate", max=0.02, failure_limit=1, consecutive_error_limit=2, initial_delay=0)
    deployment = Deployment("production", "iris", "2")
    states: dict[str, CheckState] = {}
    seen = []
    for i in range(3):
        evaluation = await evaluate(provider, load_templates(PROMQL), deployment, [check], states, now=100.0 + i)
        states = evaluation.states
        seen.append(evaluation.decision)
    assert seen == [Decision.ERROR, Decision.ERROR_ALERT, Decision.ERROR]
    assert states["error_rate"].alert_open and "unreachable" in (states["error_rate"].last_error or "")


async def test_an_unknown_template_is_an_error_outcome_not_a_crash(prometheus: PrometheusServer, session: Any) -> None:
    check = CheckConfig(template="accuracy", min=0.9, initial_delay=0)
    evaluation = await evaluate(
        PrometheusHTTP(prometheus.url, session),
        load_templates(PROMQL),
        Deployment("e", "m", "1"),
        [check],
        {},
        now=0.0,
    )
    [outcome] = evaluation.outcomes
    assert outcome.result.outcome is Outcome.ERROR and "no PromQL template named 'accuracy'" in (
        outcome.result.error or ""
    )


async def test_checks_in_their_initial_delay_send_no_query(session: aiohttp.ClientSession) -> None:
    provider = PrometheusHTTP(f"http://127.0.0.1:{free_port()}", session)
    check = CheckConfig(template="error_rate", max=0.02, initial_delay=60)
    states = {"error_rate": CheckState(first_seen=0.0)}
    evaluation = await evaluate(provider, load_templates(PROMQL), Deployment("e", "m", "1"), [check], states, now=30.0)
    assert evaluation.decision is Decision.INCONCLUSIVE and provider.queries == 0
