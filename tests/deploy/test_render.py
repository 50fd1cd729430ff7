"""What people read about deploys: the Deploy comment, chat-ops replies, the status section, GitHub statuses."""

from __future__ import annotations

from typing import Any

from bot.deploy.manifest import ModelRef
from bot.deploy.render import MARK, describe, github_statuses, render_section, render_status, rollout_status
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
    assert "| deployed · rolling out |" in render_status([row(rollout="rolling_out")])


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


def test_the_dossier_shows_committed_at_live_at_and_how_long_it_took() -> None:
    from datetime import UTC, datetime

    committed = datetime(2026, 12, 6, 19, 40, 2, tzinfo=UTC)
    live = datetime(2026, 12, 6, 19, 41, 10)  # SQLite hands back naive UTC
    body = render_section(
        [row(rollout="live", committed_at=committed, live_at=live, health="healthy")], "https://github.com"
    )
    assert "| Deploy | Live | Guard |" in body
    assert f"committed [ccccccc](https://github.com/acme/deploy/commit/{'c' * 40}) at 2026-12-06 19:40:02 UTC" in body
    assert "✅ live at 2026-12-06 19:41:10 UTC (1m 8s after the commit)" in body and "✅ healthy" in body


def test_the_dossier_says_why_a_deploy_is_not_live_and_what_a_rollout_shows() -> None:
    why = "not live after 10m: no replica is up"
    body = render_section(
        [
            row(rollout="failed", rollout_detail=why),
            row(environment="qa", rollout="rolling_out", rollout_detail="1 of 2 ready replicas serve the new file"),
        ],
        "https://github.com",
    )
    assert "❌ not live (below)" in body and f"**staging / churn** — not live:\n\n{why}" in body
    assert "🔄 rolling out: 1 of 2 ready replicas serve the new file" in body


def test_live_is_success_and_not_live_is_failure_with_the_reason_and_both_urls() -> None:
    from datetime import UTC, datetime

    web = "https://github.com"
    base = row(repo="acme/models", source_pr=7, sha256="d" * 64, github_deployment_id=5)
    at = datetime(2026, 12, 6, 19, 40, tzinfo=UTC)
    success = rollout_status(base | {"rollout": "live", "committed_at": at, "live_at": at.replace(second=45)}, web)
    failure = rollout_status(base | {"rollout": "failed", "rollout_detail": "not live after 10m: " + "x" * 200}, web)

    assert success == {
        "state": "success",
        "log_url": f"{web}/acme/models/pull/7",  # the PR's dossier
        "environment_url": f"{web}/acme/deploy/commit/{'c' * 40}",
        "description": "live: every ready replica serves dddddddddddd 45s after the commit",
    }
    assert failure is not None and failure["state"] == "failure"
    assert failure["description"].startswith("not live after 10m: ") and len(failure["description"]) == 140
    assert rollout_status(base | {"rollout": "rolling_out"}, web) is None  # in_progress was said at the commit


def test_with_live_tracking_a_commit_is_only_in_progress() -> None:
    web = "https://github.com"
    [progress] = github_statuses(row(), web, "acme/deploy", live_tracking=True)
    assert progress["state"] == "in_progress" and "waiting until every replica serves it" in progress["description"]
    assert progress["environment_url"] == progress["log_url"] == f"{web}/acme/deploy/commit/{'c' * 40}"
