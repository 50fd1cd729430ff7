"""Parse chat-ops commands out of a PR comment. Pure: it returns values and never posts anything.

A command starts a line, after at most 3 spaces: ``/modelship <command> [args] [--flags]`` or
``@<app-slug> <command> ...``. Lines in fenced code blocks (backticks or tildes), indented code
(4+ columns) and quotes (``>``) are ignored, so examples, pasted logs and the bot's own replies
(which quote the command) never trigger anything.

The body is untrusted and up to 64 KB, so the scan is linear regex passes in C (one blanks out fenced
blocks, one per prefix finds command lines); Python code only ever touches the command lines.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from dataclasses import dataclass, field
from typing import Literal

from bot.chatops.commands import COMMANDS, PREFIX, Arg, CommandSpec, valid_value, value_hint

MAX_COMMANDS = 10
MAX_LINE = 300  # characters of a command line kept for replies and the audit log
_MAX_TOKENS = 16
_MAX_ECHO = 40  # characters of a user token repeated back in an error

ErrorKind = Literal["unknown_command", "missing_command", "bad_arguments", "too_many_commands"]


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str
    line: str
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
    def force(self) -> bool:
        return self.flags.get("force") is True

    @property
    def variant(self) -> str | None:
        value = self.flags.get("variant")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class ParseError:
    kind: ErrorKind
    line: str
    message: str
    command: str | None = None
    suggestion: str | None = None
    usage: str | None = None


# A fenced code block, whole (CommonMark): the opener (a backtick fence's info string may not contain
# backticks), every following line that is not a closer, then the closer (same character, at least as
# long), if any: an unclosed fence runs to the end of the comment. Possessive quantifiers everywhere
# and a single character test to reject most lines keep every match linear.
_FENCED_BLOCK = re.compile(
    r"\n {0,3}+(?:"
    r"(?P<bt>`{3,}+)[^`\n]*+(?=\n)"
    r"(?:\n(?! {0,3}+(?P=bt)`*+[ \t]*+(?=\n))[^\n]*+)*+(?:\n {0,3}+(?P=bt)`*+[ \t]*+(?=\n))?+"
    r"|(?P<tl>~{3,}+)[^\n]*+"
    r"(?:\n(?! {0,3}+(?P=tl)~*+[ \t]*+(?=\n))[^\n]*+)*+(?:\n {0,3}+(?P=tl)~*+[ \t]*+(?=\n))?+"
    r")"
)


@functools.lru_cache(maxsize=8)
def _command_line(prefix: str) -> re.Pattern[str]:
    """Lines starting with ``prefix`` after at most 3 spaces (4 columns make an indented code block).

    The pattern opens with the word itself and looks back for the line start afterwards: the regex
    engine then skips quickly to the rare word instead of attempting a match at every line. One
    pattern per prefix, because an alternation of two words defeats that skip. Character classes
    instead of re.IGNORECASE, which is several times slower.
    """
    word = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in prefix)
    at_line_start = "|".join(f"(?<=\\n{' ' * n}{'.' * len(prefix)})" for n in range(4))
    return re.compile(rf"(?P<line>{word}(?:{at_line_start})(?=[ \t\n])(?P<rest>[^\n]*+))")


def parse_comment(body: str, *, app_slug: str, max_commands: int = MAX_COMMANDS) -> list[ParsedCommand | ParseError]:
    """Every command line of ``body``, in order, as a ``ParsedCommand`` or a ``ParseError``."""
    folded = body.lower()
    prefixes = [p for p in (PREFIX, f"@{app_slug.lower()}") if p in folded]
    if not prefixes:
        return []  # the common case, answered by a C-speed substring search
    text = "\n" + body.replace("\r\n", "\n").replace("\r", "\n") + "\n"
    if "```" in text or "~~~" in text:
        # Each block becomes a blank line, which (like the fence) ends any paragraph before it.
        text = _FENCED_BLOCK.sub("\n", text)
    matches = sorted(
        (m for p in prefixes for m in itertools.islice(_command_line(p).finditer(text), max_commands + 1)),
        key=lambda m: m.start(),
    )
    results: list[ParsedCommand | ParseError] = []
    for match in matches:
        line = _clip(match["line"].strip(), MAX_LINE)
        if len(results) == max_commands:
            message = f"At most {max_commands} commands run per comment; this line and the ones after it were ignored."
            results.append(ParseError("too_many_commands", line, message))
            break
        results.append(_parse_line(line, match["rest"]))
    return results


def _parse_line(line: str, rest: str) -> ParsedCommand | ParseError:
    tokens = rest.split(maxsplit=_MAX_TOKENS)
    if not tokens:
        return ParseError(
            "missing_command",
            line,
            f"No command given. Try `{PREFIX} help` to see the commands.",
            suggestion="help",
        )
    first = tokens[0]
    if first.lower() in ("--help", "-h"):
        return ParsedCommand("help", line)
    spec = COMMANDS.get(first.lower())
    if spec is None:
        return _unknown(first, line)
    rest_tokens = tokens[1:]
    if any(t.lower() in ("--help", "-h") for t in rest_tokens):
        return ParsedCommand(spec.name, line, wants_help=True)
    if len(tokens) > _MAX_TOKENS:
        return _bad(spec, line, "Too many arguments.")
    return _bind(spec, rest_tokens, line)


def _unknown(token: str, line: str) -> ParseError:
    shown = _echo(token)
    matches = difflib.get_close_matches(token[:_MAX_ECHO].lower(), list(COMMANDS), n=1, cutoff=0.6)
    suggestion = matches[0] if matches else None
    hint = f" Did you mean `{suggestion}`?" if suggestion else ""
    return ParseError(
        "unknown_command",
        line,
        f"Unknown command `{shown}`.{hint} Try `{PREFIX} help` to see the commands.",
        suggestion=suggestion,
    )


def _bad(spec: CommandSpec, line: str, problem: str) -> ParseError:
    return ParseError(
        "bad_arguments",
        line,
        f"{problem} Usage: `{PREFIX} {spec.usage}`",
        command=spec.name,
        usage=spec.usage,
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _echo(token: str) -> str:
    # Repeated inside a code span: drop backticks so the user's text cannot close it.
    return _clip(token.replace("`", "'"), _MAX_ECHO)


def _bind(spec: CommandSpec, tokens: list[str], line: str) -> ParsedCommand | ParseError:
    flags: dict[str, str | bool] = {}
    positionals: list[str] = []
    i = 0
    while i < len(tokens):
        # Phones and some editors turn "--" into a dash; read it the way the user meant it.
        token = "--" + tokens[i][1:] if tokens[i][:1] in ("\u2014", "\u2013") else tokens[i]
        i += 1
        if not token.startswith("--"):
            positionals.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        flag = spec.flag(name.lower())
        if flag is None:
            return _bad(spec, line, f"`{spec.name}` has no option `--{_echo(name)}`.")
        if not flag.takes_value:
            if eq:
                return _bad(spec, line, f"`--{flag.name}` takes no value.")
            flags[flag.name] = True
            continue
        if not eq:
            if i == len(tokens):
                return _bad(spec, line, f"`--{flag.name}` needs a value.")
            value, i = tokens[i], i + 1
        if value.lower() not in flag.choices:
            choices = ", ".join(f"`{c}`" for c in flag.choices)
            return _bad(spec, line, f"`--{flag.name}` must be one of {choices}, not `{_echo(value)}`.")
        flags[flag.name] = value.lower()
    args = _bind_positionals(spec.args, positionals)
    if isinstance(args, str):
        return _bad(spec, line, args)
    if spec.name == "help" and "command" in args:
        topic = args["command"]
        if topic.lower() not in COMMANDS:
            return _unknown(topic, line)
        args["command"] = topic.lower()
    return ParsedCommand(spec.name, line, args=args, flags=flags)


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
