"""Scenarios for reading commands out of PR comments, plus property tests on arbitrary input."""

from __future__ import annotations

import statistics
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.chatops.commands import COMMANDS, valid_value
from bot.chatops.parser import MAX_COMMANDS, ParsedCommand, ParseError, parse_comment

SLUG = "modelship-app"


def parse(body: str) -> list[ParsedCommand | ParseError]:
    return parse_comment(body, app_slug=SLUG)


def only(body: str) -> ParsedCommand:
    [result] = parse(body)
    assert isinstance(result, ParsedCommand), result
    return result


def error(body: str) -> ParseError:
    [result] = parse(body)
    assert isinstance(result, ParseError), result
    return result


# --- scenarios -----------------------------------------------------------------------------------


def test_a_comment_without_commands_yields_nothing() -> None:
    assert parse("LGTM, nice accuracy bump! Deploy it to /modelship when ready.") == []


def test_several_commands_run_in_order_between_prose() -> None:
    body = (
        "Looks good.\n"
        "/modelship evaluate iris\n"
        "Then ship it:\n"
        "/modelship deploy staging --variant int8 --dry-run\n"
        "/modelship status\n"
    )
    results = parse(body)
    assert [r.name for r in results if isinstance(r, ParsedCommand)] == ["evaluate", "deploy", "status"]
    evaluate, deploy, _ = results
    assert isinstance(evaluate, ParsedCommand) and evaluate.args == {"model": "iris"}
    assert isinstance(deploy, ParsedCommand)
    assert (deploy.env, deploy.variant, deploy.dry_run) == ("staging", "int8", True)
    assert deploy.line == "/modelship deploy staging --variant int8 --dry-run"


def test_mentioning_the_app_works_like_the_slash_prefix() -> None:
    command = only("@modelship-app rollback production to v41")
    assert (command.name, command.env, command.args["version"]) == ("rollback", "production", "v41")


def test_mentioning_someone_else_is_not_a_command() -> None:
    assert parse("@modelship-application deploy staging\n@alice deploy staging") == []


def test_command_names_prefix_and_keywords_are_case_insensitive() -> None:
    command = only("/ModelShip ROLLBACK prod TO 7 --DRY-RUN")
    assert (command.name, command.env, command.args["version"]) == ("rollback", "prod", "7")
    assert command.dry_run


def test_the_prefix_must_be_a_whole_word() -> None:
    assert parse("/modelshipdeploy staging\n/modelship-deploy staging") == []


def test_leading_spaces_are_allowed_but_indented_code_is_ignored() -> None:
    assert only("   /modelship status").name == "status"
    assert parse("Example:\n\n    /modelship deploy production\n\t/modelship deploy production") == []


def test_commands_in_fenced_code_blocks_are_ignored() -> None:
    body = (
        "```\n/modelship deploy production\n```\n"
        "~~~yaml\n/modelship deploy production\n~~~\n"
        "````\n```\n/modelship deploy production\n````\n"
        "/modelship hold\n"
    )
    assert [r.name for r in parse(body) if isinstance(r, ParsedCommand)] == ["hold"]


def test_a_fence_only_closes_with_the_same_character_and_length() -> None:
    body = "~~~~\n~~~\n```\n/modelship deploy production\n~~~~\n/modelship unhold"
    assert only(body).name == "unhold"


def test_an_unclosed_fence_runs_to_the_end_of_the_comment() -> None:
    assert parse("```python\nprint('hi')\n/modelship deploy production\n") == []


def test_a_backtick_line_with_backticks_in_its_info_is_not_a_fence() -> None:
    assert only("``` inline ` code ```\n/modelship cancel").name == "cancel"


def test_quoted_lines_are_ignored() -> None:
    body = "> /modelship deploy production\n>> /modelship hold\n  > /modelship cancel\n"
    assert parse(body) == []


def test_crlf_line_endings_are_handled() -> None:
    body = "hi\r\n```\r\n/modelship deploy production\r\n```\r\n/modelship status\r\n"
    assert only(body).name == "status"


def test_every_command_accepts_help_even_without_its_arguments() -> None:
    for name in COMMANDS:
        command = only(f"/modelship {name} --help")
        assert (command.name, command.wants_help) == (name, True)
    assert only("/modelship rollback -h").wants_help


def test_help_takes_an_optional_command_name() -> None:
    assert only("/modelship help").args == {}
    assert only("/modelship help DEPLOY").args == {"command": "deploy"}
    assert only("/modelship --help").name == "help"


def test_unknown_command_suggests_the_closest_and_points_to_help() -> None:
    problem = error("/modelship deplyo staging")
    assert problem.kind == "unknown_command"
    assert problem.suggestion == "deploy"
    assert "`deplyo`" in problem.message and "deploy" in problem.message
    assert "/modelship help" in problem.message


