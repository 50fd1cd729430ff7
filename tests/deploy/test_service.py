"""The deploy service's pure parts: which models and environments a merge touches, and what people read."""

from __future__ import annotations

from typing import Any

from bot.deploy.manifest import ModelRef
from bot.deploy.service import (
    MARK,
    Result,
    Target,
    changed_models,
    describe,
    flat_metrics,
    iso_seconds,
    merge_targets,
    render_section,
    render_status,
)
from bot.repoconfig import parse_repo_config

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


def row(**values: Any) -> dict[str, Any]:
    base = {
        "environment": "staging",
        "model": "churn",
        "version": "a" * 40,
        "variant": "int8",
        "state": "deployed",
        "health": "unknown",
        "detail": None,
        "deploy_repo": "acme/deploy",
        "deploy_commit": "c" * 40,
        "deploy_pr": None,
    }
    return base | values


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


def test_review_metrics_become_one_line_each() -> None:
    summary = {"metrics": {"f1": {"base": 0.8, "head": 0.91}, "accuracy": 0.93, "ok": True, "n": 120}}
    assert flat_metrics(summary) == {"f1": 0.91, "accuracy": 0.93, "n": 120}
    assert flat_metrics({}) == {}


def test_merge_time_is_the_sequence() -> None:
    assert iso_seconds("2026-11-26T10:00:00Z") == 1795687200


def test_the_deploy_comment_links_the_commit_and_explains_failures() -> None:
    body = render_section(
        [row(), row(environment="production", state="failed", deploy_commit=None, detail="- `replicaCount: -3`")],
        "https://github.com",
    )
    assert body.startswith(MARK)
    assert f"[ccccccc](https://github.com/acme/deploy/commit/{'c' * 40})" in body
    assert "❌ failed" in body and "**production / churn** — failed:" in body and "replicaCount: -3" in body


def test_a_protected_deploy_links_its_pull_request() -> None:
    body = render_section([row(state="pending", deploy_commit=None, deploy_pr=4)], "https://github.com")
    assert "[acme/deploy#4](https://github.com/acme/deploy/pull/4)" in body and "deploy PR open" in body


def test_status_shows_the_newest_state_per_environment_and_model() -> None:
    text = render_status([row(), row(state="failed", detail="deploy repository is unreachable | oops")])
    assert text.count("| staging | churn |") == 1
    assert "failed" in text and "unreachable \\| oops" in text
    assert "Nothing deployed" in render_status([])


def test_replies_show_the_diff_of_a_dry_run() -> None:
    results = [
        Result("staging", "churn", "dry-run", "update", REF, diff="+  revision: aaa\n"),
        Result("production", "churn", "skipped", "pinned: churn is pinned", REF),
    ]
    text = describe(results, "https://github.com", "acme/deploy")
    assert "```diff\n+  revision: aaa\n```" in text and "nothing was written" in text
    assert "**production / churn**: skipped — pinned: churn is pinned" in text
