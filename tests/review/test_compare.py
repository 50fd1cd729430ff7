"""Scenarios for the comparison core, checked against scikit-learn and scipy computed independently."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from bot.repoconfig import ModelSpec
from bot.review.compare import compare_model, compare_review
from bot.review.parse import Evaluation, parse_evaluation, results_by_model
from bot.review.stats import MCNEMAR_EXACT_BELOW, mcnemar, metric_on_resamples, metric_on_rows
from contract.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

RESAMPLES = 400  # enough for stable 95% intervals in tests, cheap on a shared 2-core machine


# --------------------------------------------------------------------------- building evaluations


def sk_metric(metric: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, labels: list[Any]) -> float:
    """What the sandboxed pipeline computes, with scikit-learn."""
    binary = len(labels) == 2
    if metric == "accuracy":
        return float(skm.accuracy_score(y, pred))
    if metric == "roc_auc":
        assert proba is not None
        return float(skm.roc_auc_score(y, proba[:, 1] if binary else proba, multi_class="ovr", labels=labels))
    if metric == "log_loss":
        assert proba is not None
        return float(skm.log_loss(y, proba, labels=labels))
    if metric in REGRESSION_METRICS:
        fn = {
            "mae": skm.mean_absolute_error,
            "rmse": skm.root_mean_squared_error,
            "r2": skm.r2_score,
            "mape": skm.mean_absolute_percentage_error,
        }[metric]
        return float(fn(y, pred))
    kind, _, average = metric.partition("_")
    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[kind]
    # Like pipelines/metrics.py: with more than two classes the headline numbers are macro averages.
    default = "binary" if binary else "macro"
    if (average or default) == "binary":
        return float(fn(y, pred, average="binary", pos_label=labels[1], zero_division=0))
    return float(fn(y, pred, average=average or default, zero_division=0))


def evaluation_doc(
    name: str,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None = None,
    *,
    task: str = "classification",
    dataset_sha: str = "d" * 64,
    metrics: tuple[str, ...] | None = None,
    p95_ms: float = 2.0,
) -> dict[str, Any]:
    """A schema_version 1 evaluation document, as pipelines/ writes it."""
    labels = sorted(set(y.tolist()) | set(pred.tolist())) if task == "classification" else []
    wanted = metrics or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    if proba is None:
        wanted = tuple(m for m in wanted if m not in ("roc_auc", "log_loss"))
    return {
        "schema_version": 1,
        "name": name,
        "task": task,
        "model": {
            "path": f"models/{name}.onnx",
            "format": "onnx",
            "sha256": "m" * 64,
            "size_bytes": 1_000_000,
        },
        "dataset": {"path": "data/eval.csv", "sha256": dataset_sha, "rows": len(y), "n_features": 4},
        "metrics": {m: sk_metric(m, y, pred, proba, labels) for m in wanted},
        "per_class": [],
        "confusion_matrix": {"labels": [str(v) for v in labels], "matrix": []},
        "latency": {
            "p50_ms": 1.0,
            "p95_ms": p95_ms,
            "p99_ms": 3.0,
            "batch_rows_per_s": 1e5,
            "repetitions": 50,
        },
        "predictions": {
            "y_true": [str(v) for v in y] if task == "classification" else y.tolist(),
            "y_pred": [str(v) for v in pred] if task == "classification" else pred.tolist(),
            # Binary: the positive class's probability, as the pipeline sends it; the bot also takes
            # a full (rows, classes) matrix, used here for multiclass.
            "y_score": None if proba is None else (proba[:, 1] if len(labels) == 2 else proba).tolist(),
        },
        "error": None,
    }


def policy(
    task: str = "classification", metrics: list[str] | None = None, gates: dict[str, Any] | None = None
) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "churn",
            "path": "models/churn.onnx",
            "task": task,
            "dataset": {"path": "data/eval.csv", "target": "label"},
            "metrics": metrics or [],
            "gates": gates or {},
        }
    )


@pytest.fixture(scope="module")
def cancer() -> dict[str, Any]:
    """Breast cancer: a strong logistic regression against a one-split stump, on the same rows."""
    x, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    train = rng.random(len(y)) < 0.5
    strong = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x[train], y[train])
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(x[train], y[train])
    xe, ye = x[~train], y[~train]
    return {
        "y": ye,
        "strong": evaluation_doc("churn", ye, strong.predict(xe), strong.predict_proba(xe)),
        "stump": evaluation_doc("churn", ye, stump.predict(xe), stump.predict_proba(xe)),
    }


@pytest.fixture(scope="module")
def iris() -> dict[str, Any]:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    return {"y": y[1::2], "pred": model.predict(x[1::2]), "proba": model.predict_proba(x[1::2])}


@pytest.fixture(scope="module")
def diabetes() -> dict[str, Any]:
    x, y = load_diabetes(return_X_y=True)
    linear = LinearRegression().fit(x[::2], y[::2])
    mean = DummyRegressor().fit(x[::2], y[::2])
    xe, ye = x[1::2], y[1::2]
    return {
        "y": ye,
        "linear": evaluation_doc("churn", ye, linear.predict(xe), task="regression"),
        "mean": evaluation_doc("churn", ye, mean.predict(xe), task="regression"),
    }


# --------------------------------------------------------------------------- metrics agree with sklearn


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
def test_binary_metrics_recomputed_from_predictions_equal_sklearn(cancer: dict[str, Any], metric: str) -> None:
    evaluation = parse_evaluation(cancer["strong"])

    assert metric_on_rows(metric, evaluation) == pytest.approx(cancer["strong"]["metrics"][metric], abs=1e-12)


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
def test_multiclass_metrics_recomputed_from_predictions_equal_sklearn(iris: dict[str, Any], metric: str) -> None:
    doc = evaluation_doc("iris", iris["y"], iris["pred"], iris["proba"])

    assert metric_on_rows(metric, parse_evaluation(doc)) == pytest.approx(doc["metrics"][metric], abs=1e-12)


def test_multiclass_precision_recall_and_f1_are_the_macro_averages(iris: dict[str, Any]) -> None:
    evaluation = parse_evaluation(evaluation_doc("iris", iris["y"], iris["pred"], iris["proba"]))

    for kind in ("precision", "recall", "f1"):
        assert metric_on_rows(kind, evaluation) == metric_on_rows(f"{kind}_macro", evaluation)


def test_the_pipelines_label_order_decides_the_positive_class() -> None:
    y = np.array(["spam", "ham", "spam", "spam", "ham"])
    pred = np.array(["spam", "spam", "spam", "ham", "ham"])
    doc = evaluation_doc("mail", y, pred, metrics=("precision",))
    # The model's classes were [spam, ham]: ham is the positive (second) class.
    doc["confusion_matrix"]["labels"] = ["spam", "ham"]

    value = metric_on_rows("precision", parse_evaluation(doc))

    assert value == pytest.approx(skm.precision_score(y, pred, pos_label="ham"))


@pytest.mark.parametrize("metric", REGRESSION_METRICS)
def test_regression_metrics_recomputed_from_predictions_equal_sklearn(diabetes: dict[str, Any], metric: str) -> None:
    evaluation = parse_evaluation(diabetes["linear"])

    assert metric_on_rows(metric, evaluation) == pytest.approx(diabetes["linear"]["metrics"][metric], rel=1e-9)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "f1_macro", "precision_weighted", "roc_auc", "log_loss"])
def test_each_resample_equals_sklearn_on_the_resampled_rows(cancer: dict[str, Any], metric: str) -> None:
    doc = cancer["stump"]
    y = cancer["y"]
    pred = np.array([int(v) for v in doc["predictions"]["y_pred"]])
    positive = np.array(doc["predictions"]["y_score"])
    proba = np.column_stack([1 - positive, positive])
    idx = np.random.default_rng(7).integers(0, len(y), size=(5, len(y)))

    mine = metric_on_resamples(metric, parse_evaluation(doc), idx)

    assert mine is not None
    expected = [sk_metric(metric, y[i], pred[i], proba[i], [0, 1]) for i in idx]
    np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", REGRESSION_METRICS)
def test_regression_resamples_equal_sklearn(diabetes: dict[str, Any], metric: str) -> None:
    doc = diabetes["linear"]
    y, pred = np.array(doc["predictions"]["y_true"]), np.array(doc["predictions"]["y_pred"])
    idx = np.random.default_rng(3).integers(0, len(y), size=(4, len(y)))

    mine = metric_on_resamples(metric, parse_evaluation(doc), idx)

    assert mine is not None
    expected = np.array([sk_metric(metric, y[i], pred[i], None, []) for i in idx])
    np.testing.assert_allclose(mine, expected, rtol=1e-9)


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


# --------------------------------------------------------------------------- McNemar


def exact_reference(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value with exact rational arithmetic."""
    n = b + c
    tail = sum((Fraction(_comb(n, i), 2**n) for i in range(min(b, c) + 1)), Fraction(0))
    return float(min(Fraction(1), 2 * tail))


