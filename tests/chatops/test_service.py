"""The chat-ops service seams: the command registry later features plug into, the shared rate
limiter, how answers are joined, and the sandbox gate the review runner asks before running a PR."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import commands
from bot.chatops import service, store
from bot.chatops.commands import COMMANDS
from bot.chatops.dispatch import Facts
from bot.chatops.lookups import PrLookups
from bot.chatops.parser import parse_comment
from bot.chatops.service import sandbox_allowed
from bot.context import GitHubAppPort, Services
from bot.deploy.commands import run_deploy
from bot.deploy.commands import status_section as deploy_status
from bot.guard.service import run_rollback
from bot.guard.service import status_section as guard_status
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


def test_the_composition_root_lists_every_command_the_parser_knows() -> None:
    """One literal in bot.app: each command of the parser's table has a service, and nothing else does."""
    registry, sections = commands()
    assert set(registry) == set(COMMANDS) - {"help"}, "help is answered by the parser's table itself"
    assert registry["deploy"] is run_deploy and registry["rollback"] is run_rollback
    assert sections == (deploy_status, guard_status)


async def test_a_command_the_service_lacks_is_not_available(engine: AsyncEngine, tmp_path: Path) -> None:
    services = services_for(engine, tmp_path)
    [help_] = parse_comment("/modelship help", app_slug="modelship")
    facts = await service._facts(help_, "alice", services, PrLookups(cast(GitHubAPI, None), REPO, 4), None)
    assert isinstance(facts, Facts) and facts.available == frozenset(), "a bare Services has no commands"
    services.commands = commands()[0]
    facts = await service._facts(help_, "alice", services, PrLookups(cast(GitHubAPI, None), REPO, 4), None)
    assert isinstance(facts, Facts) and "deploy" in facts.available


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
