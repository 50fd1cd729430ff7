"""The pipelines inside the real hardened sandbox (podman): read-only checkout, uid 65534, no network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.runner import Mount, SandboxSpec
from tests.pipelines.conftest import ModelRepo

pytestmark = pytest.mark.slow


def readable_copy(model_repo: ModelRepo, target: Path) -> None:
    shutil.copytree(model_repo.root, target / "repo")
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the sandbox user must read the inputs


async def test_review_in_the_sandbox_converts_checks_parity_and_refuses_pickle(
    sandbox_runner: Any, runner_image: str, model_repo: ModelRepo, tmp_path: Path
) -> None:
    readable_copy(model_repo, tmp_path)
    spec = {
        "repo_dir": "/inputs/repo",
        "models": [
            model_repo.spec("lr", "models/lr.skops"),
            model_repo.spec("rf", "models/rf.skops"),
            model_repo.spec("mlp", "models/mlp.skops"),
            model_repo.spec("evil", "models/evil.pkl"),
        ],
        "latency": {"repetitions": 20},
        "optimize": {"quantize": "both", "select": "auto"},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "spec.json").chmod(0o644)
    run = SandboxSpec(
        image=runner_image,
        argv=("python", "-m", "pipelines.review", "--spec", "/inputs/spec.json", "--out", "/out/result.json"),
        inputs=(Mount(tmp_path, "/inputs"),),
        env={"HOME": "/scratch", "TMPDIR": "/scratch"},
        timeout_s=300,
    )
    result = await sandbox_runner.run(run)
    assert result.ok, (result.error, result.stderr[-2000:])
    evaluation = {m["name"]: m for m in result.result["evaluation"]["models"]}
    optimization = {m["name"]: m for m in result.result["optimization"]["models"]}
    assert evaluation["lr"]["metrics"]["accuracy"] > 0.9
    assert evaluation["evil"]["error"]["kind"] == "pickle_not_allowed"
    assert not model_repo.sentinel.exists()

    def row(model: str, variant: str) -> dict[str, Any]:
        return next(v for v in optimization[model]["variants"] if v["name"] == variant)

    for name in ("lr", "rf", "mlp"):
        assert row(name, "onnx_fp32")["parity"]["holds"], row(name, "onnx_fp32")
    assert row("rf", "int8_dynamic")["status"] == "not_applicable"
    assert row("mlp", "int8_dynamic")["size_bytes"] < row("mlp", "onnx_fp32")["size_bytes"]
    assert "accuracy" in row("mlp", "int8_dynamic")["metric_delta"]
