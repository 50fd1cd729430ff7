"""From a parsed command and the facts about the PR to one outcome: run it, or say exactly why not."""

from __future__ import annotations

from dataclasses import replace

from bot.chatops.authz import EnvRule, PrState
from bot.chatops.commands import COMMANDS
from bot.chatops.dispatch import Facts, Reply, Run, decide
from bot.chatops.parser import ParsedCommand, ParseError, parse_comment

HEAD = "c0ffee" + "0" * 34
OWN_PR = PrState(approved=True, mergeable=True, from_fork=False, author_permission="write")
FORK_PR = PrState(approved=False, mergeable=True, from_fork=True, author_permission="none")
MAINTAINER = Facts(
    actor="maria",
    permission="maintain",
    pr=OWN_PR,
    head_sha=HEAD,
    environments={"staging": EnvRule(), "production": EnvRule(allowed=("user:alice",))},
    available=frozenset(COMMANDS),
    app_slug="modelship",
)


def outcome(line: str, facts: Facts = MAINTAINER) -> Reply | Run:
    [item] = parse_comment(line, app_slug="modelship")
    return decide(item, facts)


def reply(line: str, facts: Facts = MAINTAINER) -> Reply:
    result = outcome(line, facts)
    assert isinstance(result, Reply), result
    return result


def test_an_allowed_command_runs() -> None:
    result = outcome("/modelship deploy staging --dry-run")
    assert isinstance(result, Run) and result.command.dry_run


def test_parse_errors_are_answered_with_a_confused_reaction() -> None:
    result = reply("/modelship deplyo staging")
    assert result.reaction == "confused" and "Did you mean `deploy`?" in result.body


def test_help_is_answered_for_anyone_without_running_anything() -> None:
    stranger = replace(MAINTAINER, actor="sam", permission="none")
    assert "| Command |" in reply("/modelship help", stranger).body
    assert reply("/modelship rollback --help", stranger).body.count("rollback <env> [to <version>]") == 1
    assert "/modelship hold`**" in reply("/modelship help hold", stranger).body


def test_a_denial_names_who_may() -> None:
    result = reply("/modelship deploy production")
    assert result.reaction == "confused"
    assert "Sorry @maria" in result.body and "the user `alice`" in result.body
    assert result.decision.startswith("denied:")


def test_an_unconfigured_environment_says_what_is_missing() -> None:
    result = reply("/modelship rollback qa")
    assert "environment `qa` is not configured" in result.body
    assert "`production`, `staging`" in result.body


def test_readers_are_denied_before_being_told_about_environments() -> None:
    reader = replace(MAINTAINER, permission="read")
    assert reply("/modelship deploy qa", reader).decision.startswith("denied:")


def test_a_command_whose_service_has_not_landed_says_so() -> None:
    early = replace(MAINTAINER, available=frozenset({"status"}))
    result = reply("/modelship optimize", early)
    assert "not available yet" in result.body and "`optimize`" in result.body


def test_sandbox_commands_on_a_fork_wait_for_ok_to_test_on_the_exact_head() -> None:
    fork = replace(MAINTAINER, pr=FORK_PR)
    waiting = reply("/modelship evaluate", fork)
    assert waiting.reaction is None and "`/modelship ok-to-test c0ffee0`" in waiting.body
    approved = replace(fork, approvals=(("c0ffee" + "0" * 34, "maria"),))
    assert isinstance(outcome("/modelship evaluate", approved), Run)
    pushed = replace(approved, head_sha="beef" * 10)
    assert isinstance(outcome("/modelship evaluate", pushed), Reply)


def test_non_sandbox_commands_on_a_fork_are_not_held_back_by_trust() -> None:
    assert isinstance(outcome("/modelship status", replace(MAINTAINER, pr=FORK_PR)), Run)


def test_ok_to_test_records_the_head_it_names() -> None:
    fork = replace(MAINTAINER, pr=FORK_PR)
    result = outcome("/modelship ok-to-test c0ffee0", fork)
    assert isinstance(result, Run) and result.approve_sha == HEAD
    stale = reply("/modelship ok-to-test abcdef1", fork)
    assert "not the head of this pull request" in stale.body


def test_a_bare_ok_to_test_approves_the_head_when_commented_or_asks_for_the_sha() -> None:
    fork = replace(MAINTAINER, pr=FORK_PR)
    older = "0ld" + "0" * 37
    same = outcome("/modelship ok-to-test", replace(fork, commented_head=HEAD))
    assert isinstance(same, Run) and same.approve_sha == HEAD
    moved = outcome("/modelship ok-to-test", replace(fork, commented_head=older))
    assert isinstance(moved, Run) and moved.approve_sha == older  # never the push after the comment
    unknown = reply("/modelship ok-to-test", fork)
    assert unknown.reaction == "confused" and "nothing was approved" in unknown.body
    assert "`/modelship ok-to-test c0ffee0`" in unknown.body


def test_ok_to_test_needs_write_access() -> None:
    author = replace(MAINTAINER, actor="outsider", permission="read", pr=FORK_PR)
    assert reply("/modelship ok-to-test", author).decision.startswith("denied:")


def test_every_parse_result_gets_an_outcome() -> None:
    body = "\n".join(f"/modelship {name}" for name in COMMANDS)
    items = parse_comment(body, app_slug="modelship", max_commands=len(COMMANDS))
    assert len(items) == len(COMMANDS)
    for item in items:
        assert isinstance(item, ParsedCommand | ParseError)
        assert isinstance(decide(item, MAINTAINER), Reply | Run)
