"""Timing: interleaving, the per-variant budget, and deterministic intervals."""

from __future__ import annotations

import time

import numpy as np

from pipelines.timing import MIN_SAMPLES, bootstrap_interval, measure, p95, percentiles


def test_variants_are_interleaved_with_a_rotating_order() -> None:
    calls: list[str] = []
    fns = {name: (lambda _row, n=name: calls.append(n)) for name in ("a", "b", "c")}
    measure(fns, {n: [0] for n in fns}, dict.fromkeys(fns, (0, 1)), repetitions=3, batch_rounds=0)
    timed = calls[3 * 3 :]  # after the warm-up calls
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_a_slow_variant_stops_at_its_budget_but_keeps_the_minimum_samples() -> None:
    fns = {"slow": lambda _row: time.sleep(0.002), "fast": lambda _row: None}
    timings = measure(fns, {n: [0] for n in fns}, dict.fromkeys(fns, (0, 10)), 60, 2, budget_s=0.01)
    assert len(timings["slow"].single_ms) == MIN_SAMPLES
    assert len(timings["fast"].single_ms) == 60
    assert len(timings["slow"].batch_rows_per_s) == 2 and min(timings["slow"].batch_rows_per_s) > 0


def test_percentiles_and_bootstrap_interval() -> None:
    samples = list(np.arange(1.0, 101.0))
    assert percentiles(samples) == (50.5, 95.05, 99.01)
    low, high = bootstrap_interval(samples, p95)
    assert low < 95.05 < high
    assert (low, high) == bootstrap_interval(samples, p95)  # seeded: same input, same interval
