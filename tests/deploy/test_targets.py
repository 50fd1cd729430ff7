"""What a deploy decides, as values: which models and environments a merge touches, which variant ships."""

from __future__ import annotations

import pytest

from bot.config.repo import parse_repo_config
from bot.deploy.manifest import ModelRef
from bot.deploy.targets import (
    DeployFailure,
    Result,
    Target,
    changed_models,
    choose_variant,
    iso_seconds,
    merge_targets,
    row_state,
)

CONFIG = parse_repo_config(
    """\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {path: data/churn.csv, target: label}
  - name: fraud
    path: models/fraud.onnx
    task: classification
    dataset: {path: data/fraud.csv, target: label}
environments:
  staging: {auto: true}
  review: {auto: true, via: pull_request}
  qa: {}
  production: {upstream: staging}
deploy: {repository: acme/deploy}
"""
)
REF = ModelRef("churn", "acme/models", "a" * 40, "models/churn.onnx", "b" * 64, "int8", 1, 7)


def test_a_merge_deploys_the_models_whose_file_or_dataset_changed() -> None:
    assert [m.name for m in changed_models(CONFIG, ["models/churn.onnx", "README.md"])] == ["churn"]
    assert [m.name for m in changed_models(CONFIG, ["data/fraud.csv"])] == ["fraud"]
    assert changed_models(CONFIG, ["docs/index.md"]) == []


def test_a_merge_writes_auto_and_protected_environments_but_leaves_promotion_targets_alone() -> None:
    assert [name for name, _ in merge_targets(CONFIG)] == ["staging", "review", "qa"]


def test_protected_environments_go_through_a_pull_request() -> None:
    envs = CONFIG.environments
    assert not Target("staging", envs["staging"], REF, on_merge=True).via_pr
    assert Target("review", envs["review"], REF).via_pr
    assert Target("qa", envs["qa"], REF, on_merge=True).via_pr
    # An explicit `deploy qa` was authorized by chat-ops: auto only says "not on merge".
    assert not Target("qa", envs["qa"], REF).via_pr


def test_merge_time_is_the_sequence() -> None:
    assert iso_seconds("2026-11-26T10:00:00Z") == 1795687200


def test_the_variant_the_review_kept_ships_with_its_own_hash() -> None:
    assert choose_variant(None, None, None, model="churn", revision="a" * 40) == ("original", None)
    assert choose_variant(None, "int8_dynamic", "d" * 64, model="churn", revision="a" * 40) == (
        "int8_dynamic",
        "d" * 64,
    )
    # `--variant int8` names the family; the review's own member of it ships.
    assert choose_variant("int8", "int8_static", "e" * 64, model="churn", revision="a" * 40) == (
        "int8_static",
        "e" * 64,
    )
    assert choose_variant("original", "int8_static", "e" * 64, model="churn", revision="a" * 40) == ("original", None)


@pytest.mark.parametrize(
    ("asked", "kept", "digest"), [("int8", "onnx_fp32", "f" * 64), ("fp32", None, None), ("int8", "int8_dynamic", None)]
)
def test_a_variant_the_review_did_not_keep_and_hash_is_refused(
    asked: str, kept: str | None, digest: str | None
) -> None:
    with pytest.raises(
        DeployFailure, match=f"no reviewed `{asked}` variant of model `churn` at aaaaaaa.*/modelship optimize"
    ):
        choose_variant(asked, kept, digest, model="churn", revision="a" * 40)


def test_only_results_worth_remembering_get_a_history_row() -> None:
    assert row_state(Result("staging", "churn", "proposed", ref=REF)) == "pending"
    assert row_state(Result("staging", "churn", "invalid", "schema", REF)) == "failed"
    assert row_state(Result("staging", "churn", "deployed", ref=REF)) == "deployed"
    assert row_state(Result("staging", "churn", "unchanged", ref=REF)) is None
    assert row_state(Result("staging", "churn", "dry-run", ref=REF)) is None
    assert row_state(Result("staging", "churn", "skipped", "nothing deployed upstream")) is None  # no version
