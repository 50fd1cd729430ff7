"""The registry is the one source of truth: usage lines, flags and permissions all come from it."""

from __future__ import annotations

from bot.chatops.commands import COMMANDS, get, valid_value
from bot.chatops.parser import ParsedCommand, parse_comment

ENV_COMMANDS = {"deploy", "promote", "rollback", "unpin"}
ISSUE_COMMANDS = {
    "help",
    "evaluate",
    "optimize",
    "status",
    "cancel",
    "hold",
    "unhold",
    "ok-to-test",
} | ENV_COMMANDS


def test_the_registry_has_exactly_the_commands_of_the_issue() -> None:
    assert set(COMMANDS) == ISSUE_COMMANDS


def test_usage_lines_match_the_documented_grammar() -> None:
    assert COMMANDS["deploy"].usage == "deploy <env> [--variant original|fp32|int8] [--dry-run] [--force]"
    assert COMMANDS["rollback"].usage == "rollback <env> [to <version>] [--dry-run]"
    assert COMMANDS["promote"].usage == "promote <env> [--dry-run]"
    assert COMMANDS["help"].usage == "help [<command>]"
    assert COMMANDS["ok-to-test"].usage == "ok-to-test [<sha>]"
    assert COMMANDS["status"].usage == "status"


def test_only_help_and_status_are_read_only() -> None:
    assert {name for name, spec in COMMANDS.items() if not spec.mutating} == {"help", "status"}


def test_environment_commands_are_the_deploy_family() -> None:
    assert {n for n, s in COMMANDS.items() if s.needs_env} == ENV_COMMANDS


def test_sandbox_commands_are_evaluate_and_optimize() -> None:
    assert {n for n, s in COMMANDS.items() if s.sandbox} == {"evaluate", "optimize"}


def test_lookup_is_case_insensitive() -> None:
    assert get("OK-TO-TEST") is COMMANDS["ok-to-test"]
    assert get("nope") is None


def test_a_filled_in_usage_line_parses_for_every_command() -> None:
    samples = {"env": "staging", "model": "iris", "version": "v3", "sha": "0123abc", "command": "deploy"}
    for spec in COMMANDS.values():
        words = [spec.name]
        for arg in spec.args:
            words += [arg.keyword, samples[arg.kind]] if arg.keyword else [samples[arg.kind]]
        for flag in spec.flags:
            words += [f"--{flag.name}", *flag.choices[:1]]
        [parsed] = parse_comment("/modelship " + " ".join(words), app_slug="modelship")
        assert isinstance(parsed, ParsedCommand), parsed
        assert parsed.name == spec.name
        assert set(parsed.args) == {arg.name for arg in spec.args}
        assert set(parsed.flags) == {flag.name for flag in spec.flags}


def test_values_that_could_ping_or_inject_markdown_are_rejected() -> None:
    for bad in ("@alice", "prod`", "../etc", "-rf", "a b", "", "x" * 65):
        assert not valid_value("env", bad), bad
    assert valid_value("model", "vision/resnet")
    assert valid_value("version", "1.2.3+build")
    assert not valid_value("sha", "0123ab")
    assert valid_value("sha", "0123abc")
