"""pull_request closed in a deploy repository: the bot's own deploy PR is recorded (merged: the version
runs now; closed: the proposal is abandoned). A PR the bot has no rows for, one from a fork's branch of
the same name, and a delivery without an installation change nothing and call nobody."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.context import Services
from bot.store import deployments
from bot.store.deployments import ABANDONED
from tests.handlers.conftest import FakeApp, FakeGH, deliver, jobs

MODELS, DEPLOY = "acme/churn", "acme/deploy"
BRANCH = "modelship/deploy/production/churn"
VERSION, MERGE = "a" * 40, "d" * 40
BOT = {"login": "modelship[bot]", "type": "Bot"}
# A merge into the deploy repository's default branch also reaches the deploy handler (bot.handlers.deploy),
# which looks for a `.modelship.yml` at the base and finds none: a deploy repository is not a model repository.
STATUSES = f"/repos/{MODELS}/deployments/555/statuses"
NO_CONFIG = f"/repos/{DEPLOY}/contents/.modelship.yml?ref={'f' * 40}"


def closed_event(
    *, merged: bool, head_repo: str = DEPLOY, head_ref: str = BRANCH, installation: bool = True
) -> dict[str, Any]:
    """A GitHub `pull_request` closed webhook for PR 7 of the deploy repository (the docs' shape, trimmed)."""
    payload: dict[str, Any] = {
        "action": "closed",
        "number": 7,
        "pull_request": {
            "number": 7,
            "state": "closed",
            "merged": merged,
            "merge_commit_sha": MERGE if merged else None,
            "merged_by": {"login": "carol"} if merged else None,
            "user": BOT,
            "head": {"ref": head_ref, "sha": "e" * 40, "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "sha": "f" * 40, "repo": {"full_name": DEPLOY}},
        },
        "repository": {"full_name": DEPLOY, "default_branch": "main"},
        "sender": {"login": "carol", "type": "User"},
    }
    if installation:
        payload["installation"] = {"id": 42}
    return payload


async def propose(services: Services) -> int:
    """The pending row the deploy job records when it opens deploy PR 7 for production."""
    async with services.engine.begin() as conn:
        return await deployments.insert(
            conn,
            repo=MODELS,
            environment="production",
            model="churn",
            version=VERSION,
            source_pr=4,
            deploy_repo=DEPLOY,
            deploy_pr=7,
            state="pending",
            github_deployment_id=555,
        )


async def states(services: Services) -> list[tuple[str, str | None]]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(deployments.DEPLOYMENTS.c.state, deployments.DEPLOYMENTS.c.deploy_commit).order_by(
                deployments.DEPLOYMENTS.c.id
            )
        )
        return [(r.state, r.deploy_commit) for r in rows]


async def test_merging_the_bots_deploy_pr_records_the_version_as_running(services: Services, app: FakeApp) -> None:
    await propose(services)
    gh = app.gh
    gh.answers[("GET", f"{STATUSES}?per_page=100")] = []  # the GitHub Deployment has no status of that state yet
    gh.answers[("GET", f"/repos/{MODELS}/issues/4/comments?per_page=100")] = []  # nor the source PR a Deploy comment
    await deliver("pull_request", closed_event(merged=True), gh, services)
    assert (await states(services))[-1] == ("deployed", MERGE)
    statuses = [c.body for c in gh.calls if c.method == "POST" and c.path == STATUSES]
    assert [s["state"] for s in statuses] == ["success"], "the GitHub Deployment turns green"
    [deploy_comment] = [c.body["body"] for c in gh.calls if c.path == f"/repos/{MODELS}/issues/4/comments" and c.body]
    assert "production" in deploy_comment, "the source PR's Deploy comment says where it runs"
    assert await jobs(services) == [], "recorded in place: nothing is queued"


async def test_closing_the_bots_deploy_pr_unmerged_abandons_the_proposal(services: Services, app: FakeApp) -> None:
    await propose(services)
    gh = app.gh
    gh.answers[("GET", f"{STATUSES}?per_page=100")] = []  # the GitHub Deployment has no status of that state yet
    gh.answers[("GET", f"/repos/{MODELS}/issues/4/comments?per_page=100")] = []  # nor the source PR a Deploy comment
    await deliver("pull_request", closed_event(merged=False), gh, services)
    assert await states(services) == [(ABANDONED, None)]
    statuses = [c.body for c in gh.calls if c.method == "POST" and c.path == STATUSES]
    assert [s["state"] for s in statuses] == ["inactive"], "the environment still runs what it ran"


async def test_a_pr_the_bot_recorded_nothing_for_is_ignored(services: Services) -> None:
    gh = FakeGH()
    await deliver("pull_request", closed_event(merged=True), gh, services)
    assert await states(services) == [] and gh.paths() == [NO_CONFIG] and await jobs(services) == []


async def test_a_forks_branch_of_the_same_name_is_not_the_bots(services: Services) -> None:
    await propose(services)
    gh = FakeGH()
    await deliver("pull_request", closed_event(merged=False, head_repo="mallory/deploy"), gh, services)
    assert await states(services) == [("pending", None)] and gh.calls == []


async def test_a_delivery_without_an_installation_is_ignored(services: Services, app: FakeApp) -> None:
    await propose(services)
    gh = FakeGH()
    await deliver("pull_request", closed_event(merged=True, installation=False), gh, services)
    await deliver("pull_request", closed_event(merged=True), None, services)
    assert await states(services) == [("pending", None)]
    assert app.installations == [] and app.gh.calls == [] and gh.paths() == [NO_CONFIG]
