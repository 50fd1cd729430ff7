"""Optimization scenarios on real models: conversion, parity, quantization, timing, the choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from contract.schema import ModelOptimization, OptimizationReport, Variant
from pipelines.files import sha256_file
from pipelines.optimize import main, optimize
from tests.pipelines.conftest import ModelRepo


@pytest.fixture(scope="session")
def optimized(
    model_repo: ModelRepo, scratch: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[OptimizationReport, Path]:
    out_dir = tmp_path_factory.mktemp("optimize-out")
    spec = {
        "repo_dir": str(model_repo.root),
        "models": [
            model_repo.spec("lr", "models/lr.skops", gates={"accuracy": {"min": 0.8}}),
            model_repo.spec("rf", "models/rf.skops"),
            model_repo.spec("mlp", "models/mlp.skops", gates={"accuracy": {"min_delta": -0.05}}),
            model_repo.spec("custom", "models/custom.pkl", allow_pickle=True),
            model_repo.spec("rf-onnx", "models/rf.onnx"),
            model_repo.spec("ridge", "models/ridge.skops", "data/diabetes.csv", target="target", task="regression"),
            model_repo.spec("missing", "models/nope.skops"),
            model_repo.spec("mixed", "models/mixed.skops", "data/mixed.csv"),
            model_repo.spec("net", "models/net.onnx"),
        ],
        "latency": {"repetitions": 30},
        "optimize": {"onnx": True, "quantize": "both", "parity_tolerance": 1e-4, "select": "auto"},
    }
    return optimize(spec, out_dir, scratch), out_dir  # type: ignore[arg-type]


def model(report: tuple[OptimizationReport, Path], name: str) -> ModelOptimization:
    return next(m for m in report[0]["models"] if m["name"] == name)


def variant(report: tuple[OptimizationReport, Path], name: str, which: str) -> Variant:
    return next(v for v in model(report, name)["variants"] if v["name"] == which)


@pytest.mark.parametrize("name", ["lr", "rf", "mlp"])
def test_fp32_parity_numbers_match_sklearn_against_onnxruntime(
    optimized: tuple[OptimizationReport, Path], model_repo: ModelRepo, name: str
) -> None:
    fp32 = variant(optimized, name, "onnx_fp32")
    assert fp32["status"] == "ok" and fp32["path"] is not None and fp32["parity"] is not None
    estimator = model_repo.estimators[name]
    X = model_repo.X if name == "lr" else model_repo.X.to_numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as measured: tree sums in another thread order differ by ~1e-7
    session = ort.InferenceSession(str(optimized[1] / fp32["path"]), options, providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {session.get_inputs()[0].name: model_repo.X.to_numpy(np.float32)})
    assert fp32["parity"]["label_agreement"] == pytest.approx(np.mean(labels == estimator.predict(X)))
    assert fp32["parity"]["max_abs_prob_diff"] == pytest.approx(
        np.max(np.abs(proba - estimator.predict_proba(X))), rel=1e-3, abs=1e-9
    )
    assert fp32["parity"]["holds"] is True
    assert fp32["metric_delta"]["accuracy"] == pytest.approx(0.0)


@pytest.mark.parametrize(("name", "op"), [("rf", "TreeEnsembleClassifier"), ("lr", "LinearClassifier")])
def test_quantization_is_not_applicable_to_ai_onnx_ml_graphs(
    optimized: tuple[OptimizationReport, Path], name: str, op: str
) -> None:
    for which in ("int8_dynamic", "int8_static"):
        row = variant(optimized, name, which)
        assert row["status"] == "not_applicable"
        assert row["reason"] is not None and op in row["reason"]
    assert variant(optimized, name, "onnx_optimized")["status"] == "ok"


def test_mlp_int8_is_smaller_than_fp32_and_reports_its_accuracy_delta(
    optimized: tuple[OptimizationReport, Path], model_repo: ModelRepo
) -> None:
    fp32 = variant(optimized, "mlp", "onnx_fp32")
    for which in ("int8_dynamic", "int8_static"):
        int8 = variant(optimized, "mlp", which)
        assert int8["status"] == "ok", int8["reason"]
        assert int8["size_bytes"] is not None and fp32["size_bytes"] is not None
        assert int8["size_bytes"] < fp32["size_bytes"]
        assert int8["metrics"]["size_mb"] == int8["size_bytes"] / 1e6 < fp32["metrics"]["size_mb"]
        original_accuracy = float(
            np.mean(model_repo.estimators["mlp"].predict(model_repo.X.to_numpy()) == model_repo.y)
        )
        assert int8["metric_delta"]["accuracy"] == pytest.approx(int8["metrics"]["accuracy"] - original_accuracy)
        assert int8["parity"] is not None and int8["parity"]["max_abs_prob_diff"] is not None


def test_a_failing_conversion_is_a_readable_row_not_a_failed_run(optimized: tuple[OptimizationReport, Path]) -> None:
    custom = model(optimized, "custom")
    assert custom["error"] is None and custom["estimator"] == "ThresholdClassifier"
    fp32 = variant(optimized, "custom", "onnx_fp32")
    assert fp32["status"] == "failed"
    assert fp32["reason"] is not None and "could not convert ThresholdClassifier" in fp32["reason"]
    assert {v["status"] for v in custom["variants"][2:]} == {"not_applicable"}
    assert custom["chosen"] is not None and custom["chosen"]["variant"] == "original"
    assert variant(optimized, "custom", "original")["latency"] is not None


def test_onnx_models_are_taken_as_they_are(optimized: tuple[OptimizationReport, Path]) -> None:
    fp32 = variant(optimized, "rf-onnx", "onnx_fp32")
    assert fp32["status"] == "not_applicable" and fp32["reason"] is not None and "already ONNX" in fp32["reason"]
    assert variant(optimized, "rf-onnx", "onnx_optimized")["status"] == "ok"


def test_regression_parity_is_the_max_abs_error(
    optimized: tuple[OptimizationReport, Path], model_repo: ModelRepo
) -> None:
    fp32 = variant(optimized, "ridge", "onnx_fp32")
    assert fp32["parity"] is not None and fp32["parity"]["label_agreement"] is None
    assert fp32["parity"]["max_abs_error"] is not None and 0 <= fp32["parity"]["max_abs_error"] < 1e-2
    assert "mae" in fp32["metric_delta"]


def test_every_measured_variant_has_intervals_and_interleaved_repetitions(
    optimized: tuple[OptimizationReport, Path],
) -> None:
    for m in optimized[0]["models"]:
        for v in m["variants"]:
            if v["status"] != "ok":
                continue
            lat = v["latency"]
            assert lat is not None and 20 <= lat["repetitions"] <= 30
            assert 0 < lat["p95_ci_ms"]["low"] <= lat["p95_ci_ms"]["high"]
            assert 0 < lat["batch_ci_rows_per_s"]["low"] <= lat["batch_ci_rows_per_s"]["high"]
            assert lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"] and lat["cold_start_ms"] > 0


def test_the_chosen_variant_holds_parity_and_its_file_has_the_recorded_sha256(
    optimized: tuple[OptimizationReport, Path], model_repo: ModelRepo
) -> None:
    for m in optimized[0]["models"]:
        if m["error"] is not None:
            continue
        chosen = m["chosen"]
        assert chosen is not None
        row = next(v for v in m["variants"] if v["name"] == chosen["variant"])
        assert row["parity"] is not None and row["parity"]["holds"] and all(row["gates"].values())
        base = optimized[1] if chosen["location"] == "out" else model_repo.root
        assert sha256_file(base / chosen["path"]) == chosen["sha256"]
    assert model(optimized, "rf")["chosen"]["variant"] in ("onnx_fp32", "onnx_optimized")  # type: ignore[index]


def test_a_failing_model_is_its_own_error_row(optimized: tuple[OptimizationReport, Path]) -> None:
    missing = model(optimized, "missing")
    assert missing["error"] is not None and missing["error"]["kind"] == "missing_model"
    assert missing["variants"] == [] and missing["chosen"] is None


@pytest.mark.parametrize("select", ["auto", "fp32"])
def test_a_variant_breaking_parity_beyond_tolerance_is_never_selected(
    model_repo: ModelRepo, scratch: Path, tmp_path: Path, select: str
) -> None:
    spec = {
        "repo_dir": str(model_repo.root),
        "models": [model_repo.spec("lr", "models/lr.skops")],
        "latency": {"repetitions": 5},
        # float32 ONNX differs from float64 scikit-learn by ~1e-7: far beyond this tolerance.
        "optimize": {"quantize": "none", "parity_tolerance": 1e-12, "select": select},
    }
    (result,) = optimize(spec, tmp_path, scratch)["models"]  # type: ignore[arg-type]
    fp32 = next(v for v in result["variants"] if v["name"] == "onnx_fp32")
    assert fp32["parity"] is not None and fp32["parity"]["holds"] is False
    assert result["chosen"] is not None and result["chosen"]["variant"] == "original"
    if select == "fp32":
        assert "onnx_fp32 breaks parity" in result["chosen"]["reason"]


def test_cli_keeps_variant_files_next_to_the_report(model_repo: ModelRepo, tmp_path: Path) -> None:
    spec = {
        "repo_dir": str(model_repo.root),
        "models": [model_repo.spec("lr", "models/lr.skops")],
        "latency": {"repetitions": 5},
        "optimize": {"quantize": "dynamic", "select": "auto"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    args = ["--spec", str(tmp_path / "spec.json"), "--out", str(out / "optimize.json"), "--scratch", str(tmp_path)]
    assert main(args) == 0
    document = json.loads((out / "optimize.json").read_text())
    chosen = document["models"][0]["chosen"]
    assert document["schema_version"] == 1 and chosen["location"] == "out"
    assert sha256_file(out / chosen["path"]) == chosen["sha256"]


def test_a_pipeline_over_mixed_column_types_converts_with_one_input_per_column(
    optimized: tuple[OptimizationReport, Path],
) -> None:
    mixed = model(optimized, "mixed")
    assert mixed["estimator"] == "Pipeline(ColumnTransformer → LogisticRegression)"
    fp32 = variant(optimized, "mixed", "onnx_fp32")
    assert fp32["status"] == "ok" and fp32["parity"] is not None and fp32["parity"]["holds"]
    for which in ("int8_dynamic", "int8_static"):
        assert variant(optimized, "mixed", which)["status"] == "not_applicable"


def test_an_onnx_network_is_quantized_as_it_is(optimized: tuple[OptimizationReport, Path]) -> None:
    net = model(optimized, "net")
    assert net["estimator"] == "ONNX model"
    dynamic = variant(optimized, "net", "int8_dynamic")
    assert dynamic["status"] == "ok" and dynamic["parity"] is not None
    assert dynamic["parity"]["max_abs_prob_diff"] is not None and dynamic["parity"]["max_abs_prob_diff"] > 0
