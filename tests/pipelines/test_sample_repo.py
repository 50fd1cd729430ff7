"""The sample model repository used by the demo: valid policy, and a model train.py reproduces."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.repo import parse_repo_config
from contract.schema import ModelSpec
from pipelines.evaluate import evaluate
from pipelines.files import sha256_file

SAMPLE_REPO = Path(__file__).resolve().parents[2] / "examples" / "sample-model-repo"


def test_the_policy_is_valid_and_points_at_files_that_exist() -> None:
    config = parse_repo_config((SAMPLE_REPO / ".modelship.yml").read_text())
    (model,) = config.models
    assert (SAMPLE_REPO / model.path).is_file()
    assert (SAMPLE_REPO / model.dataset.path).is_file()
    assert config.optimize is not None and config.optimize.select == "auto"


def test_the_repository_stays_small() -> None:
    assert sum(p.stat().st_size for p in SAMPLE_REPO.rglob("*") if p.is_file()) < 1_000_000


@pytest.mark.slow
def test_train_command_reproduces_the_committed_model_in_scratch_without_touching_the_checkout(
    tmp_path: Path,
) -> None:
    committed = sha256_file(SAMPLE_REPO / "models/churn.skops")
    spec: ModelSpec = {
        "name": "churn",
        "path": "models/churn.skops",
        "task": "classification",
        "dataset": {"path": "data/eval.csv", "target": "label"},
        "train": {"command": "python train.py"},
    }
    report = evaluate({"repo_dir": str(SAMPLE_REPO), "models": [spec], "latency": {"repetitions": 5}}, tmp_path)
    (result,) = report["models"]
    assert result["error"] is None
    assert result["model"] is not None and result["model"]["sha256"] == committed
    assert (tmp_path / "train-churn/models/churn.skops").is_file()
    assert sha256_file(SAMPLE_REPO / "models/churn.skops") == committed
    assert result["metrics"]["accuracy"] > 0.9
