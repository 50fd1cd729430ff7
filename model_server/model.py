"""The model the server answers with: a sha256-checked ONNX file behind a narrow Predictor protocol.

onnxruntime is imported only inside :func:`load_onnx`, so importing this module (and the server's
HTTP layer) stays cheap and the bot process never pulls the runtime in by accident.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Open Inference Protocol datatypes for the numpy dtypes a tabular model takes or returns.
OIP_DATATYPES: Mapping[str, str] = {
    "float32": "FP32",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "bool": "BOOL",
    "object": "BYTES",
    "str": "BYTES",
}
NUMPY_DTYPES: Mapping[str, Any] = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "BOOL": np.bool_,
}
_ONNX_TYPES: Mapping[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


class ModelLoadError(Exception):
    """The model file cannot be served; the message says what to fix."""


@dataclass(frozen=True)
class Prediction:
    """One batch's answer: ``labels`` for classifiers (else None), ``scores`` one float per row.

    For a classifier the score is the probability of the predicted label (its confidence); for a
    regressor it is the predicted value.
    """

    labels: list[str] | None
    scores: list[float]
    probabilities: list[list[float]] | None = None
    classes: list[str] | None = None


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: list[int]


class Predictor(Protocol):
    input: TensorSpec
    outputs: list[TensorSpec]

    def predict(self, rows: np.ndarray) -> Prediction: ...


@dataclass(frozen=True)
class ServedModel:
    """What the server serves: a predictor plus the identity it reports in answers and metrics."""

    name: str
    version: str
    predictor: Predictor
    env: str = ""
    platform: str = "onnxruntime_onnx"
    # What the bot pinned (values: model.sha256 / model.variant): exported as modelship_model_info so the
    # bot can tell which file every replica serves (live tracking) without ever loading a model itself.
    sha256: str = ""
    variant: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse a model whose bytes are not the ones the deploy values pinned."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist (check --model / model.path in the values)")
    wanted = expected.strip().lower()
    actual = sha256_of(path)
    if actual != wanted:
        raise ModelLoadError(
            f"refusing to serve {path}: its sha256 is {actual} but --sha256 pins {wanted}. "
            "The file changed after it was reviewed; redeploy it through a pull request."
        )


class OnnxPredictor:
    """An ONNX Runtime session over a single-input tabular model (what skl2onnx produces)."""

    def __init__(self, session: Any) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelLoadError(f"the model has {len(inputs)} inputs ({names}); the server takes exactly one")
        spec = inputs[0]
        if spec.type not in _ONNX_TYPES:
            raise ModelLoadError(f"input {spec.name!r} has type {spec.type}; the server takes numeric tensors")
        self._session = session
        self._dtype = _ONNX_TYPES[spec.type]
        self.input = TensorSpec(spec.name, OIP_DATATYPES[np.dtype(self._dtype).name], _shape(spec.shape))
        self.outputs = [
            TensorSpec(o.name, _oip_type(o.type), _shape(getattr(o, "shape", None) or []))
            for o in session.get_outputs()
        ]
        self._output_names = [o.name for o in session.get_outputs()]

    def predict(self, rows: np.ndarray) -> Prediction:
        raw = self._session.run(self._output_names, {self.input.name: rows.astype(self._dtype, copy=False)})
        return _to_prediction(raw)


def load_onnx(path: Path) -> OnnxPredictor:
    import onnxruntime  # lazily: only the model server process needs the runtime

    options = onnxruntime.SessionOptions()
    # One thread per request keeps latency predictable when replicas share a node.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for any malformed file
        raise ModelLoadError(f"cannot load {path} with ONNX Runtime: {exc}") from exc
    return OnnxPredictor(session)


def _shape(shape: Sequence[Any] | None) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in (shape or [])]


def _oip_type(onnx_type: str) -> str:
    if onnx_type.startswith("tensor("):
        inner = onnx_type[len("tensor(") : -1]
        return {"float": "FP32", "double": "FP64", "int64": "INT64", "int32": "INT32", "string": "BYTES"}.get(
            inner, "BYTES"
        )
    return "BYTES"  # seq(map(...)) from ZipMap: answered as JSON objects


def _to_prediction(raw: list[Any]) -> Prediction:
    first = np.asarray(raw[0])
    if len(raw) == 1 or first.dtype.kind == "f":
        # A regressor: one float output, one value per row.
        values = first.reshape(len(first), -1)[:, 0].astype(float)
        return Prediction(labels=None, scores=values.tolist())
    labels = [str(v) for v in first.reshape(-1).tolist()]
    probs, classes = _probabilities(raw[1])
    if probs is None or classes is None:
        return Prediction(labels=labels, scores=[1.0] * len(labels))
    index = {c: i for i, c in enumerate(classes)}
    scores = [
        float(row[index[label]]) if label in index else float(max(row))
        for row, label in zip(probs, labels, strict=True)
    ]
    return Prediction(labels=labels, scores=scores, probabilities=probs, classes=classes)


def _probabilities(raw: Any) -> tuple[list[list[float]] | None, list[str] | None]:
    if isinstance(raw, list) and raw and isinstance(raw[0], dict):
        # ZipMap output: one {class: probability} mapping per row.
        classes = [str(k) for k in raw[0]]
        return [[float(v) for v in row.values()] for row in raw], classes
    array = np.asarray(raw, dtype=float)
    if array.ndim != 2:
        return None, None
    return array.tolist(), [str(i) for i in range(array.shape[1])]
