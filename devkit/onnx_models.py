"""A small real ONNX classifier for server tests (sklearn + skl2onnx run only in tests and pipelines/)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


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


GRID_LOW, GRID_HIGH = -3.0, 3.0  # the grid regressor's domain on each of its 4 features


def grid_target(x: Any) -> Any:
    """The function the grid regressor tabulates (numpy broadcasting: any shape ending in 4 features)."""
    import numpy as np

    a, b, c, d = (x[..., i] for i in range(4))
    return np.sin(a) + 0.5 * np.cos(b) * c - 0.25 * d * d


def write_grid_regressor(path: Path, bins: int = 72) -> str:
    """A piecewise-constant regressor on a ``bins``⁴ grid over [-3, 3)⁴ as ONNX at ``path``; returns its sha256.

    Each input row is binned per feature, the four bin numbers make one flat index, and the prediction is
    that cell of a float32 table holding ``grid_target`` at the cell's centre (a lookup-table model, as
    histogram or quantised function approximators are stored). With 72 bins the table is 107.5 MB — past
    GitHub's 100 MiB limit for plain git files, so it must live in Git LFS — yet it loads in well under a
    second and answers a row with four arithmetic nodes and one Gather.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    width = (GRID_HIGH - GRID_LOW) / bins
    centres = (GRID_LOW + width * (np.arange(bins, dtype=np.float64) + 0.5)).astype(np.float32)
    grid = np.stack(np.meshgrid(centres, centres, centres, centres, indexing="ij"), axis=-1)
    table = grid_target(grid).astype(np.float32).ravel()
    del grid
    strides = np.array([bins**3, bins**2, bins, 1], dtype=np.int64)
    constants = [
        helper.make_tensor("low", TensorProto.FLOAT, [4], [GRID_LOW] * 4),
        helper.make_tensor("width", TensorProto.FLOAT, [4], [width] * 4),
        helper.make_tensor("first", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("last", TensorProto.FLOAT, [], [float(bins - 1)]),
        helper.make_tensor("strides", TensorProto.INT64, [4], strides.tolist()),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("table", TensorProto.FLOAT, [table.size], table.tobytes(), raw=True),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "low"], ["shifted"]),
        helper.make_node("Div", ["shifted", "width"], ["scaled"]),
        helper.make_node("Floor", ["scaled"], ["floored"]),
        helper.make_node("Clip", ["floored", "first", "last"], ["cell"]),
        helper.make_node("Cast", ["cell"], ["cell64"], to=TensorProto.INT64),
        helper.make_node("Mul", ["cell64", "strides"], ["offsets"]),
        helper.make_node("ReduceSum", ["offsets", "axis1"], ["index"], keepdims=0),
        helper.make_node("Gather", ["table", "index"], ["value"], axis=0),
        helper.make_node("Unsqueeze", ["value", "axis1"], ["variable"]),
    ]
    graph = helper.make_graph(
        nodes,
        "grid_regressor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelship-devkit")
    model.ir_version = 8
    data = model.SerializeToString()
    onnx.checker.check_model(data)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
