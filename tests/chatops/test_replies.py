"""Reply bodies: they quote the command, say what to do next, and never trigger a command themselves."""

from __future__ import annotations

from bot.chatops import replies
from bot.chatops.authz import authorize
from bot.chatops.commands import COMMANDS
from bot.chatops.parser import ParseError, parse_comment

SLUG = "modelship"
HEAD = "0123456789abcdef0123456789abcdef01234567"
NEW = "fedcba9876543210fedcba9876543210fedcba98"


def error(line: str) -> ParseError:
    [result] = parse_comment(line, app_slug=SLUG)
    assert isinstance(result, ParseError)
    return result


def all_replies() -> list[str]:
    denied = authorize("deploy", actor="carol", permission="read")
    return [
        replies.help_reply("/modelship help", app_slug=SLUG),
        *(replies.help_reply(f"/modelship {name} --help", name) for name in COMMANDS),
        replies.denial("/modelship deploy staging", actor="carol", decision=denied),
        replies.parse_error(error("/modelship deplyo staging")),
        replies.parse_error(error("/modelship deploy")),
        replies.not_available("/modelship optimize", "the optimize service has not landed yet"),
        replies.environment_not_configured("/modelship deploy qa", "qa", ["staging", "production"]),
        replies.rate_limited("/modelship status", actor="mallory", retry_after=11.6),
        replies.fork_waiting(head_sha=HEAD, author="outsider"),
        replies.needs_ok_to_test("/modelship evaluate", head_sha=HEAD),
        replies.new_push_needs_approval(old_sha=HEAD, new_sha=NEW),
        replies.approval_recorded("/modelship ok-to-test", head_sha=HEAD),
        replies.stale_approval("/modelship ok-to-test 0123456", requested="0123456", head_sha=NEW),
    ]


def test_no_reply_can_trigger_a_command() -> None:
    for body in all_replies():
        assert parse_comment(body, app_slug=SLUG) == [], body


def test_a_reply_opens_by_quoting_the_command() -> None:
    body = replies.reply("/modelship deploy staging", "Deployed.")
    assert body == "> /modelship deploy staging\n\nDeployed.\n"


def test_a_quoted_command_cannot_ping_anyone_and_stays_short() -> None:
    quoted = replies.quote("@modelship deploy staging @org/everyone " + "x" * 500)
    assert "@org" not in quoted and "@\u200borg" in quoted
    assert len(quoted) < 220
    assert "\n" not in replies.quote("/modelship status\n/modelship hold")


def test_help_lists_every_command_with_usage_and_who_may_run_it() -> None:
    text = replies.help_text(app_slug=SLUG)
    for spec in COMMANDS.values():
        assert spec.summary in text
    assert "`deploy <env> [--variant original\\|fp32\\|int8] [--dry-run] [--force]`" in text  # pipes escaped in tables
    assert "| `status` | Show runs, locks, holds, deployments and the command log. | everyone |" in text
    assert "`@modelship`" in text


def test_command_help_explains_arguments_flags_and_access() -> None:
    text = replies.command_help(COMMANDS["rollback"])
    assert "/modelship rollback <env> [to <version>] [--dry-run]" in text
    assert "`<version>` (optional)" in text and "`--dry-run`" in text and "`--help`" in text
    assert "write, maintain or admin" in text and "`allowed` and `requires`" in text
    assert "Anyone who can comment" in replies.command_help(COMMANDS["status"])
    assert "ok-to-test" in replies.command_help(COMMANDS["evaluate"])


def test_denial_is_polite_and_says_who_may() -> None:
    decision = authorize("deploy", actor="carol", permission="read")
    body = replies.denial("/modelship deploy staging", actor="carol", decision=decision)
    assert body.startswith("> /modelship deploy staging\n\nSorry @carol")
    assert "needs write access; you have read access" in body
    assert "Who may run it: people with write, maintain or admin access" in body


def test_unknown_command_reply_suggests_and_points_to_help() -> None:
    body = replies.parse_error(error("/modelship deplyo staging"))
    assert "Did you mean `deploy`?" in body and "`/modelship help`" in body


def test_bad_arguments_reply_points_to_the_commands_help() -> None:
    body = replies.parse_error(error("/modelship deploy"))
    assert "Usage: `/modelship deploy <env>" in body and "`/modelship deploy --help`" in body


def test_not_available_says_what_is_missing() -> None:
    body = replies.not_available("/modelship optimize", "the optimize service has not landed yet.")
    assert body.endswith("This is not available yet: the optimize service has not landed yet.\n")
    body = replies.environment_not_configured("/modelship deploy qa", "qa", ["staging", "production"])
    assert "environment `qa` is not configured" in body and "`production`, `staging`" in body


def test_untrusted_pr_messages_name_the_exact_commit_to_approve() -> None:
    waiting = replies.fork_waiting(head_sha=HEAD, author="outsider")
    assert "`/modelship ok-to-test 0123456`" in waiting and "nothing runs in the sandbox" in waiting
    pushed = replies.new_push_needs_approval(old_sha=HEAD, new_sha=NEW)
    assert "does not cover `fedcba9`" in pushed and "`/modelship ok-to-test fedcba9`" in pushed


def test_rate_limit_reply_says_when_to_retry() -> None:
    assert "about 12 s" in replies.rate_limited("/modelship status", actor="m", retry_after=11.6)


def test_replies_fit_in_a_github_comment() -> None:
    assert all(len(body) < 65_536 for body in all_replies())
