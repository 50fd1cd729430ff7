"""Scenarios for the comparison core, checked against scikit-learn and scipy computed independently."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.review.compare import compare_model, compare_review
from bot.review.parse import Evaluation, parse_evaluation
from contract.metrics import CLASSIFICATION_METRICS
from tests.review.evaluations import RESAMPLES, evaluation_doc, gates_of, policy

# --------------------------------------------------------------------------- verdicts and intervals


def test_a_clearly_better_head_is_better_with_an_interval_around_the_delta(cancer: dict[str, Any]) -> None:
    result = compare_model(
        policy(metrics=["accuracy", "f1", "roc_auc", "log_loss"]),
        parse_evaluation(cancer["stump"]),
        parse_evaluation(cancer["strong"]),
        resamples=RESAMPLES,
    )

    rows = {r.name: r for r in result.metrics}
    for name in ("accuracy", "f1", "roc_auc", "log_loss"):
        row = rows[name]
        assert row.delta == pytest.approx(cancer["strong"]["metrics"][name] - cancer["stump"]["metrics"][name])
        assert row.delta is not None and row.ci is not None and row.ci.contains(row.delta), name
        assert row.verdict == "better", name
    # log loss is lower-is-better: the improvement is a negative delta.
    assert rows["log_loss"].delta is not None and rows["log_loss"].delta < 0
    assert result.paired and result.mcnemar is not None and result.mcnemar.p_value < 0.05


def test_a_worse_head_is_worse(cancer: dict[str, Any]) -> None:
    result = compare_model(
        policy(metrics=["accuracy", "log_loss"]),
        parse_evaluation(cancer["strong"]),
        parse_evaluation(cancer["stump"]),
        resamples=RESAMPLES,
    )

    assert [r.verdict for r in result.metrics[:2]] == ["worse", "worse"]


def test_identical_models_are_within_noise(cancer: dict[str, Any]) -> None:
    evaluation = parse_evaluation(cancer["strong"])

    result = compare_model(
        policy(metrics=list(CLASSIFICATION_METRICS), gates={"f1": {"min_delta": 0}}),
        evaluation,
        evaluation,
        resamples=RESAMPLES,
    )

    assert {r.verdict for r in result.metrics} == {"within_noise"}
    assert all(r.ci is None or (r.ci.low == 0 == r.ci.high) for r in result.metrics)
    assert result.mcnemar is not None and result.mcnemar.p_value == 1.0
    assert result.passed


def test_the_interval_agrees_with_a_naive_sklearn_bootstrap(cancer: dict[str, Any]) -> None:
    base_doc, head_doc = cancer["stump"], cancer["strong"]
    y = cancer["y"]
    base_pred = np.array([int(v) for v in base_doc["predictions"]["y_pred"]])
    head_pred = np.array([int(v) for v in head_doc["predictions"]["y_pred"]])
    rng = np.random.default_rng(123)

    def f1(truth: np.ndarray, pred: np.ndarray) -> float:
        tp = np.sum((truth == 1) & (pred == 1))
        return float(2 * tp / (np.sum(truth == 1) + np.sum(pred == 1)))

    naive = []
    for _ in range(1000):
        i = rng.integers(0, len(y), len(y))
        naive.append(f1(y[i], head_pred[i]) - f1(y[i], base_pred[i]))
    low, high = np.percentile(naive, [2.5, 97.5])

    result = compare_model(
        policy(metrics=["f1"]), parse_evaluation(base_doc), parse_evaluation(head_doc), resamples=1000, seed=9
    )

    ci = result.metrics[0].ci
    assert ci is not None
    # Two independent Monte Carlo runs: the percentiles agree up to resampling noise.
    assert ci.low == pytest.approx(low, abs=0.012) and ci.high == pytest.approx(high, abs=0.012)


def test_the_same_seed_gives_the_same_interval(cancer: dict[str, Any]) -> None:
    base, head = parse_evaluation(cancer["stump"]), parse_evaluation(cancer["strong"])

    first = compare_model(policy(metrics=["f1"]), base, head, resamples=200, seed=5)
    second = compare_model(policy(metrics=["f1"]), base, head, resamples=200, seed=5)

    assert first.metrics[0].ci == second.metrics[0].ci


def test_a_better_regressor_lowers_rmse_and_is_better(diabetes: dict[str, Any]) -> None:
    result = compare_model(
        policy("regression", metrics=["mae", "rmse", "r2"]),
        parse_evaluation(diabetes["mean"]),
        parse_evaluation(diabetes["linear"]),
        resamples=RESAMPLES,
    )

    rows = {r.name: r for r in result.metrics}
    assert rows["rmse"].delta is not None and rows["rmse"].delta < 0
    assert [rows[m].verdict for m in ("mae", "rmse", "r2")] == ["better", "better", "better"]
    assert rows["r2"].ci is not None and rows["r2"].ci.contains(rows["r2"].delta or 0.0)
    assert result.mcnemar is None


def test_macro_averages_follow_each_sides_own_labels(iris: dict[str, Any]) -> None:
    y = iris["y"]
    # The base never predicts class 2; the head does. Each side averages over its own labels.
    base_pred = np.where(iris["pred"] == 2, 1, iris["pred"])
    metrics = ("accuracy", "f1_macro", "recall_macro", "roc_auc")
    base = evaluation_doc("iris", y, base_pred, iris["proba"], metrics=metrics)
    head = evaluation_doc("iris", y, iris["pred"], iris["proba"], metrics=metrics)

    result = compare_model(
        policy(metrics=list(metrics)), parse_evaluation(base), parse_evaluation(head), resamples=RESAMPLES
    )

    for row in result.metrics[:3]:
        assert row.delta is not None and row.ci is not None and row.ci.contains(row.delta), row
    assert [r.verdict for r in result.metrics[:2]] == ["better", "better"]
    assert result.metrics[3].verdict == "within_noise"  # same scores on both sides


def test_multiclass_scores_are_optional(iris: dict[str, Any]) -> None:
    doc = evaluation_doc("iris", iris["y"], iris["pred"], iris["proba"], metrics=("accuracy", "roc_auc"))
    doc["predictions"]["y_score"] = None  # what the pipeline sends for more than two classes

    result = compare_model(
        policy(metrics=["accuracy", "roc_auc"]), parse_evaluation(doc), parse_evaluation(doc), resamples=50
    )

    accuracy, roc_auc = result.metrics[:2]
    assert accuracy.ci is not None and accuracy.verdict == "within_noise"
    assert roc_auc.ci is None and roc_auc.verdict == "n/a"
    assert roc_auc.note == "no per-row scores to resample for this metric"


def test_hundreds_of_labels_stay_cheap() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 400, 3000)
    base = evaluation_doc("many", y, np.where(rng.random(3000) < 0.5, y, 0), metrics=("accuracy", "f1_macro"))
    head = evaluation_doc("many", y, np.where(rng.random(3000) < 0.6, y, 0), metrics=("accuracy", "f1_macro"))

    result = compare_model(
        policy(metrics=["accuracy", "f1_macro"]), parse_evaluation(base), parse_evaluation(head), resamples=200
    )

    assert [r.verdict for r in result.metrics[:2]] == ["better", "better"]


def test_latency_uses_a_relative_noise_band(cancer: dict[str, Any]) -> None:
    slow = dict(cancer["strong"], latency={"p95_ms": 4.0})
    jitter = dict(cancer["strong"], latency={"p95_ms": 2.1})
    base = parse_evaluation(cancer["strong"])

    slower = compare_model(policy(metrics=["accuracy"]), base, parse_evaluation(slow), resamples=50)
    noisy = compare_model(policy(metrics=["accuracy"]), base, parse_evaluation(jitter), resamples=50)

    assert {r.name: r.verdict for r in slower.metrics}["latency_p95_ms"] == "worse"
    assert {r.name: r.verdict for r in noisy.metrics}["latency_p95_ms"] == "within_noise"


def test_without_predictions_there_is_no_interval_and_no_verdict(cancer: dict[str, Any]) -> None:
    bare = dict(cancer["strong"], predictions=None)

    result = compare_model(
        policy(metrics=["accuracy"]), parse_evaluation(cancer["stump"]), parse_evaluation(bare), resamples=50
    )

    row = result.metrics[0]
    assert row.ci is None and row.verdict == "n/a" and row.note == "no per-row predictions to resample"
    assert row.delta is not None and row.delta > 0


# --------------------------------------------------------------------------- failures and odd inputs


def test_a_head_that_failed_to_evaluate_fails_with_its_reason(cancer: dict[str, Any]) -> None:
    broken = {
        "name": "churn",
        "task": "classification",
        "error": {"kind": "feature_mismatch", "message": "expected 30 features, got 29"},
    }

    result = compare_model(
        policy(metrics=["accuracy"], gates={"accuracy": {"min": 0.5}}),
        parse_evaluation(cancer["strong"]),
        parse_evaluation(broken),
    )

    assert result.status == "head_failed" and not result.passed
    assert result.error == "feature_mismatch: expected 30 features, got 29"
    assert {r.verdict for r in result.metrics} == {"failed"}
    assert [g.status for g in result.gates] == ["fail"]


def test_a_missing_head_result_is_a_failure(cancer: dict[str, Any]) -> None:
    result = compare_model(policy(), parse_evaluation(cancer["strong"]), None)

    assert result.status == "head_failed" and result.error is not None and "no evaluation result" in result.error


def test_a_new_model_skips_delta_gates_but_checks_absolute_ones(cancer: dict[str, Any]) -> None:
    result = compare_model(
        policy(gates={"accuracy": {"min": 0.5, "min_delta": 0.0}}), None, parse_evaluation(cancer["strong"])
    )

    assert result.status == "new" and result.passed
    by_rule = gates_of(result)
    assert by_rule["accuracy", "min"].status == "pass"
    assert by_rule["accuracy", "min_delta"].status == "skipped"


def test_a_broken_base_does_not_block_the_head(cancer: dict[str, Any]) -> None:
    broken = {"error": {"kind": "load_error", "message": "model file missing"}}

    result = compare_model(
        policy(gates={"accuracy": {"min_delta": 0.0}}),
        parse_evaluation(broken),
        parse_evaluation(cancer["strong"]),
    )

    assert result.status == "base_failed" and result.passed
    gate = gates_of(result)["accuracy", "min_delta"]
    assert gate.status == "skipped" and "model file missing" in gate.reason


def test_a_changed_dataset_is_compared_unpaired_and_flagged(cancer: dict[str, Any]) -> None:
    head = dict(cancer["strong"], dataset=dict(cancer["strong"]["dataset"], sha256="e" * 64))

    result = compare_model(
        policy(metrics=["accuracy"]),
        parse_evaluation(cancer["stump"]),
        parse_evaluation(head),
        resamples=RESAMPLES,
    )

    assert result.dataset_warning is not None
    assert "dddddddddddd" in result.dataset_warning and "eeeeeeeeeeee" in result.dataset_warning
    assert not result.paired and result.mcnemar is None
    row = result.metrics[0]
    assert row.ci is not None and row.ci.contains(row.delta or 0.0)


def test_compare_review_maps_results_by_model_name(cancer: dict[str, Any]) -> None:
    review = compare_review([policy(metrics=["accuracy"])], {"churn": cancer["stump"]}, {}, resamples=20)

    assert [m.status for m in review.models] == ["head_failed"]
    assert not review.passed


GATED = policy(gates={"accuracy": {"min": 0.5}})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
doc_keys = [
    "name",
    "task",
    "model",
    "dataset",
    "metrics",
    "per_class",
    "confusion_matrix",
    "latency",
    "predictions",
    "error",
]


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(st.sampled_from(doc_keys), json_values),
    st.dictionaries(st.sampled_from(doc_keys), json_values),
)
def test_malformed_results_never_crash_the_comparison(base: dict[str, Any], head: dict[str, Any]) -> None:
    review = compare_review([GATED], {"churn": base}, {"churn": head}, resamples=5)

    assert len(review.models) == 1 and review.models[0].status in {"compared", "head_failed", "base_failed"}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=40), st.integers(0, 2**32 - 1))
def test_random_predictions_keep_the_delta_inside_the_interval_or_flag_noise(labels: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.array(labels)
    base = evaluation_doc("m", y, rng.choice(["a", "b", "c"], len(y)), metrics=("accuracy", "f1_macro"))
    head = evaluation_doc("m", y, rng.choice(["a", "b", "c"], len(y)), metrics=("accuracy", "f1_macro"))

    result = compare_model(
        policy(metrics=["accuracy", "f1_macro"]),
        parse_evaluation(base),
        parse_evaluation(head),
        resamples=200,
    )

    for row in result.metrics[:2]:
        assert row.ci is not None and row.ci.low <= row.ci.high
        assert row.verdict in {"better", "worse", "within_noise"}
        if row.verdict == "within_noise":
            assert row.ci.contains(0.0)


def test_results_are_frozen(cancer: dict[str, Any]) -> None:
    result = compare_model(
        policy(), parse_evaluation(cancer["strong"]), parse_evaluation(cancer["strong"]), resamples=10
    )

    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "new"  # type: ignore[misc]
    assert isinstance(result.head, Evaluation)


def test_the_bot_modules_never_import_ml_libraries() -> None:
    probe = (
        "import sys, bot.config.repo, bot.review.compare, bot.review.report, contract.metrics\n"
        "heavy = ('sklearn', 'scipy', 'onnxruntime', 'skl2onnx', 'onnx')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )

    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout

    assert output.strip() == "[]"
