"""scikit-learn → ONNX with skl2onnx, failures turned into readable messages naming the estimator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SAMPLE_ROWS = 5


class ConversionError(Exception):
    pass


def describe_estimator(estimator: Any) -> str:
    """`Pipeline(StandardScaler → MLPClassifier)` style, so a failure row says what was converted."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list):
        inner = " → ".join(describe_estimator(step) for _, step in steps)
        return f"{type(estimator).__name__}({inner})"
    return type(estimator).__name__


def to_onnx_bytes(estimator: Any, features: pd.DataFrame) -> bytes:
    from skl2onnx import to_onnx
    from sklearn.base import is_classifier

    numeric = all(pd.api.types.is_numeric_dtype(t) for t in features.dtypes)
    # All-numeric data becomes one float tensor (what serving sends); mixed columns become one input each.
    sample: Any = features.iloc[:SAMPLE_ROWS].to_numpy(np.float32) if numeric else features.iloc[:SAMPLE_ROWS]
    # Plain probability tensors instead of ZipMap dicts: faster, and quantizable downstream.
    options = {"zipmap": False} if is_classifier(estimator) else None
    try:
        model = to_onnx(estimator, sample, options=options)
    except Exception as exc:
        message = " ".join(str(exc).split())
        if len(message) > 400:
            message = message[:400] + " …"
        raise ConversionError(
            f"skl2onnx could not convert {describe_estimator(estimator)}: {type(exc).__name__}: {message}"
        ) from exc
    return bytes(model.SerializeToString())
