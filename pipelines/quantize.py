"""ONNX Runtime graph optimization and int8 quantization of an ONNX file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Node types whose weights ONNX Runtime's quantizer turns into int8.
QUANTIZABLE_OPS = frozenset({"MatMul", "Gemm", "Conv", "Attention", "LSTM", "GRU"})
QUANTIZED_OPS = frozenset(
    {
        "MatMulInteger",
        "DynamicQuantizeLinear",
        "QLinearMatMul",
        "QuantizeLinear",
        "QLinearConv",
        "ConvInteger",
    }
)


def op_types(model_path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(model_path)).graph.node}


def not_quantizable_reason(model_path: Path) -> str | None:
    """None when int8 applies; otherwise why not, naming what the graph is made of."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    if any(node.op_type in QUANTIZABLE_OPS for node in graph.node):
        return None
    ml_ops = sorted({n.op_type for n in graph.node if n.domain == "ai.onnx.ml"})
    made_of = f"ai.onnx.ml operators ({', '.join(ml_ops)})" if ml_ops else "no weight-bearing operators"
    return (
        f"the graph has no MatMul/Gemm/Conv nodes to quantize, only {made_of}; "
        "int8 quantization applies to linear layers such as an MLP's"
    )


def optimize_graph(source: Path, target: Path) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # EXTENDED, not ALL: layout-specific rewrites from ALL tie the file to this machine's CPU.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


class NothingQuantized(Exception):
    """The graph has linear layers, but none the quantizer could take (e.g. double-precision ones)."""


def _check_quantized(target: Path) -> None:
    if not op_types(target) & QUANTIZED_OPS:
        raise NothingQuantized("the quantizer left every node in float (it only takes float32 MatMul/Gemm weights)")


def quantize_dynamic(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs pre-processing advice at WARNING
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    _check_quantized(target)


def quantize_static(source: Path, target: Path, input_name: str, calibration: np.ndarray) -> None:
    """Static int8: activation ranges calibrated on `calibration` rows drawn from the evaluation data."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.chunks: Iterator[np.ndarray] = iter(np.array_split(calibration, max(1, len(calibration) // 32)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            chunk = next(self.chunks, None)
            return None if chunk is None else {input_name: chunk}

    logging.getLogger().setLevel(logging.ERROR)
    quantize_static(
        str(source),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
    )
    _check_quantized(target)
