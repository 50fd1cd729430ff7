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
MIN_SAMPLES = 20


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
    budget_s: float | None = None,
) -> dict[str, Timings]:
    """Time every variant; `rows[v]` are prepared single-row inputs, `batches[v]` = (input, row count).

    With `budget_s`, a variant whose single-row samples have used up that much time stops being timed
    once it has MIN_SAMPLES: a slow original must not hold a review hostage, and its p95 is already
    clear from fewer samples.
    """
    names = list(calls)
    orders = _rotations(names)
    for name in names:
        for i in range(WARMUP):
            calls[name](rows[name][i % len(rows[name])])
    single: dict[str, list[float]] = {n: [] for n in names}
    spent_ms: dict[str, float] = dict.fromkeys(names, 0.0)
    limit_ms = float("inf") if budget_s is None else budget_s * 1000
    for rep in range(repetitions):
        for name in orders[rep % len(orders)]:
            if spent_ms[name] > limit_ms and len(single[name]) >= MIN_SAMPLES:
                continue
            row = rows[name][rep % len(rows[name])]
            start = time.perf_counter_ns()
            calls[name](row)
            elapsed = (time.perf_counter_ns() - start) / 1e6
            single[name].append(elapsed)
            spent_ms[name] += elapsed
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
