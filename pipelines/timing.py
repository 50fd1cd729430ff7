"""Latency and throughput measurement.

Several variants are timed round-robin (interleaved, rotating the order each round) so that machine
noise — other tenants, frequency scaling, GC — hits every variant alike instead of whichever one
happened to run during the noisy second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Call = Callable[[Any], object]
WARMUP = 3


@dataclass(frozen=True)
class Timings:
    single_ms: list[float]  # one sample per single-row call
    batch_rows_per_s: list[float]  # one sample per whole-batch call


def _rotations(names: Sequence[str]) -> list[list[str]]:
    return [list(names[i:]) + list(names[:i]) for i in range(len(names))] or [[]]


def measure(
    calls: Mapping[str, Call],
    rows: Mapping[str, Sequence[Any]],
    batches: Mapping[str, tuple[Any, int]],
    repetitions: int,
    batch_rounds: int,
) -> dict[str, Timings]:
    """Time every variant; `rows[v]` are prepared single-row inputs, `batches[v]` = (input, row count)."""
    names = list(calls)
    orders = _rotations(names)
    for name in names:
        for i in range(WARMUP):
            calls[name](rows[name][i % len(rows[name])])
    single: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(repetitions):
        for name in orders[rep % len(orders)]:
            row = rows[name][rep % len(rows[name])]
            start = time.perf_counter_ns()
            calls[name](row)
            single[name].append((time.perf_counter_ns() - start) / 1e6)
    batch: dict[str, list[float]] = {n: [] for n in names}
    for rnd in range(batch_rounds):
        for name in orders[rnd % len(orders)]:
            data, count = batches[name]
            start = time.perf_counter_ns()
            calls[name](data)
            batch[name].append(count / max((time.perf_counter_ns() - start) / 1e9, 1e-9))
    return {n: Timings(single[n], batch[n]) for n in names}


def percentiles(samples: Sequence[float]) -> tuple[float, float, float]:
    p50, p95, p99 = np.percentile(np.asarray(samples, dtype=float), [50, 95, 99])
    return float(p50), float(p95), float(p99)


def bootstrap_interval(
    samples: Sequence[float], stat: Callable[[np.ndarray], float], resamples: int = 400, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap 95 % interval of `stat`; deterministic for a given input."""
    data = np.asarray(samples, dtype=float)
    if len(data) < 2:
        value = stat(data)
        return value, value
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(data), size=(resamples, len(data)))
    stats = np.array([stat(data[d]) for d in draws])
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


def p95(data: np.ndarray) -> float:
    return float(np.percentile(data, 95))


def mean(data: np.ndarray) -> float:
    return float(np.mean(data))
