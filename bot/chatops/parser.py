"""Parse chat-ops commands out of a PR comment. Pure: it returns values and never posts anything.

A command starts a line, after optional spaces: ``/modelship <command> [args] [--flags]`` or
``@<app-slug> <command> ...``. Lines in fenced or indented code blocks and quoted lines are ignored,
so examples, pasted logs and the bot's own replies (which quote the command) never trigger anything.

Speed matters because the body is untrusted and up to 64 KB: one linear regex scan finds the only
lines that matter (fences and command lines) instead of walking every line in Python.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Literal

from bot.chatops.commands import COMMANDS, PREFIX, Arg, CommandSpec, valid_value, value_hint

MAX_COMMANDS = 10
_MAX_TOKENS = 16
_MAX_ECHO = 40  # characters of a user token repeated back in an error

ErrorKind = Literal["unknown_command", "missing_command", "bad_arguments", "too_many_commands"]


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str
    line: str
    lineno: int
    args: dict[str, str] = field(default_factory=dict)
    flags: dict[str, str | bool] = field(default_factory=dict)
    wants_help: bool = False

    @property
    def spec(self) -> CommandSpec:
        return COMMANDS[self.name]

    @property
    def env(self) -> str | None:
        return self.args.get("env")

    @property
    def dry_run(self) -> bool:
        return self.flags.get("dry-run") is True

    @property
    def variant(self) -> str | None:
        value = self.flags.get("variant")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ParseError:
    kind: ErrorKind
    line: str
    lineno: int
    message: str
    command: str | None = None
    suggestion: str | None = None
    usage: str | None = None


_FENCE_OR_COMMAND = (
    r"^(?P<indent>[ \t]*)(?:(?P<fence>`{{3,}}|~{{3,}})(?P<info>[^\n]*)"
    r"|(?P<prefix>{prefixes})(?=[ \t]|$))"
)


def _scanner(app_slug: str) -> re.Pattern[str]:
    prefixes = "|".join(re.escape(p) for p in (PREFIX, f"@{app_slug}"))
    return re.compile(_FENCE_OR_COMMAND.format(prefixes=prefixes), re.MULTILINE | re.IGNORECASE)


def _width(indent: str) -> int:
    width = 0
    for ch in indent:
        width = width + 4 - width % 4 if ch == "\t" else width + 1
    return width


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


class _IndentedCode:
    """Decides whether a line indented by 4+ columns is an indented code block.

    CommonMark: such a line is code unless it continues a paragraph. Walk back over the run of
    indented or blank lines; a blank line (or the start) before it means code. The verdict of the
    previous indented line is remembered so a long run is walked once, keeping the scan linear.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._last_start = -1
        self._last_verdict = False

    def __call__(self, line_start: int) -> bool:
        text, pos = self._text, line_start
        while pos > 0:
            prev_start = text.rfind("\n", 0, pos - 1) + 1
            if prev_start == self._last_start:
                verdict = self._last_verdict
                break
            prev = text[prev_start : pos - 1]
            stripped = prev.lstrip(" \t")
            if not stripped:
                verdict = True
                break
            if _width(prev[: len(prev) - len(stripped)]) < 4:
                # A fence or heading ends its block; anything else is a paragraph being continued.
                verdict = stripped.startswith(("```", "~~~", "#"))
                break
            pos = prev_start
        else:
            verdict = True
        self._last_start, self._last_verdict = line_start, verdict
        return verdict


