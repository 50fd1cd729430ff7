"""What a closed deploy-repo PR means for the deployments rows: the pure core of bot.deploy.merged_pr."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.context import Services
from bot.deploy.merged_pr import (
    ABANDONED,
    CLOSED_UNMERGED,
    ClosedPull,
    _make_current,
    decide,
    github_state,
    not_ours,
)
from bot.store import deployments

BOT = "modelship[bot]"
DEPLOY = "acme/deploy"
BRANCH = "modelship/deploy/production/churn"
MERGE = "m" * 40


def pull(*, merged: bool = True, number: int = 7, head_ref: str = BRANCH, **changes: Any) -> ClosedPull:
    values: dict[str, Any] = {
        "repo": DEPLOY,
        "number": number,
        "head_ref": head_ref,
        "head_repo": DEPLOY,
        "author": BOT,
        "merged": merged,
        "merge_sha": MERGE if merged else "",
        "actor": "carol",
        "installation_id": 1,
    }
    return ClosedPull(**(values | changes))


def row(id: int, version: str, state: str = "pending", **changes: Any) -> dict[str, Any]:
    values = {
        "id": id,
        "repo": "acme/models",
        "environment": "production",
        "model": "churn",
        "version": version * 40,
        "state": state,
        "deploy_pr": 7,
        "deploy_commit": None,
        "detail": None,
        "github_deployment_id": 100 + id,
    }
    return values | changes


def event(*, merged: bool, fork: bool = False) -> dict[str, Any]:
    return {
        "action": "closed",
        "installation": {"id": 5},
        "repository": {"full_name": DEPLOY},
        "sender": {"login": "dave"},
        "pull_request": {
            "number": 7,
            "user": {"login": BOT},
            "head": {"ref": BRANCH, "repo": {"full_name": "mallory/deploy" if fork else DEPLOY}},
            "merged": merged,
            "merge_commit_sha": MERGE if merged else None,
            "merged_by": {"login": "carol"} if merged else None,
        },
    }


def test_the_event_says_who_merged_and_where_the_branch_lives() -> None:
    merged = ClosedPull.from_event(event(merged=True))
    assert merged == pull(installation_id=5)
    closed = ClosedPull.from_event(event(merged=False))
    assert closed is not None and (closed.merged, closed.merge_sha, closed.actor) == (False, "", "dave")
    forked = ClosedPull.from_event(event(merged=True, fork=True))
    assert forked is not None and forked.head_repo == "mallory/deploy"
    assert ClosedPull.from_event({**event(merged=True), "installation": None}) is None


def test_only_the_bots_own_branch_in_the_deploy_repository_counts() -> None:
    assert not_ours(pull(), BOT) is None
    assert "mallory/deploy" in (not_ours(pull(head_repo="mallory/deploy"), BOT) or "")
    assert "opened by alice" in (not_ours(pull(author="alice"), BOT) or "")


def test_a_merge_makes_the_newest_proposal_current_and_the_older_ones_never_ran() -> None:
    rows = [row(1, "a"), row(2, "b"), row(3, "c", environment="staging", deploy_pr=7)]
    decision = decide(rows, pull())
    assert [r["id"] for r in decision.make_current] == [2]
    [(stale, why)] = decision.abandon
    assert stale["id"] == 1 and "replaced on acme/deploy#7 by `bbbbbbb`" in why


def test_rows_of_another_pr_or_another_branch_are_left_alone() -> None:
    rows = [row(1, "a", deploy_pr=8), row(2, "b", model="fraud")]
    assert not decide(rows, pull()).changes


def test_a_merge_recorded_before_is_not_recorded_again() -> None:
    rows = [row(1, "a", state="superseded"), row(2, "a", state="deployed", deploy_commit=MERGE)]
    assert not decide(rows, pull()).changes


def test_a_close_without_merge_abandons_every_proposal_on_the_pr() -> None:
    decision = decide([row(1, "a"), row(2, "b"), row(3, "c", state="deployed")], pull(merged=False))
    assert decision.make_current == ()
    assert [(r["id"], why) for r, why in decision.abandon] == [(1, CLOSED_UNMERGED), (2, CLOSED_UNMERGED)]


def test_a_pr_closed_reopened_and_merged_ships_what_it_proposed() -> None:
    rows = [row(1, "a", state=ABANDONED, detail=CLOSED_UNMERGED)]
    assert [r["id"] for r in decide(rows, pull()).make_current] == [1]
    replaced = [row(1, "a", state=ABANDONED, detail="replaced on acme/deploy#7 by `bbbbbbb` before it merged")]
    assert not decide(replaced, pull()).changes


def test_the_github_deployment_of_each_row_ends_in_the_state_the_close_implies() -> None:
    merged = pull()
    assert github_state(row(2, "a", state="deployed", deploy_commit=MERGE), merged) == "success"
    assert github_state(row(1, "a", state=ABANDONED, detail=CLOSED_UNMERGED), merged) == "inactive"
    assert github_state(row(1, "a", state="superseded"), merged) is None  # its deployment row carries it on
    assert github_state(row(2, "a", state="deployed", deploy_commit=MERGE, github_deployment_id=None), merged) is None
    assert github_state(row(2, "a", state="deployed", deploy_commit=MERGE, deploy_pr=8), merged) is None


async def test_a_merged_promotion_proposal_runs_as_a_promotion(engine: AsyncEngine) -> None:
    """The row a merge writes keeps what the proposal was (the timeline says "promote", not "deploy")."""
    emitted: list[str] = []

    class Outbox:  # the one Services collaborator _make_current uses
        async def emit(self, conn: AsyncConnection, kind: str, key: str, data: dict[str, Any]) -> None:
            emitted.append(kind)

    async with engine.begin() as conn:
        for kind in ("promote", "deploy"):
            await deployments.record(
                conn,
                repo="acme/models",
                environment=f"production-{kind}",
                model="churn",
                version="a" * 40,
                deploy_repo=DEPLOY,
                deploy_pr=7,
                state="pending",
                actor="alice",
                kind=kind,
            )
        for proposal in await deployments.of_deploy_pr(conn, DEPLOY, 7):
            await _make_current(cast(Services, Outbox()), conn, proposal, pull(), track=False)
        merged = [r for r in await deployments.of_deploy_pr(conn, DEPLOY, 7) if r["state"] == "deployed"]
    assert sorted((r["environment"], r["kind"], r["actor"]) for r in merged) == [
        ("production-deploy", "deploy", "carol"),
        ("production-promote", "promote", "carol"),
    ]
    assert emitted == ["deploy.committed", "deploy.committed"]
