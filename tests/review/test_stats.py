"""Resampled metrics agree with scikit-learn, and McNemar's test with exact and scipy references."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn import metrics as skm

from bot.review.parse import parse_evaluation
from bot.review.stats import MCNEMAR_EXACT_BELOW, mcnemar, metric_on_resamples, metric_on_rows
from contract.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from tests.review.evaluations import evaluation_doc, sk_metric

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
