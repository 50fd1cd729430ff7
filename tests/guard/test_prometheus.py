"""The HTTP metrics provider against a real Prometheus: every kind of answer maps to one outcome."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.guard.prometheus import Outcome, PrometheusHTTP
from bot.guard.templates import load_templates
from bot.settings import SOURCE_ROOT
from tests.fixtures.prometheus import PrometheusServer, free_port

PROMQL = SOURCE_ROOT / "config" / "promql"  # the default of MODELSHIP_PROMQL_DIR


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.mark.parametrize(
    "promql, outcome, value",
    [
        ("vector(0.25)", Outcome.VALUE, 0.25),
        ("scalar(vector(2))", Outcome.VALUE, 2.0),
        ("vector(0) / vector(0)", Outcome.NAN, None),
        ("vector(1) / vector(0)", Outcome.INF, math.inf),
        ("vector(-1) / vector(0)", Outcome.INF, -math.inf),
        ('up{job="no-such-job"}', Outcome.NO_DATA, None),
    ],
)
async def test_answers_map_to_outcomes(
    prometheus: PrometheusServer,
    session: aiohttp.ClientSession,
    promql: str,
    outcome: Outcome,
    value: float | None,
) -> None:
    result = await PrometheusHTTP(prometheus.url, session).query(promql)
    assert result.outcome is outcome
    if value is not None:
        assert result.value == value


async def test_a_bad_query_is_an_error_that_quotes_prometheus(
    prometheus: PrometheusServer, session: aiohttp.ClientSession
) -> None:
    result = await PrometheusHTTP(prometheus.url, session).query("sum(")
    assert result.outcome is Outcome.ERROR
    assert "bad_data" in (result.error or "")


async def test_a_query_returning_several_series_asks_for_an_aggregation(
    prometheus: PrometheusServer, session: aiohttp.ClientSession
) -> None:
    promql = 'label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")'
    result = await PrometheusHTTP(prometheus.url, session).query(promql)
    assert result.outcome is Outcome.ERROR and "aggregate to one" in (result.error or "")


async def test_prometheus_down_is_an_error_not_a_value(session: aiohttp.ClientSession) -> None:
    provider = PrometheusHTTP(f"http://127.0.0.1:{free_port()}", session, timeout=2)
    result = await provider.query("vector(1)")
    assert result.outcome is Outcome.ERROR and "unreachable" in (result.error or "")
    assert provider.queries == 1


async def test_a_proxy_error_page_is_an_error(aiohttp_server: Any, session: aiohttp.ClientSession) -> None:
    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bad_gateway)
    server = await aiohttp_server(app)
    result = await PrometheusHTTP(str(server.make_url("/")), session).query("vector(1)")
    assert result.outcome is Outcome.ERROR and "HTTP 502" in (result.error or "")


async def test_every_shipped_template_is_promql_that_prometheus_accepts(
    prometheus: PrometheusServer, session: aiohttp.ClientSession
) -> None:
    provider = PrometheusHTTP(prometheus.url, session)
    for name, template in load_templates(PROMQL).items():
        result = await provider.query(template.render(model="iris", version="1", env="production", window="1m"))
        assert result.outcome is not Outcome.ERROR, f"{name}: {result.error}"


async def test_a_vector_answer_keeps_every_series_with_its_labels(
    prometheus: PrometheusServer, session: aiohttp.ClientSession
) -> None:
    promql = 'label_replace(vector(2), "sha256", "aa", "", "") or label_replace(vector(1), "sha256", "bb", "", "")'
    result = await PrometheusHTTP(prometheus.url, session).vector(promql)

    assert result.error is None
    assert sorted((dict(s.labels).get("sha256"), s.value) for s in result.series) == [("aa", 2.0), ("bb", 1.0)]


async def test_a_vector_query_that_fails_says_why(prometheus: PrometheusServer, session: aiohttp.ClientSession) -> None:
    assert "bad_data" in ((await PrometheusHTTP(prometheus.url, session).vector("count(")).error or "")
    down = PrometheusHTTP(f"http://127.0.0.1:{free_port()}", session, timeout=2)
    assert "unreachable" in ((await down.vector("vector(1)")).error or "")


async def test_the_live_template_is_promql_that_prometheus_accepts(
    prometheus: PrometheusServer, session: aiohttp.ClientSession
) -> None:
    (template,) = load_templates(PROMQL / "live").values()
    result = await PrometheusHTTP(prometheus.url, session).vector(
        template.render(model="served-nowhere", version="1", env="nowhere", window="1m")
    )
    # The session's Prometheus also scrapes other tests' model servers: ask for a model none of them serves.
    assert result.error is None and result.series == ()
