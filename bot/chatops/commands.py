"""The chat-ops command registry: the single source for the parser, the help text and authorization.

Each command declares its arguments and flags as data, so the parser stays generic and the usage
line shown to users can never drift from what the parser accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

PREFIX = "/modelship"

ArgKind = Literal["env", "model", "version", "sha", "command"]

# Values end up in replies, branch names and database rows: a narrow alphabet keeps them inert
# (no mentions, no Markdown, no path tricks). Bounded repetitions keep matching linear.
_VALUE_PATTERNS: dict[ArgKind, re.Pattern[str]] = {
    "env": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"),
    "model": re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,127}"),
    "version": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"),
    "sha": re.compile(r"[0-9a-fA-F]{7,64}"),
    # Any word: the parser checks it against the registry and suggests the closest name.
    "command": re.compile(r"\S{1,200}"),
}

_VALUE_HINTS: dict[ArgKind, str] = {
    "env": "letters, digits, '-', '_' or '.', at most 63 characters",
    "model": "letters, digits, '-', '_', '.' or '/', at most 128 characters",
    "version": "letters, digits, '-', '_', '.' or '+', at most 64 characters",
    "sha": "7 to 64 hexadecimal digits",
    "command": "a command name",
}


def valid_value(kind: ArgKind, value: str) -> bool:
    return _VALUE_PATTERNS[kind].fullmatch(value) is not None


def value_hint(kind: ArgKind) -> str:
    return _VALUE_HINTS[kind]


@dataclass(frozen=True, slots=True)
class Arg:
    """A positional argument; ``keyword`` introduces it (``rollback prod to v3``)."""

    name: str
    kind: ArgKind
    required: bool = True
    keyword: str | None = None

    @property
    def usage(self) -> str:
        text = f"{self.keyword} <{self.name}>" if self.keyword else f"<{self.name}>"
        return text if self.required else f"[{text}]"


@dataclass(frozen=True, slots=True)
class Flag:
    """A ``--flag``; with ``choices`` it takes one of them as value (``--variant int8``)."""

    name: str
    choices: tuple[str, ...] = ()

    @property
    def takes_value(self) -> bool:
        return bool(self.choices)

    @property
    def usage(self) -> str:
        return f"[--{self.name} {'|'.join(self.choices)}]" if self.choices else f"[--{self.name}]"


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    summary: str
    mutating: bool
    needs_env: bool = False
    # Runs PR contents in the sandbox, so an untrusted PR needs `ok-to-test` first.
    sandbox: bool = False
    args: tuple[Arg, ...] = ()
    flags: tuple[Flag, ...] = ()

    @property
    def usage(self) -> str:
        return " ".join([self.name, *(a.usage for a in self.args), *(f.usage for f in self.flags)])

    def flag(self, name: str) -> Flag | None:
        return next((f for f in self.flags if f.name == name), None)


_DRY_RUN = Flag("dry-run")
_ENV = Arg("env", "env")

_SPECS = (
    CommandSpec(
        "help",
        "Show all commands, or details of one.",
        mutating=False,
        args=(Arg("command", "command", required=False),),
    ),
    CommandSpec(
        "evaluate",
        "Evaluate the base and head models of this PR again.",
        mutating=True,
        sandbox=True,
        args=(Arg("model", "model", required=False),),
    ),
    CommandSpec(
        "optimize",
        "Convert to ONNX, quantise and benchmark the head model.",
        mutating=True,
        sandbox=True,
        args=(Arg("model", "model", required=False),),
    ),
    CommandSpec(
        "deploy",
        "Deploy this PR's head model to an environment (`--force`: even though its review did not pass; "
        "admins or the environment's `allowed` only).",
        mutating=True,
        needs_env=True,
        args=(_ENV,),
        flags=(Flag("variant", ("original", "fp32", "int8")), _DRY_RUN, Flag("force")),
    ),
    CommandSpec(
        "promote",
        "Copy the version running upstream into an environment.",
        mutating=True,
        needs_env=True,
        args=(_ENV,),
        flags=(_DRY_RUN,),
    ),
    CommandSpec(
        "rollback",
        "Restore the last good (or the given) version and pin it.",
        mutating=True,
        needs_env=True,
        args=(_ENV, Arg("version", "version", required=False, keyword="to")),
        flags=(_DRY_RUN,),
    ),
    CommandSpec(
        "unpin",
        "Lift a rollback pin so deploys roll forward again.",
        mutating=True,
        needs_env=True,
        args=(_ENV,),
    ),
    CommandSpec("status", "Show runs, locks, holds, deployments and the command log.", mutating=False),
    CommandSpec("cancel", "Cancel this PR's queued and running jobs.", mutating=True),
    CommandSpec("hold", "Block deploys of this PR until `unhold`.", mutating=True),
    CommandSpec("unhold", "Lift a `hold`.", mutating=True),
    CommandSpec(
        "ok-to-test",
        "Allow sandbox runs for this exact head commit of an untrusted PR.",
        mutating=True,
        args=(Arg("sha", "sha", required=False),),
    ),
)

COMMANDS: MappingProxyType[str, CommandSpec] = MappingProxyType({s.name: s for s in _SPECS})


def get(name: str) -> CommandSpec | None:
    return COMMANDS.get(name.lower())
