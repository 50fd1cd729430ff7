"""Asking Prometheus for one number: a two-method provider, Flagger style.

A check query must aggregate to a single series. What comes back is one of five outcomes, and the
analysis treats them differently: only a finite value can pass or fail a check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import aiohttp


class Outcome(StrEnum):
    VALUE = "value"
    NO_DATA = "no_data"  # an empty vector: nothing matched the selectors
    NAN = "nan"  # typically 0/0: no traffic in the window
    INF = "inf"  # ±Inf: typically x/0
    ERROR = "error"  # Prometheus unreachable, timed out, or refused the query


@dataclass(frozen=True)
class QueryResult:
    outcome: Outcome
    value: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, value: float) -> QueryResult:
        if math.isnan(value):
            return cls(Outcome.NAN, value)
        if math.isinf(value):
            return cls(Outcome.INF, value)
        return cls(Outcome.VALUE, value)

    @classmethod
    def no_data(cls) -> QueryResult:
        return cls(Outcome.NO_DATA)

    @classmethod
    def failed(cls, message: str) -> QueryResult:
        return cls(Outcome.ERROR, error=message)

    def describe(self) -> str:
        if self.outcome is Outcome.ERROR:
            return f"error: {self.error}"
        if self.outcome is Outcome.NO_DATA:
            return "no data (empty result)"
        return f"{self.value:g}" if self.value is not None else self.outcome.value


class MetricsProvider(Protocol):
    async def query(self, promql: str) -> QueryResult: ...


class PrometheusHTTP:
    """The HTTP API (``/api/v1/query``) of Prometheus or anything speaking it (Thanos, Mimir, ...).

    The caller owns ``session``; the URL comes from the service's settings, never from a repository.
    """

    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.queries = 0  # queries sent, for the watcher's own metrics and the benchmark

    async def query(self, promql: str) -> QueryResult:
        body = await self._post(promql)
        return QueryResult.failed(body) if isinstance(body, str) else parse_response(body)

    async def vector(self, promql: str) -> VectorResult:
        """An instant vector of any number of series (live tracking counts replicas by sha256)."""
        body = await self._post(promql)
        return VectorResult((), body) if isinstance(body, str) else parse_vector(body)

    async def _post(self, promql: str) -> Any:
        """The decoded answer, or a string saying why there is none."""
        self.queries += 1
        url = f"{self._base}/api/v1/query"
        try:
            # POST keeps long templated queries out of URL length limits.
            async with self._session.post(url, data={"query": promql}, timeout=self._timeout) as response:
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    return f"Prometheus at {self._base} answered HTTP {response.status}, not JSON"
        except TimeoutError:
            return f"Prometheus at {self._base} did not answer within {self._timeout.total:g}s"
        except aiohttp.ClientError as exc:
            return f"Prometheus at {self._base} is unreachable: {exc}"


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class VectorResult:
    series: tuple[Series, ...] = ()
    error: str | None = None


class VectorProvider(Protocol):
    async def vector(self, promql: str) -> VectorResult: ...


def _refused(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Prometheus answered something that is not a JSON object"
    if body.get("status") != "success":
        kind = body.get("errorType", "error")
        return f"Prometheus refused the query ({kind}): {body.get('error', 'no message')}"
    return None


def parse_vector(body: Any) -> VectorResult:
    """An ``/api/v1/query`` answer as every series of an instant vector."""
    refused = _refused(body)
    if refused is not None:
        return VectorResult((), refused)
    data: dict[str, Any] = body.get("data") or {}
    if data.get("resultType") != "vector":
        return VectorResult((), f"the query returned a {data.get('resultType')}; it must return an instant vector")
    try:
        return VectorResult(
            tuple(Series(dict(r.get("metric") or {}), float(r["value"][1])) for r in data.get("result") or [])
        )
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        return VectorResult((), f"cannot read Prometheus' answer: {exc!r}")


def parse_response(body: Any) -> QueryResult:
    """Turn an ``/api/v1/query`` answer into one QueryResult."""
    refused = _refused(body)
    if refused is not None:
        return QueryResult.failed(refused)
    data: dict[str, Any] = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result") or []
    try:
        if kind == "scalar":
            return QueryResult.of(float(result[1]))
        if kind == "vector":
            if not result:
                return QueryResult.no_data()
            if len(result) > 1:
                return QueryResult.failed(
                    f"the query returned {len(result)} series; a check query must aggregate to one "
                    "(wrap it in sum(), max() or similar)"
                )
            return QueryResult.of(float(result[0]["value"][1]))
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        return QueryResult.failed(f"cannot read Prometheus' answer: {exc!r}")
    return QueryResult.failed(f"the query returned a {kind}; a check query must return an instant vector")
