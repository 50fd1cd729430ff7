"""Training in the sandbox: a writable copy of the checkout, trained once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.schema import ModelSpec
from pipelines.errors import PipelineError
from pipelines.prepare import train


def spec(command: str) -> ModelSpec:
    return {
        "name": "m/1",
        "path": "model.onnx",
        "task": "classification",
        "dataset": {"path": "d.csv", "target": "y"},
        "train": {"command": command},
    }


def test_training_runs_in_a_copy_and_only_once_per_scratch(tmp_path: Path) -> None:
    repo, scratch = tmp_path / "repo", tmp_path / "scratch"
    repo.mkdir()
    scratch.mkdir()
    (repo / "train.py").write_text("open('runs', 'a').write('x')\n")
    model = spec("python train.py")
    first = train(model, repo, scratch)
    second = train(model, repo, scratch)
    assert first == second == scratch / "train-m_1"
    assert (first / "runs").read_text() == "x"
    assert not (repo / "runs").exists()


def test_an_unparsable_train_command_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError) as caught:
        train(spec("python 'train.py"), tmp_path, tmp_path)
    assert caught.value.kind == "invalid_spec" and "train.command" in caught.value.message
