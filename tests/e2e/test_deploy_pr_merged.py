"""Protected environments end to end: a person merges (or closes) the deploy-repo PR the bot opened.

The bot opens a PR in the deploy repository for `/modelship promote production`; a person merges it in
devhub. What counts: the ``deployments`` rows (what the guard watches), the GitHub Deployment's
statuses on the model repository, the Deploy comment on the PR that shipped the version, what
`modelship status` prints, and that the same event delivered again writes nothing anywhere.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from click.testing import CliRunner

from bot.guard.cli import status as status_cli
from devkit.devhub.faults import Fault
from tests.e2e.test_deploy import (
    World,
    commits,
    contract_kept,
    history,
    merge,
    repos,
    say,
    settle,
    sticky,
    world,
)

__all__ = ["contract_kept", "world"]  # module fixtures shared with test_deploy (one devhub and bot here)

PROTECTED = "  staging: {auto: true}\n  production: {upstream: staging, via: pull_request}"
BRANCH = "modelship/deploy/production/churn"


def deploy_pull(world: World, deploy_repo: str) -> Any:
    """The bot's one open PR in the deploy repository."""
    [pull] = [p for p in world.hub.pulls[deploy_repo].values() if p.state == "open"]
    assert pull.head_ref == BRANCH and pull.user.login == "modelship[bot]"
    return pull


def deployment_statuses(world: World, repo: str, environment: str) -> list[list[str]]:
    """The states of each GitHub Deployment of ``environment`` on ``repo``, oldest first."""
    found = sorted((d for d in world.hub.deployments.values() if d.repo == repo), key=lambda d: d.id)
    return [[s.state for s in d.statuses] for d in found if d.environment == environment]


async def guard_status(world: World, repo: str) -> str:
    return str(await world.services.guard.status(repo))


async def promote(world: World, model_repo: str, number: int) -> None:
    reply = await say(world, model_repo, number, "/modelship promote production")
    assert "opened or updated" in reply and "protected environment" in reply, reply


def writes_since(world: World, at: float) -> list[tuple[str, str]]:
    """Every request that changed something in devhub since ``at`` (reads do not count)."""
    return [
        (r.method, r.path)
        for r in world.hub.faults.log
        if r.at >= at and r.method not in ("GET", "HEAD") and not r.path.endswith("/access_tokens")
    ]