def _comb(n: int, k: int) -> int:
    out = 1
    for i in range(k):
        out = out * (n - i) // (i + 1)
    return out


def outcomes(b: int, c: int, both: int = 10, neither: int = 5) -> tuple[list[bool], list[bool]]:
    base = [True] * b + [False] * c + [True] * both + [False] * neither
    head = [False] * b + [True] * c + [True] * both + [False] * neither
    return base, head


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (3, 9), (12, 12), (0, 24), (7, 17)])
def test_mcnemar_exact_matches_the_binomial_reference(b: int, c: int) -> None:
    result = mcnemar(*outcomes(b, c))

    assert (result.base_only_correct, result.head_only_correct) == (b, c)
    assert result.method == "exact"
    assert result.p_value == pytest.approx(exact_reference(b, c), rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(10, 15), (40, 60), (100, 100), (5, 80)])
def test_mcnemar_chi_square_matches_scipy(b: int, c: int) -> None:
    result = mcnemar(*outcomes(b, c))

    assert b + c >= MCNEMAR_EXACT_BELOW and result.method == "chi2"
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(stats.chi2.sf(statistic, df=1), rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200))
def test_mcnemar_is_a_symmetric_probability(b: int, c: int) -> None:
    forward, backward = mcnemar(*outcomes(b, c)), mcnemar(*outcomes(c, b))

    assert 0.0 <= forward.p_value <= 1.0
    assert forward.p_value == pytest.approx(backward.p_value)


