"""A model repository built once per session: real models, real files, the layout the sandbox sees."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from contract.schema import ModelSpec
from tests.pipelines.custom_estimator import Sentinel, ThresholdClassifier

TARGET = "label"


@dataclass
class ModelRepo:
    root: Path
    sentinel: Path
    eval_frame: pd.DataFrame  # features + TARGET, exactly data/eval.csv
    estimators: dict[str, Any] = field(default_factory=dict)

    @property
    def X(self) -> pd.DataFrame:
        return self.eval_frame.drop(columns=[TARGET])

    @property
    def y(self) -> np.ndarray:
        return self.eval_frame[TARGET].to_numpy()

    def spec(self, name: str, path: str, dataset: str = "data/eval.csv", **extra: Any) -> ModelSpec:
        target = extra.pop("target", TARGET)
        task = extra.pop("task", "classification")
        return {"name": name, "path": path, "task": task, "dataset": {"path": dataset, "target": target}, **extra}  # type: ignore[typeddict-item]


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = train_test_split(frame, test_size=0.3, random_state=0)
    return train.reset_index(drop=True), test.reset_index(drop=True)


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> ModelRepo:
    root = tmp_path_factory.mktemp("model-repo")
    (root / "models").mkdir()
    (root / "data").mkdir()
    repo = ModelRepo(root=root, sentinel=tmp_path_factory.mktemp("host") / "PICKLE_RAN", eval_frame=pd.DataFrame())

    # Breast cancer: binary classification, float features with no feature names in the files.
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": TARGET})
    frame.columns = [f"f{i}" for i in range(frame.shape[1] - 1)] + [TARGET]
    train, test = _split(frame)
    repo.eval_frame = test
    X, y = train.drop(columns=[TARGET]), train[TARGET].to_numpy()
    test.to_csv(root / "data/eval.csv", index=False)
    test.to_parquet(root / "data/eval.parquet", index=False)
    test.assign(extra=1.0).to_csv(root / "data/extra_column.csv", index=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP convergence chatter
        estimators = {
            "lr": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y),  # named
            "rf": RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(X.to_numpy(), y),
            "mlp": make_pipeline(StandardScaler(), MLPClassifier((128, 64), max_iter=300, random_state=0)).fit(
                X.to_numpy(), y
            ),
            "custom": ThresholdClassifier().fit(X.to_numpy(), y),
        }
    for name in ("lr", "rf", "mlp"):
        sio.dump(estimators[name], root / f"models/{name}.skops")
    sio.dump(estimators["custom"], root / "models/custom.skops")
    (root / "models/custom.pkl").write_bytes(pickle.dumps(estimators["custom"]))
    onnx_rf = to_onnx(estimators["rf"], X.to_numpy(np.float32)[:1], options={"zipmap": False})
    (root / "models/rf.onnx").write_bytes(onnx_rf.SerializeToString())
    (root / "models/evil.pkl").write_bytes(pickle.dumps(Sentinel(repo.sentinel)))
    (root / "models/evil.joblib").write_bytes(pickle.dumps(Sentinel(repo.sentinel)))
    (root / "models/corrupt.onnx").write_bytes(b"this is not a protobuf")
    (root / "models/model.h5").write_bytes(b"\x89HDF")
    (root / "data/notes.txt").write_text("not a table\n")

    zipmap = to_onnx(estimators["rf"], X.to_numpy(np.float32)[:1])  # default: probabilities as ZipMap dicts
    (root / "models/rf_zipmap.onnx").write_bytes(zipmap.SerializeToString())

    # A bare network, as other frameworks export it: MatMul → Softmax, probabilities as the only output.
    weights = np.random.default_rng(1).normal(size=(30, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits"]), helper.make_node("Softmax", ["logits"], ["probs"])],
        "net",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 30])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(weights, "W")],
    )
    net = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (root / "models/net.onnx").write_bytes(net.SerializeToString())

    # Mixed column types through a ColumnTransformer: the ONNX graph gets one input per column.
    rng = np.random.default_rng(0)
    mixed = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 300).astype(float),
            "plan": rng.choice(["basic", "pro"], 300),
            "spend": rng.normal(50, 10, 300),
        }
    )
    mixed[TARGET] = ((mixed["plan"] == "pro") ^ (mixed["spend"] > 52)).astype(int)
    mtrain, mtest = _split(mixed)
    mtest.to_csv(root / "data/mixed.csv", index=False)
    columns = ColumnTransformer([("num", StandardScaler(), ["age", "spend"]), ("cat", OneHotEncoder(), ["plan"])])
    estimators["mixed"] = make_pipeline(columns, LogisticRegression()).fit(
        mtrain.drop(columns=[TARGET]), mtrain[TARGET]
    )
    sio.dump(estimators["mixed"], root / "models/mixed.skops")

    # Iris: multiclass.
    iris = load_iris(as_frame=True).frame.rename(columns={"target": TARGET})
    iris.columns = ["a", "b", "c", "d", TARGET]
    itrain, itest = _split(iris)
    itest.to_csv(root / "data/iris.csv", index=False)
    estimators["iris"] = LogisticRegression(max_iter=1000).fit(itrain.drop(columns=[TARGET]).to_numpy(), itrain[TARGET])
    sio.dump(estimators["iris"], root / "models/iris.skops")

    # Diabetes: regression.
    diabetes = load_diabetes(as_frame=True).frame
    dtrain, dtest = _split(diabetes)
    dtest.to_csv(root / "data/diabetes.csv", index=False)
    estimators["ridge"] = Ridge().fit(dtrain.drop(columns=["target"]).to_numpy(), dtrain["target"])
    sio.dump(estimators["ridge"], root / "models/ridge.skops")

    repo.estimators = estimators
    return repo


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")
