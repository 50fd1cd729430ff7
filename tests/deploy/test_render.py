"""What people read about deploys: the Deploy comment, chat-ops replies, the status section, GitHub statuses."""

from __future__ import annotations

from typing import Any

from bot.deploy.manifest import ModelRef
from bot.deploy.render import MARK, describe, github_statuses, render_section, render_status
from bot.deploy.targets import Result

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


def test_a_github_deployment_succeeds_with_its_commit_waits_for_its_pr_or_fails_with_the_detail() -> None:
    web = "https://github.com"
    [progress, success] = github_statuses(row(), web, "acme/deploy")
    assert progress["state"] == "in_progress" and success["state"] == "success"
    assert success["environment_url"] == f"{web}/acme/deploy/commit/{'c' * 40}"
    [queued] = github_statuses(row(state="pending", deploy_commit=None, deploy_pr=4), web, "acme/deploy")
    assert queued == {
        "state": "queued",
        "log_url": f"{web}/acme/deploy/pull/4",
        "description": "waiting for acme/deploy#4",
    }
    [failure] = github_statuses(row(state="failed", deploy_commit=None, detail="x" * 300), web, "acme/deploy", "error")
    assert failure == {"state": "error", "description": "x" * 140}
