"""Load a model file safely and wrap it behind one small prediction interface.

ONNX models run in ONNX Runtime; skops files load when every type skops itself does not trust is on
our reviewed allow-list (``REVIEWED_SKOPS_TYPES``); pickle and joblib files, and skops files that
need any other type, are only opened when the repository configuration sets ``allow_pickle``,
because opening them can run arbitrary code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from contract.schema import ModelFormat, Task
from pipelines.errors import PipelineError

FORMATS: dict[str, ModelFormat] = {
    ".onnx": "onnx",
    ".skops": "skops",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "joblib",
}
# Types skops (0.16) reports as untrusted that real scikit-learn models need, each reviewed: a plain
# data holder rebuilt from arrays and numbers, with no callable or import in its state. Never a
# module-prefix rule: numpy and sklearn also hold functions that run code (e.g.
# ``numpy.testing._private.utils.runstring`` is ``exec``), which a skops node can call.
REVIEWED_SKOPS_TYPES = frozenset(
    {
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    }
)

_ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.object_,
    "tensor(bool)": np.bool_,
}


def label_strings(values: Any) -> list[str]:
    """Labels as strings, with integral floats written as integers so CSV `1.0` matches model `1`."""
    out: list[str] = []
    for v in np.asarray(values).ravel().tolist():
        if isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        elif isinstance(v, bytes):
            out.append(v.decode())
        else:
            out.append(str(v))
    return out


@dataclass(frozen=True)
class Scored:
    labels: np.ndarray  # predicted labels (classification) or values (regression)
    proba: np.ndarray | None  # (rows, classes) in `classes` order, classification only


class Predictor(Protocol):
    """What evaluation and optimization need from a model, whatever its format."""

    @property
    def classes(self) -> list[str] | None: ...

    def check_features(self, columns: list[str]) -> None: ...

    def prepare(self, frame: pd.DataFrame) -> Any: ...

    def predict(self, batch: Any) -> np.ndarray: ...

    def score(self, batch: Any) -> Scored: ...


def _mismatch(expected: int, got: int, detail: str = "") -> PipelineError:
    return PipelineError(
        "feature_mismatch",
        f"the model expects {expected} features but the dataset has {got} feature columns "
        f"(all columns except the target){detail}; check `dataset.target` and the evaluation data",
    )


class SklearnPredictor:
    def __init__(self, estimator: Any, task: Task) -> None:
        if not hasattr(estimator, "predict"):
            raise PipelineError(
                "load_failed",
                f"the file holds an object of type {type(estimator).__name__}, which has no predict() method",
            )
        self.estimator = estimator
        self.task = task
        names = getattr(estimator, "feature_names_in_", None)
        self._names: list[str] | None = [str(n) for n in names] if names is not None else None
        proba = task == "classification" and hasattr(estimator, "predict_proba")
        self._has_proba = proba and hasattr(estimator, "classes_")

    @property
    def classes(self) -> list[str] | None:
        return label_strings(self.estimator.classes_) if self._has_proba else None

    def check_features(self, columns: list[str]) -> None:
        if self._names is not None:
            missing = [n for n in self._names if n not in columns]
            if missing:
                raise PipelineError(
                    "feature_mismatch",
                    f"the model was trained on columns the dataset lacks: {', '.join(missing[:10])}",
                )
            return
        expected = getattr(self.estimator, "n_features_in_", None)
        if expected is not None and int(expected) != len(columns):
            raise _mismatch(int(expected), len(columns))

    def prepare(self, frame: pd.DataFrame) -> Any:
        return frame[self._names] if self._names is not None else frame.to_numpy()

    def predict(self, batch: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict(batch))

    def score(self, batch: Any) -> Scored:
        labels = self.predict(batch)
        proba = np.asarray(self.estimator.predict_proba(batch), dtype=np.float64) if self._has_proba else None
        return Scored(labels=labels, proba=proba)


def _onnx_class_labels(model: Any) -> list[str] | None:
    """Class order of the probability output, as skl2onnx and most converters record it."""
    import onnx
    from onnx import numpy_helper

    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name in ("classlabels_int64s", "classlabels_strings", "classlabels_ints"):
                return label_strings(onnx.helper.get_attribute_value(attr))
    for init in model.graph.initializer:
        if init.name == "classes":
            return label_strings(numpy_helper.to_array(init))
    return None


class OnnxPredictor:
    def __init__(self, content: bytes, task: Task, threads: int = 1) -> None:
        import onnx
        import onnxruntime as ort

        self.task = task
        options = ort.SessionOptions()
        # One thread: single-row latency is what serving sees, and the sandbox gets one CPU anyway.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        self._inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        self._label_output = outputs[0].name
        self._proba_output = outputs[1].name if task == "classification" and len(outputs) > 1 else None
        # A network exported with only a probability output (no label tensor): labels are its argmax.
        first = outputs[0]
        self._scores_only = (
            task == "classification"
            and len(outputs) == 1
            and first.type in ("tensor(float)", "tensor(double)")
            and len(first.shape) == 2
            and first.shape[1] != 1
        )
        self._classes = _onnx_class_labels(onnx.load_model_from_string(content))

    @property
    def classes(self) -> list[str] | None:
        return self._classes

    def set_classes(self, classes: list[str]) -> None:
        self._classes = classes

    def check_features(self, columns: list[str]) -> None:
        if len(self._inputs) > 1:
            missing = [i.name for i in self._inputs if i.name not in columns]
            if missing:
                raise PipelineError(
                    "feature_mismatch",
                    f"the ONNX model has inputs the dataset lacks as columns: {', '.join(missing[:10])}",
                )
            return
        shape = self._inputs[0].shape
        width = shape[1] if len(shape) == 2 else None
        if isinstance(width, int) and width != len(columns):
            raise _mismatch(width, len(columns), f" (ONNX input `{self._inputs[0].name}` has shape {shape})")

    def prepare(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if len(self._inputs) == 1:
            spec = self._inputs[0]
            dtype = _ORT_DTYPES.get(spec.type, np.float32)
            try:
                return {spec.name: frame.to_numpy().astype(dtype)}
            except (TypeError, ValueError) as exc:
                raise PipelineError(
                    "dataset_invalid", f"the dataset's feature columns cannot be read as {spec.type}: {exc}"
                ) from exc
        return {i.name: frame[[i.name]].to_numpy().astype(_ORT_DTYPES.get(i.type, np.float32)) for i in self._inputs}

    def predict(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        (labels,) = self.session.run([self._label_output], batch)
        if self._scores_only:
            return self._argmax_labels(np.asarray(labels))
        return np.asarray(labels).ravel() if self.task == "regression" else np.asarray(labels)

    def _argmax_labels(self, proba: np.ndarray) -> np.ndarray:
        classes = self._classes or [str(i) for i in range(proba.shape[1])]
        return np.asarray(classes, dtype=object)[proba.argmax(axis=1)]

    def score(self, batch: dict[str, np.ndarray]) -> Scored:
        if self._scores_only:
            (raw,) = self.session.run([self._label_output], batch)
            proba = np.asarray(raw, dtype=np.float64)
            return Scored(labels=self._argmax_labels(proba), proba=proba)
        if self._proba_output is None:
            return Scored(labels=self.predict(batch), proba=None)
        labels, raw = self.session.run([self._label_output, self._proba_output], batch)
        if isinstance(raw, list):  # ZipMap output: one {label: probability} dict per row
            keys = list(raw[0]) if raw else []
            self._classes = label_strings(keys)
            proba = np.array([[row[k] for k in keys] for row in raw], dtype=np.float64)
        else:
            proba = np.asarray(raw, dtype=np.float64)
        return Scored(labels=np.asarray(labels), proba=proba)


@dataclass(frozen=True)
class LoadedModel:
    format: ModelFormat
    predictor: Predictor
    estimator: Any | None  # the scikit-learn object, None for ONNX
    onnx_bytes: bytes | None


def model_format(path: Path) -> ModelFormat:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PipelineError(
            "unsupported_format",
            f"`{path.name}`: unsupported model format `{path.suffix}`; use .onnx or .skops "
            "(.pkl/.joblib only with `allow_pickle: true`)",
        )
    return fmt


def load_model(path: Path, task: Task, allow_pickle: bool, display: str) -> LoadedModel:
    if not path.is_file():
        raise PipelineError("missing_model", f"model file `{display}` does not exist; check `models[].path`")
    fmt = model_format(path)
    if fmt in ("pickle", "joblib") and not allow_pickle:
        raise PipelineError(
            "pickle_not_allowed",
            f"`{display}` is a {fmt} file, and loading it would run arbitrary code; it was NOT loaded. "
            "Save the model as .skops or .onnx, or set `allow_pickle: true` for this model",
        )
    try:
        if fmt == "onnx":
            content = path.read_bytes()
            return LoadedModel(fmt, OnnxPredictor(content, task), None, content)
        estimator = _load_skops(path, display, allow_pickle) if fmt == "skops" else _load_pickle(path, fmt)
    except PipelineError:
        raise
    except Exception as exc:
        raise PipelineError("load_failed", f"could not load `{display}`: {type(exc).__name__}: {exc}") from exc
    return LoadedModel(fmt, SklearnPredictor(estimator, task), estimator, None)


def _load_skops(path: Path, display: str, allow_pickle: bool) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    unreviewed = sorted(t for t in untrusted if t not in REVIEWED_SKOPS_TYPES)
    if unreviewed and not allow_pickle:
        # Loading such a file can call any of these types with any arguments: as unsafe as a pickle.
        raise PipelineError(
            "untrusted_types",
            f"`{display}` needs types that are not on Modelship's reviewed list: {', '.join(unreviewed[:20])}; "
            "loading it could run arbitrary code, so it was NOT loaded. Save the model with only scikit-learn "
            "estimators (or as .onnx), or set `allow_pickle: true` for this model to load it like a pickle",
        )
    return sio.load(path, trusted=list(untrusted))


def _load_pickle(path: Path, fmt: ModelFormat) -> Any:
    if fmt == "joblib":
        import joblib

        return joblib.load(path)
    import pickle

    with path.open("rb") as fh:
        return pickle.load(fh)  # only reached when the repository config sets allow_pickle
