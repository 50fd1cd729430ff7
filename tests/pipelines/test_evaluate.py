"""Evaluation scenarios: numbers equal scikit-learn's own, and every failure names its cause."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from contract.schema import ModelResult, ModelSpec
from pipelines.evaluate import evaluate, main
from pipelines.files import sha256_file
from tests.pipelines.conftest import ModelRepo

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_REPO = REPO_ROOT / "examples" / "sample-model-repo"


def run(repo: ModelRepo, scratch: Path, *models: ModelSpec, repetitions: int = 20) -> list[ModelResult]:
    spec = {"repo_dir": str(repo.root), "models": list(models), "latency": {"repetitions": repetitions}}
    return evaluate(spec, scratch)["models"]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lr_result(model_repo: ModelRepo, scratch: Path) -> ModelResult:
    (result,) = run(model_repo, scratch, model_repo.spec("lr", "models/lr.skops"))
    return result


def test_binary_classification_numbers_equal_sklearn(model_repo: ModelRepo, lr_result: ModelResult) -> None:
    model, X, y = model_repo.estimators["lr"], model_repo.X, model_repo.y
    pred, proba = model.predict(X), model.predict_proba(X)
    m = lr_result["metrics"]
    assert lr_result["error"] is None
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["precision_weighted"] == pytest.approx(skm.precision_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert lr_result["confusion_matrix"] == {
        "labels": ["0", "1"],
        "matrix": skm.confusion_matrix(y, pred).tolist(),
    }
    per_class = {row["label"]: row for row in lr_result["per_class"]}
    assert per_class["0"]["support"] == int((y == 0).sum())
    assert per_class["0"]["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))


def test_predictions_are_kept_for_paired_statistics(model_repo: ModelRepo, lr_result: ModelResult) -> None:
    predictions = lr_result["predictions"]
    assert predictions is not None
    assert predictions["y_true"] == [str(v) for v in model_repo.y]
    assert predictions["y_pred"] == [str(v) for v in model_repo.estimators["lr"].predict(model_repo.X)]
    assert predictions["y_score"] == pytest.approx(model_repo.estimators["lr"].predict_proba(model_repo.X)[:, 1])


def test_fingerprints_and_latency(model_repo: ModelRepo, lr_result: ModelResult) -> None:
    dataset, model, latency = lr_result["dataset"], lr_result["model"], lr_result["latency"]
    assert dataset is not None and model is not None and latency is not None
    assert dataset["sha256"] == sha256_file(model_repo.root / "data/eval.csv")
    assert dataset["rows"] == len(model_repo.y) and dataset["n_features"] == 30
    assert dataset["class_balance"] == {"0": int((model_repo.y == 0).sum()), "1": int((model_repo.y == 1).sum())}
    assert model == {
        "path": "models/lr.skops",
        "format": "skops",
        "sha256": sha256_file(model_repo.root / "models/lr.skops"),
        "size_bytes": (model_repo.root / "models/lr.skops").stat().st_size,
    }
    assert latency["repetitions"] == 20
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert latency["batch_rows_per_s"] > 0
    assert lr_result["metrics"]["latency_p95_ms"] == latency["p95_ms"]
    # size_mb is in the one catalogue (contract.metrics) and reported here, so a size_mb gate reaches the sandbox.
    assert lr_result["metrics"]["size_mb"] == model["size_bytes"] / 1e6


def test_multiclass_uses_macro_headlines_and_no_binary_score(model_repo: ModelRepo, scratch: Path) -> None:
    (result,) = run(model_repo, scratch, model_repo.spec("iris", "models/iris.skops", "data/iris.csv"))
    model = model_repo.estimators["iris"]
    frame = pd.read_csv(model_repo.root / "data/iris.csv")
    X, y = frame.drop(columns=["label"]).to_numpy(), frame["label"].to_numpy()
    assert result["metrics"]["f1"] == pytest.approx(skm.f1_score(y, model.predict(X), average="macro"))
    assert result["metrics"]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, model.predict_proba(X), multi_class="ovr")
    )
    assert result["confusion_matrix"] is not None and result["confusion_matrix"]["labels"] == ["0", "1", "2"]
    assert result["predictions"] is not None and result["predictions"]["y_score"] is None


def test_regression_numbers_equal_sklearn(model_repo: ModelRepo, scratch: Path) -> None:
    spec = model_repo.spec("ridge", "models/ridge.skops", "data/diabetes.csv", target="target", task="regression")
    (result,) = run(model_repo, scratch, spec)
    frame = pd.read_csv(model_repo.root / "data/diabetes.csv")
    X, y = frame.drop(columns=["target"]).to_numpy(), frame["target"].to_numpy()
    pred = model_repo.estimators["ridge"].predict(X)
    m = result["metrics"]
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert result["dataset"] is not None and result["dataset"]["class_balance"] is None
    assert result["predictions"] is not None and result["predictions"]["y_pred"] == pytest.approx(pred)


def test_onnx_model_and_parquet_data_give_the_numbers_of_their_sources(model_repo: ModelRepo, scratch: Path) -> None:
    onnx_csv, skops_parquet = run(
        model_repo,
        scratch,
        model_repo.spec("rf-onnx", "models/rf.onnx"),
        model_repo.spec("rf", "models/rf.skops", "data/eval.parquet"),
    )
    rf = model_repo.estimators["rf"]
    expected = skm.accuracy_score(model_repo.y, rf.predict(model_repo.X.to_numpy()))
    assert onnx_csv["model"] is not None and onnx_csv["model"]["format"] == "onnx"
    assert onnx_csv["metrics"]["accuracy"] == pytest.approx(expected)
    assert onnx_csv["metrics"]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(model_repo.y, rf.predict_proba(model_repo.X.to_numpy())[:, 1]), abs=1e-6
    )
    assert skops_parquet["metrics"]["accuracy"] == pytest.approx(expected)


def test_an_onnx_model_with_zipmap_output_scores_like_its_source(model_repo: ModelRepo, scratch: Path) -> None:
    (result,) = run(model_repo, scratch, model_repo.spec("rf-zipmap", "models/rf_zipmap.onnx"))
    proba = model_repo.estimators["rf"].predict_proba(model_repo.X.to_numpy())
    assert result["error"] is None
    assert result["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(model_repo.y, proba[:, 1]), abs=1e-6)
    assert result["predictions"] is not None and result["predictions"]["y_score"] == pytest.approx(
        proba[:, 1], abs=1e-6
    )


def test_an_onnx_network_with_only_a_probability_output_gets_argmax_labels(
    model_repo: ModelRepo, scratch: Path
) -> None:
    (result,) = run(model_repo, scratch, model_repo.spec("net", "models/net.onnx"))
    assert result["error"] is None and result["predictions"] is not None
    assert set(result["predictions"]["y_pred"]) <= {"0", "1"}
    y_score = np.asarray(result["predictions"]["y_score"])
    assert result["predictions"]["y_pred"] == ["1" if p > 0.5 else "0" for p in y_score]
    assert result["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(model_repo.y, y_score))


FAILURES: list[tuple[dict[str, Any], str, str]] = [
    ({"path": "models/nope.onnx"}, "missing_model", "models/nope.onnx"),
    ({"dataset": "data/nope.csv"}, "missing_dataset", "data/nope.csv"),
    ({"target": "churned"}, "missing_target", "churned"),
    ({"dataset": "data/extra_column.csv"}, "feature_mismatch", "30 features"),
    ({"path": "models/rf.onnx", "dataset": "data/extra_column.csv"}, "feature_mismatch", "31"),
    ({"path": "models/evil.pkl"}, "pickle_not_allowed", "allow_pickle: true"),
    ({"path": "models/evil.joblib"}, "pickle_not_allowed", "NOT loaded"),
    ({"path": "models/custom.skops"}, "untrusted_types", "tests.pipelines.custom_estimator.ThresholdClassifier"),
    ({"path": "models/corrupt.onnx"}, "load_failed", "models/corrupt.onnx"),
    ({"path": "models/model.h5"}, "unsupported_format", ".h5"),
    ({"path": "../outside.onnx"}, "invalid_path", "outside the repository"),
    ({"dataset": "data/notes.txt"}, "dataset_invalid", ".txt"),
    ({"task": "clustering"}, "invalid_spec", "task"),
    ({"metrics": ["accuracy", "bleu"]}, "unknown_metric", "bleu"),
    ({"metrics": ["mae"]}, "unknown_metric", "does not apply to classification"),
    ({"train": {"command": "python -c 'import sys; sys.exit(3)'"}}, "train_failed", "exited with 3"),
]


@pytest.mark.parametrize(
    ("change", "kind", "names"), FAILURES, ids=[f[1] + "-" + str(i) for i, f in enumerate(FAILURES)]
)
def test_each_failure_has_its_own_kind_and_names_the_cause(
    model_repo: ModelRepo, scratch: Path, change: dict[str, Any], kind: str, names: str
) -> None:
    change = dict(change)
    spec = model_repo.spec("m", change.pop("path", "models/rf.skops"), change.pop("dataset", "data/eval.csv"), **change)
    (result,) = run(model_repo, scratch, spec)
    assert result["error"] is not None
    assert result["error"]["kind"] == kind
    assert names in result["error"]["message"]
    assert result["metrics"] == {} and result["predictions"] is None


def test_one_failing_model_does_not_stop_the_others(model_repo: ModelRepo, scratch: Path) -> None:
    broken, good = run(
        model_repo, scratch, model_repo.spec("broken", "models/nope.skops"), model_repo.spec("rf", "models/rf.skops")
    )
    assert broken["error"] is not None and broken["name"] == "broken"
    assert good["error"] is None and good["metrics"]["accuracy"] > 0.9


def test_pickle_is_refused_without_being_opened(model_repo: ModelRepo, scratch: Path) -> None:
    (result,) = run(model_repo, scratch, model_repo.spec("evil", "models/evil.pkl"))
    assert result["error"] is not None and result["error"]["kind"] == "pickle_not_allowed"
    assert not model_repo.sentinel.exists()


def test_the_refused_pickle_is_live_when_allowed(model_repo: ModelRepo, scratch: Path, tmp_path: Path) -> None:
    """Control for the refusal test: the same kind of file does run code once pickle is allowed."""
    from tests.pipelines.custom_estimator import Sentinel

    sentinel = tmp_path / "RAN"
    (tmp_path / "models").mkdir()
    shutil.copy(model_repo.root / "data/eval.csv", tmp_path / "eval.csv")
    (tmp_path / "models/evil.pkl").write_bytes(pickle.dumps(Sentinel(sentinel)))
    spec = model_repo.spec("evil", "models/evil.pkl", "eval.csv", allow_pickle=True)
    (result,) = evaluate({"repo_dir": str(tmp_path), "models": [spec]}, scratch)["models"]
    assert sentinel.exists()
    assert result["error"] is not None and result["error"]["kind"] == "load_failed"


def test_allowed_pickle_of_a_real_model_evaluates(model_repo: ModelRepo, scratch: Path) -> None:
    (result,) = run(model_repo, scratch, model_repo.spec("custom", "models/custom.pkl", allow_pickle=True))
    assert result["error"] is None
    assert result["model"] is not None and result["model"]["format"] == "pickle"


@pytest.mark.slow
def test_cli_writes_one_strict_json_document(tmp_path: Path) -> None:
    spec = {
        "repo_dir": str(SAMPLE_REPO),
        "models": [
            {
                "name": "churn",
                "path": "models/churn.skops",
                "task": "classification",
                "dataset": {"path": "data/eval.csv", "target": "label"},
            }
        ],
        "latency": {"repetitions": 10},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.evaluate",
            "--spec",
            str(tmp_path / "spec.json"),
            "--out",
            str(tmp_path / "out/result.json"),
            "--scratch",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(
        (tmp_path / "out/result.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}")
    )
    assert document["schema_version"] == 1 and document["error"] is None
    assert document["models"][0]["metrics"]["accuracy"] > 0.9


def test_cli_reports_an_unreadable_spec_in_the_document(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("{not json")
    code = main(
        ["--spec", str(tmp_path / "spec.json"), "--out", str(tmp_path / "out.json"), "--scratch", str(tmp_path)]
    )
    document = json.loads((tmp_path / "out.json").read_text())
    assert code == 2
    assert document["models"] == [] and document["error"]["kind"] == "invalid_spec"


def test_schema_module_imports_nothing_heavy() -> None:
    heavy = "('numpy', 'sklearn', 'onnxruntime', 'pandas')"
    probe = f"import sys, contract.schema; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_skops_gadget_under_numpy_is_refused_without_allow_pickle(
    model_repo: ModelRepo, scratch: Path, tmp_path: Path
) -> None:
    """Issue 11: a skops node calling numpy.testing._private.utils.runstring ran code and forged the result."""
    from tests.pipelines.custom_estimator import skops_gadget

    sentinel = tmp_path / "GADGET_RAN"
    (tmp_path / "models").mkdir()
    shutil.copy(model_repo.root / "data/eval.csv", tmp_path / "eval.csv")
    (tmp_path / "models/gadget.skops").write_bytes(skops_gadget(f"open({str(sentinel)!r}, 'w').write('pwned')"))
    spec = model_repo.spec("gadget", "models/gadget.skops", "eval.csv")
    (result,) = evaluate({"repo_dir": str(tmp_path), "models": [spec]}, scratch)["models"]
    assert not sentinel.exists()
    assert result["error"] is not None and result["error"]["kind"] == "untrusted_types"
    message = result["error"]["message"]
    assert "numpy.testing._private.utils.runstring" in message and "NOT loaded" in message
    assert "`allow_pickle: true`" in message
    # With allow_pickle the owner opted in: the file is loaded like a pickle (and its code runs, in the sandbox).
    spec = model_repo.spec("gadget", "models/gadget.skops", "eval.csv", allow_pickle=True)
    (result,) = evaluate({"repo_dir": str(tmp_path), "models": [spec]}, scratch)["models"]
    assert sentinel.read_text() == "pwned"
    assert result["error"] is not None and result["error"]["kind"] == "load_failed"


def test_reviewed_skops_types_load_without_allow_pickle(model_repo: ModelRepo, scratch: Path) -> None:
    """The allow-list is not a blanket refusal: forests (sklearn.tree._tree.Tree) and MLPs load as before."""
    for name in ("rf", "mlp", "lr", "mixed"):
        (result,) = run(model_repo, scratch, model_repo.spec(name, f"models/{name}.skops", "data/eval.csv"))
        assert result["error"] is None or result["error"]["kind"] != "untrusted_types", result["error"]
