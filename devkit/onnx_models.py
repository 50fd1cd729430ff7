"""A small real ONNX classifier for server tests (sklearn + skl2onnx run only in tests and pipelines/)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def write_iris_classifier(path: Path) -> str:
    """Train a logistic regression on iris, save it as ONNX at ``path``, return its sha256."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    onnx_model = to_onnx(model, features[:1].astype("float32"), target_opset=17)
    data = onnx_model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def write_regressor(path: Path) -> str:
    """A linear regression y = 2x + 1 as ONNX at ``path``; returns its sha256."""
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    x = np.arange(10, dtype=np.float32).reshape(-1, 1)
    model = LinearRegression().fit(x, 2 * x[:, 0] + 1)
    data = to_onnx(model, x[:1], target_opset=17).SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


IRIS_SETOSA = [5.1, 3.5, 1.4, 0.2]
IRIS_VIRGINICA = [6.7, 3.0, 5.8, 2.2]