def test_unknown_command_without_a_close_match_still_points_to_help() -> None:
    problem = error("/modelship frobnicate")
    assert problem.suggestion is None
    assert "/modelship help" in problem.message


def test_help_for_an_unknown_command_suggests_one() -> None:
    problem = error("/modelship help rolback")
    assert (problem.kind, problem.suggestion) == ("unknown_command", "rollback")


def test_a_bare_prefix_asks_for_a_command() -> None:
    problem = error("/modelship   ")
    assert problem.kind == "missing_command"
    assert "/modelship help" in problem.message


def test_missing_environment_names_the_usage() -> None:
    problem = error("/modelship deploy")
    assert (problem.kind, problem.command) == ("bad_arguments", "deploy")
    assert "Missing <env>" in problem.message
    assert "deploy <env> [--variant original|fp32|int8] [--dry-run]" in problem.message


def test_bad_flags_and_values_are_errors_that_name_the_usage() -> None:
    cases = {
        "/modelship deploy staging --variant fp16": "must be one of",
        "/modelship deploy staging --variant": "needs a value",
        "/modelship promote staging --force": "no option `--force`",
        "/modelship promote prod --dry-run=yes": "takes no value",
        "/modelship rollback prod v3": "Expected `to <version>`",
        "/modelship rollback prod to": "needs a <version>",
        "/modelship status now": "Unexpected argument",
        "/modelship deploy @everyone": "not a valid <env>",
        "/modelship ok-to-test xyz": "not a valid <sha>",
        "/modelship evaluate " + "a " * 40: "Too many arguments",
    }
    for body, expected in cases.items():
        problem = error(body)
        assert problem.kind == "bad_arguments", body
        assert expected in problem.message, (body, problem.message)
        assert problem.usage and problem.usage in problem.message


def test_dashes_autocorrected_from_double_hyphens_still_read_as_flags() -> None:
    command = only("/modelship deploy staging \u2014variant int8 \u2013dry-run")
    assert (command.variant, command.dry_run) == ("int8", True)


def test_flag_values_may_be_attached_with_equals() -> None:
    assert only("/modelship deploy staging --variant=FP32").variant == "fp32"


def test_ok_to_test_takes_an_optional_sha() -> None:
    assert only("/modelship ok-to-test").args == {}
    assert only("/modelship ok-to-test 0123abcd").args == {"sha": "0123abcd"}


def test_error_messages_cannot_break_out_of_code_spans() -> None:
    problem = error("/modelship dep`loy")
    assert "dep'loy" in problem.message


def test_a_very_long_command_line_is_clipped_in_the_result() -> None:
    problem = error("/modelship deploy staging " + "x " * 5000)
    assert len(problem.line) <= 301 and problem.line.endswith("…")


def test_too_many_commands_are_cut_off_with_an_error() -> None:
    results = parse("/modelship status\n" * (MAX_COMMANDS + 5))
    assert len(results) == MAX_COMMANDS + 1
    assert all(isinstance(r, ParsedCommand) for r in results[:MAX_COMMANDS])
    last = results[-1]
    assert isinstance(last, ParseError) and last.kind == "too_many_commands"


# --- properties ----------------------------------------------------------------------------------

_WHITESPACE = ["\n", " ", "\t", "\r\n", "    ", "\u2028"]
_MARKUP = ["```", "~~~", "`", "> ", "/modelship", "@modelship-app", "/ModelShip ", "@", "|", "="]
_WORDS = ["deploy", "rollback", "to", "staging", "prod", "ok-to-test", "help", "status"]
_FLAGS = ["--variant", "int8", "--dry-run", "--help", "-h"]
_ODD = ["é", "İ", "\x00", "🚀"]
_FRAGMENTS = st.sampled_from(_WHITESPACE + _MARKUP + _WORDS + _FLAGS + _ODD)
_MARKDOWNISH = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=80).map("".join)
_FENCE_LINES = st.sampled_from(["```", "````", "~~~", "~~~~", "``` python", "``` `x`", "~~~ `y`", "```  ", "~~~\t"])
_COMMAND_LINES = st.builds(
    "{}{}{}".format,
    st.sampled_from(["/modelship", "/ModelShip", "@modelship-app", "@modelship-apps", "/modelshipx", "> /modelship"]),
    st.sampled_from([" ", "\t", ""]),
    st.sampled_from(["status", "deploy staging", "rollback prod to v2 --dry-run", "deplyo", ""]),
)
_LINES = st.builds(
    "{}{}".format,
    st.sampled_from(["", " ", "   ", "    ", "\t"]),
    st.one_of(_FENCE_LINES, _COMMAND_LINES, _MARKDOWNISH),
)
_COMMENTS = st.lists(_LINES, max_size=30).map("\n".join)