def modelship_status(world: World, repo: str) -> str:
    """`modelship status --repo`: the command line an operator runs, on the bot's database."""
    settings = world.bot.settings
    env = {
        "MODELSHIP_WEBHOOK_SECRET": "unused-by-the-cli",
        "MODELSHIP_DATABASE_URL": settings.effective_database_url,
        "MODELSHIP_DATA_DIR": str(settings.data_dir),
    }
    result = CliRunner().invoke(status_cli, ["--repo", repo], env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_a_merged_deploy_pr_is_recorded_watched_and_told_once(world: World) -> None:
    r = await repos(world, "gated", PROTECTED)
    number, version = await merge(world, r.model, "ship", b"churn v1")
    await promote(world, r.model, number)
    pull = deploy_pull(world, r.deploy)
    # Before the merge: a proposal, a queued GitHub Deployment, nothing running in production.
    assert [(x.environment, x.state) for x in await history(world, r.model)] == [
        ("staging", "deployed"),
        ("production", "pending"),
    ]
    assert deployment_statuses(world, r.model, "production") == [["queued"]]
    assert "| production |" not in await guard_status(world, r.model)

    deploy_sha = await world.hub.merge_pr(r.deploy, pull.number, user="carol")
    await settle(world)

    rows = await history(world, r.model)
    assert [(x.environment, x.state, x.version) for x in rows] == [
        ("staging", "deployed", version),
        ("production", "superseded", version),  # the proposal; the next row is the deployment it became
        ("production", "deployed", version),
    ]
    current = rows[-1]
    assert (current.deploy_commit, current.deploy_pr, current.actor) == (deploy_sha, pull.number, "carol")
    assert current.values_path == rows[1].values_path == "environments/production/churn/values.yaml"
    assert current.github_deployment_id == rows[1].github_deployment_id  # the same GitHub Deployment succeeds
    assert deployment_statuses(world, r.model, "production") == [["queued", "success"]]
    [production] = [d for d in world.hub.deployments.values() if d.repo == r.model and d.environment == "production"]
    assert deploy_sha in production.statuses[-1].environment_url
    body = sticky(world, r.model, number)
    assert "✅ deployed" in body and deploy_sha[:7] in body and "deploy PR open" not in body
    # The guard watches `deployed` rows: production is one now, and the operator's status says so.
    printed = await asyncio.to_thread(modelship_status, world, r.model)
    assert f"| {r.model} | production | churn | `{version[:7]}` |" in printed, printed
    assert f"| {r.model} | staging | churn |" in printed

    # GitHub's "Redeliver" (same GUID) and the same event under a new GUID: nothing is written again.
    closed = next(
        d
        for d in reversed(world.hub.sender.deliveries)
        if (d.event, d.action) == ("pull_request", "closed") and d.payload["repository"]["full_name"] == r.deploy
    )
    before = await history(world, r.model)
    started = time.time()
    await world.hub.redeliver(closed.guid)
    again = world.hub.sender.build(
        "pull_request",
        closed.payload,
        closed.headers["X-GitHub-Hook-Installation-Target-Type"],
        int(closed.headers["X-GitHub-Hook-Installation-Target-ID"]),
    )
    await world.hub.sender.send(again)
    assert again.status == 202
    await settle(world)
    assert await history(world, r.model) == before
    assert deployment_statuses(world, r.model, "production") == [["queued", "success"]]
    assert writes_since(world, started) == []


async def test_a_deploy_pr_closed_without_merge_is_abandoned(world: World) -> None:
    r = await repos(world, "declined", PROTECTED)
    number, _ = await merge(world, r.model, "ship", b"churn v2")
    await promote(world, r.model, number)
    pull = deploy_pull(world, r.deploy)
    main = commits(world, r.deploy)

    await world.hub.close_pr(r.deploy, pull.number, user="carol")
    await settle(world)

    rows = await history(world, r.model)
    assert [(x.environment, x.state, x.detail) for x in rows] == [
        ("staging", "deployed", None),
        ("production", "abandoned", "deploy PR closed without merge"),
    ]
    assert deployment_statuses(world, r.model, "production") == [["queued", "inactive"]]
    [production] = [d for d in world.hub.deployments.values() if d.repo == r.model and d.environment == "production"]
    assert production.statuses[-1].description == "deploy PR closed without merge"
    body = sticky(world, r.model, number)
    assert "deploy PR closed unmerged" in body and "deploy PR open" not in body
    assert "| production |" not in await guard_status(world, r.model)
    assert commits(world, r.deploy) == main


async def test_a_pr_updated_by_a_second_promotion_records_the_version_it_carries(world: World) -> None:
    r = await repos(world, "twice", PROTECTED)
    first_pr, first = await merge(world, r.model, "one", b"churn v3")
    await promote(world, r.model, first_pr)
    second_pr, second = await merge(world, r.model, "two", b"churn v4")
    await promote(world, r.model, second_pr)  # the same deploy PR, now carrying the second version
    pull = deploy_pull(world, r.deploy)

    await world.hub.merge_pr(r.deploy, pull.number)
    await settle(world)

    production = [(x.version, x.state) for x in await history(world, r.model) if x.environment == "production"]
    assert production == [(first, "abandoned"), (second, "superseded"), (second, "deployed")]
    assert deployment_statuses(world, r.model, "production") == [["queued", "inactive"], ["queued", "success"]]
    assert "deploy PR open" not in sticky(world, r.model, first_pr)
    assert "✅ deployed" in sticky(world, r.model, second_pr)


async def test_prs_the_bot_did_not_open_change_nothing(world: World) -> None:
    r = await repos(world, "bystander", PROTECTED)
    number, _ = await merge(world, r.model, "ship", b"churn v5")
    await promote(world, r.model, number)
    rows = await history(world, r.model)
    world.hub.set_permission(r.deploy, "alice", "write")
    # A person's PR on a branch named like the bot's, in the deploy repository; and one elsewhere.
    await world.hub.push(r.deploy, "modelship/deploy/staging/churn", {"notes.md": "hand-made\n"})
    own = await world.hub.open_pr(r.deploy, "modelship/deploy/staging/churn")
    await world.hub.merge_pr(r.deploy, own)
    await world.hub.push(r.model, "docs", {"README.md": "# models, documented\n"})
    await world.hub.close_pr(r.model, await world.hub.open_pr(r.model, "docs"))
    await settle(world)

    assert await history(world, r.model) == rows
    assert deployment_statuses(world, r.model, "production") == [["queued"]]
    assert "deploy PR open" in sticky(world, r.model, number)


async def test_a_rollback_pr_a_person_merges_is_recorded_without_a_watcher(world: World) -> None:
    """This bot has no Prometheus, so no watcher round will look at the rollback PR: only its webhook."""
    assert world.services.guard.watcher is None
    r = await repos(world, "reverted", PROTECTED)
    first_pr, first = await merge(world, r.model, "one", b"churn v6")
    await promote(world, r.model, first_pr)
    await world.hub.merge_pr(r.deploy, deploy_pull(world, r.deploy).number)
    await settle(world)
    second_pr, second = await merge(world, r.model, "two", b"churn v7")
    await promote(world, r.model, second_pr)
    await world.hub.merge_pr(r.deploy, deploy_pull(world, r.deploy).number)
    await settle(world)

    reply = await say(world, r.model, second_pr, f"/modelship rollback production to {first[:7]}")
    assert "waiting for a merge" in reply, reply
    [rollback] = [p for p in world.hub.pulls[r.deploy].values() if p.state == "open"]
    assert rollback.head_ref == "modelship/rollback/production/churn"

    # The first read of the merged PR fails: the webhook job, not a watcher round, looks again.
    failing = rf"/repos/{r.deploy}/pulls/{rollback.number}$"
    world.hub.add_fault(Fault("error", count=1, path=failing, method="GET", status=404))
    await world.hub.merge_pr(r.deploy, rollback.number)
    await settle(world)
    assert [x.fault for x in world.hub.faults.log if re.search(failing, x.path)][-2:] == ["error", None]

    production = [
        (x.version, x.state, x.pinned) for x in await history(world, r.model) if x.environment == "production"
    ]
    assert production[-2:] == [(second, "rolled_back", False), (first, "deployed", True)]
    assert "↩️ rolled back" in sticky(world, r.model, second_pr)
