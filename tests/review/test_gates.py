"""Gates judge head values and deltas, with reasons; missing data never passes."""

from __future__ import annotations

from typing import Any

from bot.review.compare import compare_model
from bot.review.parse import parse_evaluation
from tests.review.evaluations import gates_of, policy

# --------------------------------------------------------------------------- gates


def test_gates_check_head_values_and_deltas_with_reasons(cancer: dict[str, Any]) -> None:
    gates = {
        "accuracy": {"min": 0.99},
        "f1": {"min_delta": -0.01},
        "latency_p95_ms": {"max": 1.5},
        "log_loss": {"max_delta": 0.0},
    }

    result = compare_model(
        policy(metrics=["accuracy"], gates=gates),
        parse_evaluation(cancer["stump"]),
        parse_evaluation(cancer["strong"]),
        resamples=50,
    )

    by_rule = gates_of(result)
    assert by_rule["accuracy", "min"].status == "fail"
    assert "required ≥ 0.99" in by_rule["accuracy", "min"].reason
    assert by_rule["f1", "min_delta"].status == "pass"
    assert by_rule["latency_p95_ms", "max"].status == "fail" and by_rule["latency_p95_ms", "max"].value == 2.0
    assert by_rule["log_loss", "max_delta"].status == "pass"
    assert not result.passed
    # A gated metric is shown even when not listed under metrics.
    assert {"f1", "log_loss"} <= {r.name for r in result.metrics}


def test_a_gate_on_a_metric_nobody_reported_fails(cancer: dict[str, Any]) -> None:
    doc = dict(cancer["strong"], metrics={"accuracy": 0.9})

    result = compare_model(
        policy(gates={"roc_auc": {"min": 0.5}}), parse_evaluation(doc), parse_evaluation(doc), resamples=20
    )

    gate = gates_of(result)["roc_auc", "min"]
    assert gate.status == "fail" and "not reported" in gate.reason