def _check_well_formed(results: list[ParsedCommand | ParseError]) -> None:
    assert len(results) <= MAX_COMMANDS + 1
    for result in results:
        if isinstance(result, ParsedCommand):
            assert result.name in COMMANDS
            kinds = {arg.name: arg.kind for arg in result.spec.args}
            assert all(valid_value(kinds[name], value) for name, value in result.args.items())
        else:
            assert result.message


@given(st.text())
def test_arbitrary_unicode_never_raises(body: str) -> None:
    _check_well_formed(parse(body))


@settings(max_examples=60)
@given(_MARKDOWNISH)
def test_markdown_like_noise_never_raises(body: str) -> None:
    _check_well_formed(parse(body))


@settings(max_examples=60)
@given(_COMMENTS)
def test_anything_inside_a_quote_or_fence_is_ignored(body: str) -> None:
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    quoted = "\n".join("> " + line for line in lines)
    assert parse(quoted) == []
    fence = "~" * (body.count("~") + 3)  # longer than any tilde line inside, so it never closes
    fenced = "\n".join([fence, *lines])
    assert parse(fenced) == []


def _reference_command_lines(body: str) -> list[str]:
    """A plain line-by-line reading of the grammar, to check the regex implementation against."""
    fence: tuple[str, int] | None = None
    found = []
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = line.lstrip(" ")
        if len(line) - len(stripped) > 3:
            continue  # indented code, or not a closer
        if fence is not None:
            char, length = fence
            run = len(stripped) - len(stripped.lstrip(char))
            if run >= length and not stripped[run:].strip(" \t"):
                fence = None
            continue
        for char in "`~":
            run = len(stripped) - len(stripped.lstrip(char))
            if run >= 3 and not (char == "`" and "`" in stripped[run:]):
                fence = (char, run)
        if fence is not None:
            continue
        for prefix in ("/modelship", f"@{SLUG}"):
            head, after = stripped[: len(prefix)], stripped[len(prefix) : len(prefix) + 1]
            if head.isascii() and head.lower() == prefix and after in ("", " ", "\t"):
                found.append(stripped.strip())
    return found


@settings(max_examples=200)
@given(_COMMENTS)
def test_the_scanner_agrees_with_a_line_by_line_reading(body: str) -> None:
    expected = [line if len(line) <= 300 else line[:300] + "…" for line in _reference_command_lines(body)]
    assert [r.line for r in parse(body)] == expected[: MAX_COMMANDS + 1]


def _parse_ms(body: str, runs: int = 7) -> float:
    """Median CPU time of a parse, in milliseconds.

    CPU time rather than wall time: eight engineers share this machine's two cores, and time spent
    waiting for a core is not the parser's cost. The best of three medians absorbs cache thrash.
    """
    medians = []
    for _ in range(3):
        timings = []
        for _ in range(runs):
            start = time.process_time()
            parse(body)
            timings.append(time.process_time() - start)
        medians.append(statistics.median(timings) * 1000)
        if medians[-1] < 10.0:
            break
    return min(medians)


def _to_64k(unit: str) -> str:
    return (unit * (65_536 // max(1, len(unit)) + 1))[: 65_536 - 40] + "\n/modelship deploy staging"


_SHAPES = {
    "review thread": (
        "Thanks! A few notes on the eval set.\n> quoted earlier review\n```python\nmodel.fit(X, y)\n```\n"
        "/modelship evaluate\n    indented /modelship code\n"
    ),
    "blank lines": "\n",
    "spaces": " ",
    "backticks": "`",
    "fence lines": "```\n",
    "alternating fences": "~~~\n```\n",
    "bad fence info": "``` `\n",
    "fenced commands": "```\n/modelship deploy production\n```\n",
    "quoted commands": "> /modelship deploy production\n",
    "prefix not at line start": "x /modelship ",
    "one long line": "/modelship deploy staging x",
    "unclosed fence": "```\n" + "\n" * 70_000,
    "blank lines and a fence": "~~~\n~~~\n" + "\n" * 70_000,
    "short lines": "`\n~\n@\n \n",
    "near misses": "/MODELSHIPx\n@modelship-apps\n",
    "mentions mid-line": "x @modelship-app ",
}


def test_64_kb_comments_of_every_shape_parse_in_under_10_ms() -> None:
    for shape, unit in _SHAPES.items():
        body = _to_64k(unit)
        assert len(body) >= 65_000
        assert _parse_ms(body) < 10.0, shape


@settings(max_examples=15, deadline=None)
@given(st.lists(_MARKDOWNISH, min_size=1, max_size=20).map("".join).filter(bool))
def test_generated_64_kb_comments_parse_in_under_10_ms(unit: str) -> None:
    assert _parse_ms(_to_64k(unit), runs=5) < 10.0
