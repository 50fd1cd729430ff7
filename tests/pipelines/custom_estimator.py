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


def skops_gadget(code: str) -> bytes:
    """A .skops file whose schema calls ``numpy.testing._private.utils.runstring(code, {})`` (``exec``)
    when loaded: a type under ``numpy``, which a module-prefix trust rule would have let through."""
    import io
    import json
    import zipfile

    import skops.io as sio

    arguments = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps((code, {})))).read("schema.json"))
    schema = {
        "__class__": "runstring",
        "__module__": "numpy.testing._private.utils",
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in arguments.items() if k not in ("protocol", "_skops_version")},
        "__id__": 1,
        "protocol": arguments["protocol"],
        "_skops_version": arguments["_skops_version"],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()
