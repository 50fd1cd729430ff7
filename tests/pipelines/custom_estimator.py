"""Estimators and payloads that tests save to files; they must live in an importable module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class ThresholdClassifier(ClassifierMixin, BaseEstimator):
    """A valid scikit-learn classifier that skl2onnx has no converter for."""

    def fit(self, X: Any, y: Any) -> ThresholdClassifier:
        X = np.asarray(X, dtype=float)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        self.threshold_ = float(np.median(X[:, 0]))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        high = (np.asarray(X, dtype=float)[:, 0] > self.threshold_).astype(float)
        return np.column_stack([1 - high, high])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class Sentinel:
    """Unpickling this writes a file: proof that the pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (Path.write_text, (Path(self.path), "pickle code ran"))  # type: ignore[return-value]