# --------------------------------------------------------------------------- gates


def gates_of(result: Any) -> dict[tuple[str, str], Any]:
    return {(g.metric, g.rule): g for g in result.gates}


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
        "import sys, bot.repoconfig, bot.review.compare, bot.review.report, contract.metrics\n"
        "heavy = ('sklearn', 'scipy', 'onnxruntime', 'skl2onnx', 'onnx')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )

    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout

    assert output.strip() == "[]"


def test_a_pipeline_report_is_indexed_by_model_name(cancer: dict[str, Any]) -> None:
    report = {"schema_version": 1, "models": [cancer["strong"]], "error": None}

    assert results_by_model(report, ["churn", "other"]) == {"churn": cancer["strong"]}


def test_a_failed_run_gives_every_model_its_error() -> None:
    report = {"schema_version": 1, "models": [], "error": {"kind": "internal_error", "message": "timed out after 5 s"}}

    review = compare_review([policy()], {}, results_by_model(report, ["churn"]))

    assert review.models[0].status == "head_failed"
    assert review.models[0].error == "internal_error: timed out after 5 s"


@pytest.mark.parametrize("report", [None, [], "x", {"schema_version": 2, "models": []}])
def test_an_unreadable_report_is_an_error_for_every_model(report: Any) -> None:
    results = results_by_model(report, ["churn"])

    assert "error" in results["churn"] and parse_evaluation(results["churn"]).error
