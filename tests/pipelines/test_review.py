"""The combined entry point: one process, one document, the variant files next to it."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.files import sha256_file
from pipelines.review import main
from tests.pipelines.conftest import ModelRepo


def test_review_writes_evaluation_and_optimization_in_one_document(model_repo: ModelRepo, tmp_path: Path) -> None:
    spec = {
        "repo_dir": str(model_repo.root),
        "models": [model_repo.spec("lr", "models/lr.skops")],
        "latency": {"repetitions": 5},
        "optimize": {"quantize": "none"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    code = main(["--spec", str(tmp_path / "spec.json"), "--out", str(out / "result.json"), "--scratch", str(tmp_path)])
    document = json.loads((out / "result.json").read_text())
    assert code == 0 and document["schema_version"] == 1
    assert document["evaluation"]["models"][0]["metrics"]["accuracy"] > 0.9
    chosen = document["optimization"]["models"][0]["chosen"]
    base = out if chosen["location"] == "out" else model_repo.root
    assert sha256_file(base / chosen["path"]) == chosen["sha256"]


def test_review_can_skip_optimization(model_repo: ModelRepo, tmp_path: Path) -> None:
    spec = {"repo_dir": str(model_repo.root), "models": [model_repo.spec("lr", "models/lr.skops")]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    args = ["--spec", str(tmp_path / "spec.json"), "--out", str(tmp_path / "r.json"), "--no-optimize"]
    assert main(args) == 0
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["optimization"] is None and document["evaluation"]["models"][0]["error"] is None


def test_review_with_an_unreadable_spec_reports_it(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text("[]")
    code = main(["--spec", str(tmp_path / "spec.json"), "--out", str(tmp_path / "r.json")])
    assert code == 2
    assert json.loads((tmp_path / "r.json").read_text())["evaluation"]["error"]["kind"] == "invalid_spec"
