"""The combined entry point: one process writes both documents and the variant files."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.files import sha256_file
from pipelines.review import main
from tests.pipelines.conftest import ModelRepo


def test_review_writes_evaluation_optimization_and_variants(model_repo: ModelRepo, tmp_path: Path) -> None:
    spec = {
        "repo_dir": str(model_repo.root),
        "models": [model_repo.spec("lr", "models/lr.skops")],
        "latency": {"repetitions": 5},
        "optimize": {"quantize": "none"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    code = main(["--spec", str(tmp_path / "spec.json"), "--out-dir", str(out), "--scratch", str(tmp_path)])
    evaluation = json.loads((out / "evaluation.json").read_text())
    optimization = json.loads((out / "optimization.json").read_text())
    assert code == 0
    assert evaluation["models"][0]["metrics"]["accuracy"] > 0.9
    chosen = optimization["models"][0]["chosen"]
    base = out if chosen["location"] == "out" else model_repo.root
    assert sha256_file(base / chosen["path"]) == chosen["sha256"]


def test_review_with_an_unreadable_spec_reports_it(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("[]")
    code = main(["--spec", str(tmp_path / "spec.json"), "--out-dir", str(tmp_path / "out")])
    assert code == 2
    assert json.loads((tmp_path / "out/evaluation.json").read_text())["error"]["kind"] == "invalid_spec"