def parse_comment(body: str, *, app_slug: str, max_commands: int = MAX_COMMANDS) -> list[ParsedCommand | ParseError]:
    """Every command line of ``body``, in order, as a ``ParsedCommand`` or a ``ParseError``."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    indented_code = _IndentedCode(text)
    results: list[ParsedCommand | ParseError] = []
    fence: str | None = None  # the opening fence while inside a fenced block
    for match in _scanner(app_slug).finditer(text):
        indent = _width(match["indent"])
        if match["fence"] is not None:
            fence = _track_fence(fence, match["fence"], match["info"], indent)
            continue
        if fence is not None or (indent >= 4 and indented_code(match.start())):
            continue
        lineno = text.count("\n", 0, match.start()) + 1
        line = text[match.start() : _line_end(text, match.start())].strip()
        if len(results) == max_commands:
            results.append(ParseError("too_many_commands", line, lineno,
                                      f"At most {max_commands} commands run per comment; "
                                      "this line and the ones after it were ignored."))
            break
        results.append(_parse_line(line, lineno, text[match.end() : _line_end(text, match.end())]))
    return results


def _track_fence(open_fence: str | None, marker: str, info: str, indent: int) -> str | None:
    if indent >= 4:
        return open_fence
    if open_fence is None:
        # A backtick fence's info string may not contain backticks (CommonMark); then it is not a fence.
        return None if marker[0] == "`" and "`" in info else marker
    closes = marker[0] == open_fence[0] and len(marker) >= len(open_fence) and not info.strip()
    return None if closes else open_fence


def _parse_line(line: str, lineno: int, rest: str) -> ParsedCommand | ParseError:
    tokens = rest.split(maxsplit=_MAX_TOKENS)
    if not tokens:
        return ParseError("missing_command", line, lineno,
                          f"No command given. Try `{PREFIX} help` to see the commands.", suggestion="help")
    first = tokens[0].lower()
    if first in ("--help", "-h"):
        return ParsedCommand("help", line, lineno)
    spec = COMMANDS.get(first)
    if spec is None:
        return _unknown(first, line, lineno)
    rest_tokens = tokens[1:]
    if any(t.lower() in ("--help", "-h") for t in rest_tokens):
        return ParsedCommand(spec.name, line, lineno, wants_help=True)
    if len(tokens) > _MAX_TOKENS:
        return _bad(spec, line, lineno, "Too many arguments.")
    return _bind(spec, rest_tokens, line, lineno)


def _unknown(token: str, line: str, lineno: int) -> ParseError:
    shown = _echo(token)
    matches = difflib.get_close_matches(token[:_MAX_ECHO], list(COMMANDS), n=1, cutoff=0.6)
    suggestion = matches[0] if matches else None
    hint = f" Did you mean `{suggestion}`?" if suggestion else ""
    return ParseError("unknown_command", line, lineno,
                      f"Unknown command `{shown}`.{hint} Try `{PREFIX} help` to see the commands.",
                      suggestion=suggestion)


def _bad(spec: CommandSpec, line: str, lineno: int, problem: str) -> ParseError:
    return ParseError("bad_arguments", line, lineno,
                      f"{problem} Usage: `{PREFIX} {spec.usage}`", command=spec.name, usage=spec.usage)


def _echo(token: str) -> str:
    # Repeated inside a code span: drop backticks so the user's text cannot close it.
    cleaned = token.replace("`", "'")
    return cleaned if len(cleaned) <= _MAX_ECHO else cleaned[:_MAX_ECHO] + "…"


def _bind(spec: CommandSpec, tokens: list[str], line: str, lineno: int) -> ParsedCommand | ParseError:
    flags: dict[str, str | bool] = {}
    positionals: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--"):
            positionals.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        flag = spec.flag(name.lower())
        if flag is None:
            return _bad(spec, line, lineno, f"`{spec.name}` has no option `--{_echo(name)}`.")
        if not flag.takes_value:
            if eq:
                return _bad(spec, line, lineno, f"`--{flag.name}` takes no value.")
            flags[flag.name] = True
            continue
        if not eq:
            if i == len(tokens):
                return _bad(spec, line, lineno, f"`--{flag.name}` needs a value.")
            value, i = tokens[i], i + 1
        if value.lower() not in flag.choices:
            choices = ", ".join(f"`{c}`" for c in flag.choices)
            return _bad(spec, line, lineno, f"`--{flag.name}` must be one of {choices}, not `{_echo(value)}`.")
        flags[flag.name] = value.lower()
    args = _bind_positionals(spec.args, positionals)
    if isinstance(args, str):
        return _bad(spec, line, lineno, args)
    if spec.name == "help" and "command" in args:
        topic = args["command"].lower()
        if topic not in COMMANDS:
            return _unknown(topic, line, lineno)
        args["command"] = topic
    return ParsedCommand(spec.name, line, lineno, args=args, flags=flags)


def _bind_positionals(specs: tuple[Arg, ...], values: list[str]) -> dict[str, str] | str:
    """The bound arguments, or a sentence saying what is wrong."""
    bound: dict[str, str] = {}
    queue = list(values)
    for arg in specs:
        if arg.keyword is not None:
            if not queue:
                continue
            if queue[0].lower() != arg.keyword:
                return f"Expected `{arg.keyword} <{arg.name}>`, not `{_echo(queue[0])}`."
            queue.pop(0)
            if not queue:
                return f"`{arg.keyword}` needs a <{arg.name}> after it."
        elif not queue:
            if arg.required:
                return f"Missing <{arg.name}>."
            continue
        value = queue.pop(0)
        if not valid_value(arg.kind, value):
            return f"`{_echo(value)}` is not a valid <{arg.name}> ({value_hint(arg.kind)})."
        bound[arg.name] = value
    if queue:
        return f"Unexpected argument `{_echo(queue[0])}`."
    return bound
