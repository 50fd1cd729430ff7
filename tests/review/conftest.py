"""Real models' evaluation documents (breast cancer, iris, diabetes), shared by the review's tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from tests.review.evaluations import evaluation_doc


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
def iris() -> dict[str, Any]:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    return {"y": y[1::2], "pred": model.predict(x[1::2]), "proba": model.predict_proba(x[1::2])}


@pytest.fixture(scope="session")
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
