"""Deploys gated on the review, end to end: `requires: [review_passed]` (the default of auto environments).

A PR whose review failed a gate is merged in devhub: nothing reaches the deploy repository and the Deploy
comment names the gate and the override. `/modelship deploy staging --force` by an admin ships it, with a
`Modelship-Override` trailer in the deploy commit and the override in the chat-ops audit log; the same
command from a write user who is not in the environment's `allowed` list is refused, naming the permission.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.deploy.manifest import current_ref, parse_trailers
from bot.store.chatops_models import ChatopsAudit
from bot.store.reviews import ReviewedModel, ReviewRecord, save_review
from tests.e2e.test_deploy import (
    BOT,
    STAGING,
    World,
    commits,
    contract_kept,
    git,
    history,
    repos,
    settle,
    show,
    sticky,
    world,
)

__all__ = ["contract_kept", "world"]  # module fixtures shared with test_deploy (one devhub and bot here)
pytestmark = pytest.mark.slow

GATE = "f1 min_delta: Δ f1 = -0.022, required ≥ -0.01"


async def failed_review(world: World, repo: str, number: int) -> str:
    """What the review runner records for a head whose f1 dropped past the gate; returns the head."""
    pull = world.hub.pull(repo, number)
    churn = ReviewedModel("compared", metrics={"f1": 0.81}, gates_passed=False, failed_gates=(GATE,))
    await save_review(
        world.services.engine,
        repo=repo,
        number=number,
        head_sha=pull.head_sha,
        base_sha=pull.base_sha,
        conclusion="failure",
        record=ReviewRecord(models={"churn": churn}),
    )
    return str(pull.head_sha)


async def say_as(world: World, user: str, repo: str, number: int, body: str) -> str:
    comment_id = await world.hub.comment(repo, number, body, user=user)
    await settle(world)
    found = [
        c.body for c in world.hub.comments.values() if c.repo == repo and c.user.login == BOT and c.id > comment_id
    ]
    assert found, f"no reply to {body!r}"
    return found[-1]


async def audit(world: World, repo: str, number: int) -> list[tuple[str, str, dict[str, object], str, bool]]:
    async with world.services.engine.connect() as conn:
        query = select(ChatopsAudit).where(ChatopsAudit.repo == repo, ChatopsAudit.pr == number)
        rows = (await conn.execute(query.order_by(ChatopsAudit.id))).all()
    return [(r.actor, r.command, dict(r.args), r.result, r.ok) for r in rows]


async def test_a_failed_gate_blocks_the_merge_and_only_an_admin_can_force_it(world: World) -> None:
    r = await repos(world, "gated", "  staging: {auto: true}")
    world.hub.set_permission(r.model, "root", "admin")
    await world.hub.push(r.model, "worse", {"models/churn.onnx": b"churn worse"})
    number = await world.hub.open_pr(r.model, "worse")
    await settle(world)  # the (stand-in) review runs first; the failing verdict below replaces it
    head = await failed_review(world, r.model, number)
    before = commits(world, r.deploy)

    await world.hub.merge_pr(r.model, number)
    await settle(world)

    assert commits(world, r.deploy) == before  # not auto-deployed
    body = sticky(world, r.model, number)
    assert "skipped" in body and GATE in body and "`review_passed`" in body
    assert "`/modelship deploy staging --force`" in body
    assert [x.state for x in await history(world, r.model)] == ["skipped"]

    plain = await say_as(world, "alice", r.model, number, "/modelship deploy staging")
    assert GATE in plain and "--force" in plain and commits(world, r.deploy) == before

    refused = await say_as(world, "alice", r.model, number, "/modelship deploy staging --force")
    assert "`admin` permission" in refused and "environments.staging.allowed" in refused
    assert "you have write access" in refused and commits(world, r.deploy) == before

    forced = await say_as(world, "root", r.model, number, "/modelship deploy staging --force")
    assert "committed" in forced and "forced past `review_passed` by root" in forced
    assert len(commits(world, r.deploy)) == len(before) + 1
    ref = current_ref(show(world, r.deploy, STAGING))
    assert ref is not None and ref.revision == head
    message = git(world.hub.git.path(r.deploy), "log", "-1", "--format=%B", "main")
    assert parse_trailers(message)["Modelship-Override"] == "review_passed by @root"
    assert "forced past `review_passed` by root" in sticky(world, r.model, number)

    log = await audit(world, r.model, number)
    denied = [e for e in log if e[0] == "alice" and e[2].get("flags") == {"force": True}]
    assert len(denied) == 1 and not denied[0][4]
    [override] = [e for e in log if e[0] == "root"]
    assert override[1] == "deploy" and override[2]["flags"] == {"force": True} and override[4]
    assert override[3].startswith("OVERRIDE `review_passed` by root")
