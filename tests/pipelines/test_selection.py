"""The pure decisions: parity, gates and the variant choice."""

from __future__ import annotations

import numpy as np
import pytest

from contract.schema import GateSpec, Variant, VariantName
from pipelines.selection import choose, gates, parity


def variant(name: VariantName, p95: float, holds: bool = True, gate_ok: bool = True) -> Variant:
    return {
        "name": name,
        "status": "ok",
        "reason": None,
        "path": f"variants/m/{name}.onnx",
        "sha256": name * 2,
        "size_bytes": 1,
        "latency": {
            "p50_ms": p95,
            "p95_ms": p95,
            "p99_ms": p95,
            "p95_ci_ms": {"low": p95, "high": p95},
            "batch_rows_per_s": 1.0,
            "batch_ci_rows_per_s": {"low": 1.0, "high": 1.0},
            "cold_start_ms": 1.0,
            "repetitions": 10,
        },
        "parity": {
            "label_agreement": 1.0 if holds else 0.9,
            "max_abs_prob_diff": 0.0,
            "max_abs_error": None,
            "tolerance": 1e-4,
            "holds": holds,
        },
        "metrics": {},
        "metric_delta": {},
        "gates": {"accuracy": gate_ok},
    }


def test_parity_classification_counts_label_agreement_and_probability_gap() -> None:
    p = parity(
        "classification",
        1e-3,
        (["0", "1", "1", "0"], np.array([[0.9, 0.1]] * 4)),
        (["0", "1", "0", "0"], np.array([[0.9, 0.1]] * 3 + [[0.85, 0.15]])),
    )
    assert p["label_agreement"] == 0.75
    assert p["max_abs_prob_diff"] == pytest.approx(0.05)
    assert p["holds"] is False


def test_a_label_flip_on_an_exact_tie_is_rounding_not_a_parity_break() -> None:
    tie = np.array([[0.5, 0.5], [0.9, 0.1]])
    p = parity("classification", 1e-4, (["0", "0"], tie), (["1", "0"], tie + np.array([[-1e-7, 1e-7], [0, 0]])))
    assert p["label_agreement"] == 0.5 and p["holds"] is True


def test_parity_regression_tolerance_scales_with_the_predictions() -> None:
    big = np.array([1000.0, 2000.0])
    assert parity("regression", 1e-4, (big, None), (big + 0.1, None))["holds"] is True
    assert parity("regression", 1e-4, (big, None), (big + 1.0, None))["holds"] is False
    assert parity("regression", 1e-4, (big, None), (big + 1.0, None))["max_abs_error"] == pytest.approx(1.0)


def test_gates_absolute_relative_and_missing_values() -> None:
    specs: dict[str, GateSpec] = {
        "accuracy": {"min": 0.8},
        "f1": {"min_delta": -0.01},
        "latency_p95_ms": {"max": 20.0},
        "mae": {"max": 1.0},
    }
    verdict = gates(specs, {"accuracy": 0.85, "f1": 0.88, "latency_p95_ms": 25.0}, {"f1": 0.9})
    assert verdict == {"accuracy": True, "f1": False, "latency_p95_ms": False, "mae": False}


def test_auto_picks_the_fastest_eligible_variant() -> None:
    chosen = choose(
        [variant("original", 5.0), variant("onnx_fp32", 0.2), variant("onnx_optimized", 0.1)],
        "auto",
        "models/m.skops",
        "abc",
        original_is_onnx=False,
    )
    assert chosen is not None
    assert (chosen["variant"], chosen["location"], chosen["sha256"]) == (
        "onnx_optimized",
        "out",
        "onnx_optimizedonnx_optimized",
    )


def test_a_faster_variant_that_breaks_parity_or_a_gate_is_never_selected() -> None:
    variants = [
        variant("original", 5.0),
        variant("onnx_fp32", 0.3),
        variant("int8_dynamic", 0.05, holds=False),
        variant("int8_static", 0.04, gate_ok=False),
    ]
    chosen = choose(variants, "auto", "models/m.skops", "abc", original_is_onnx=False)
    assert chosen is not None and chosen["variant"] == "onnx_fp32"
    assert "faster but not eligible: int8_dynamic breaks parity (" in chosen["reason"]
    assert "labels agree 90.00%" in chosen["reason"] and "int8_static fails gate accuracy" in chosen["reason"]


def test_explicit_int8_falls_back_to_the_original_and_says_why() -> None:
    variants = [variant("original", 5.0), variant("int8_dynamic", 0.05, holds=False)]
    chosen = choose(variants, "int8", "models/m.skops", "abc", original_is_onnx=False)
    assert chosen is not None
    assert (chosen["variant"], chosen["location"], chosen["path"], chosen["sha256"]) == (
        "original",
        "repo",
        "models/m.skops",
        "abc",
    )
    assert "int8_dynamic breaks parity" in chosen["reason"]


def test_fp32_for_an_onnx_model_includes_the_file_as_is() -> None:
    chosen = choose(
        [variant("original", 0.1), variant("onnx_optimized", 0.2)], "fp32", "m.onnx", "abc", original_is_onnx=True
    )
    assert chosen is not None and chosen["variant"] == "original"
