"""The chat-ops service seams: the command registry later features plug into, the shared rate
limiter, how answers are joined, and the sandbox gate the review runner asks before running a PR."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.chatops import service, store
from bot.chatops.ratelimit import RateLimiter
from bot.chatops.service import BUILTIN, CommandContext, Outcome, register, registry, sandbox_allowed
from bot.context import GitHubAppPort, Services
from bot.store.queue import JobQueue

REPO = "acme/churn"
OLD, NEW = "a" * 40, "b" * 40


def services_for(engine: AsyncEngine, tmp_path: Path) -> Services:
    return Services(engine, JobQueue(engine), cast(GitHubAppPort, None), "modelship", tmp_path)


def fork_pr(head: str) -> dict[str, Any]:
    return {
        "number": 4,
        "user": {"login": "mallory"},
        "head": {"sha": head, "repo": {"full_name": "mallory/churn"}},
        "base": {"repo": {"full_name": REPO}},
    }


async def test_a_feature_plugs_its_command_in_without_touching_chatops(engine: AsyncEngine, tmp_path: Path) -> None:
    services = services_for(engine, tmp_path)
    assert "deploy" not in registry(services), "deploy answers 'not available yet' until its service lands"

    async def deploy(ctx: CommandContext) -> Outcome:
        return Outcome(True, ctx.reply("deployed"), "deployed")

    register(services, "deploy", deploy)
    assert registry(services)["deploy"] is deploy
    assert {name: registry(services)[name] for name in BUILTIN} == BUILTIN


async def test_one_rate_limiter_serves_every_comment(engine: AsyncEngine, tmp_path: Path) -> None:
    services = services_for(engine, tmp_path)
    first = service.limiter(services)
    assert isinstance(first, RateLimiter) and service.limiter(services) is first


def test_answers_are_joined_and_reactions_summarised() -> None:
    joined = service._join(["> /modelship help\n\nhelp", "> /modelship hold\n\nheld"])
    assert joined == "> /modelship help\n\nhelp\n\n---\n\n> /modelship hold\n\nheld\n", "a rule, not a heading"
    assert len(service._join(["x" * 70_000])) == 65_536
    assert service._final_reaction(["rocket", None, "confused"]) == "confused"
    assert service._final_reaction(["rocket", None]) == "rocket"
    assert service._final_reaction([None]) is None, "waiting for ok-to-test is neither success nor failure"


async def test_a_fork_runs_only_the_head_that_was_approved(engine: AsyncEngine, tmp_path: Path) -> None:
    services = services_for(engine, tmp_path)
    # A fork is untrusted whoever its author is, so no permission lookup is needed (gh is never used).
    gh = cast(GitHubAPI, None)
    allowed, message = await sandbox_allowed(services, gh, REPO, fork_pr(OLD))
    assert not allowed and "ok-to-test aaaaaaa" in message and "@mallory" in message
    async with engine.begin() as conn:
        await store.approve(conn, REPO, 4, OLD, "alice")
    assert await sandbox_allowed(services, gh, REPO, fork_pr(OLD)) == (True, f"ok-to-test by alice covers {OLD[:12]}")
    allowed, message = await sandbox_allowed(services, gh, REPO, fork_pr(NEW))
    assert not allowed and "does not cover `bbbbbbb`" in message and "ok-to-test bbbbbbb" in message
