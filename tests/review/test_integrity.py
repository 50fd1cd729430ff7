"""The bot pins only hashes it computed itself; a sandbox claiming other bytes voids the review."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bot.config.repo import parse_repo_config
from bot.review.compare import compare_review
from bot.review.evaluation import SandboxMaxima, sandbox_limits
from bot.review.integrity import git_hashes, sha256_under, verify
from bot.review.parse import results_by_model

CONFIG = """
version: 1
sandbox: {cpus: 64, memory: 1t, timeout: 6h}
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {path: data/eval.csv, target: label}
"""


def evaluation(sha256: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "models": [
            {
                "name": "churn",
                "task": "classification",
                "error": None,
                "metrics": {"accuracy": 0.9},
                "model": {"path": "models/churn.onnx", "format": "onnx", "sha256": sha256, "size_bytes": 5},
            }
        ],
    }


def optimization(sha256: str) -> dict[str, Any]:
    chosen = {"variant": "int8_dynamic", "location": "out", "path": "variants/churn/model.int8.onnx", "sha256": sha256}
    return {"models": [{"name": "churn", "chosen": chosen}]}


def setup(tmp_path: Path) -> tuple[Any, Path, Path, str, str]:
    config = parse_repo_config(CONFIG)
    tree, kept = tmp_path / "head", tmp_path / "kept"
    (tree / "models").mkdir(parents=True)
    (tree / "models" / "churn.onnx").write_bytes(b"onnx!")
    (kept / "churn").mkdir(parents=True)
    (kept / "churn" / "model.int8.onnx").write_bytes(b"int8!")
    return config, tree, kept, hashlib.sha256(b"onnx!").hexdigest(), hashlib.sha256(b"int8!").hexdigest()


def review(config: Any, claimed: str) -> Any:
    results = results_by_model(evaluation(claimed), ["churn"])
    return compare_review(config.models, results, results)


def test_honest_claims_pin_the_bots_own_hashes(tmp_path: Path) -> None:
    config, tree, kept, model, variant = setup(tmp_path)
    verified = verify(
        review(config, model), optimization(variant), config.models, git_hashes(tree, config.models), kept
    )
    assert verified.problems == ()
    pinned = verified.models["churn"]
    assert (pinned.model_sha256, pinned.variant, pinned.variant_sha256) == (model, "int8_dynamic", variant)
    assert pinned.variant_artifact == "churn/model.int8.onnx"


def test_a_forged_model_hash_is_detected(tmp_path: Path) -> None:
    config, tree, kept, _, variant = setup(tmp_path)
    verified = verify(
        review(config, "f" * 64), optimization(variant), config.models, git_hashes(tree, config.models), kept
    )
    assert verified.problems == (
        f"model `churn`: the sandbox reported sha256 ffffffffffff… for `models/churn.onnx`, but the bot hashed "
        f"{hashlib.sha256(b'onnx!').hexdigest()[:12]}… in the head's git tree",
    )


def test_a_forged_variant_hash_is_detected_and_never_pinned(tmp_path: Path) -> None:
    config, tree, kept, model, _ = setup(tmp_path)
    verified = verify(
        review(config, model), optimization("e" * 64), config.models, git_hashes(tree, config.models), kept
    )
    assert len(verified.problems) == 1 and "variant `int8_dynamic`" in verified.problems[0]
    assert verified.models["churn"].variant == "original" and verified.models["churn"].variant_sha256 == model


def test_a_variant_that_was_not_kept_falls_back_to_the_original_with_a_note(tmp_path: Path) -> None:
    config, tree, kept, model, variant = setup(tmp_path)
    (kept / "churn" / "model.int8.onnx").unlink()
    verified = verify(
        review(config, model), optimization(variant), config.models, git_hashes(tree, config.models), kept
    )
    assert verified.problems == () and verified.models["churn"].variant == "original"
    assert "was not kept" in verified.notes[0]


def test_hashing_never_leaves_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(b"secret")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link").symlink_to(outside)
    assert sha256_under(tree, "link") is None
    assert sha256_under(tree, "../secret") is None


def test_repository_limits_are_clamped_to_the_operators_maxima() -> None:
    config = parse_repo_config(CONFIG)
    limits = sandbox_limits(config, SandboxMaxima(cpus=2, memory_bytes=4 << 30, timeout_s=1800))
    assert (limits.cpus, limits.memory_bytes, limits.timeout_s) == (2, 4 << 30, 1800)
    assert len(limits.notes) == 3
    assert limits.notes[0] == (
        "`sandbox.cpus: 64` was lowered to 2, this server's maximum (MODELSHIP_SANDBOX_MAX_CPUS)"
    )
    modest = parse_repo_config(CONFIG.replace("{cpus: 64, memory: 1t, timeout: 6h}", "{cpus: 1, memory: 1g}"))
    assert sandbox_limits(modest).notes == ()
