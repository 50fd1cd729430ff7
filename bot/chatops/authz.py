"""Who may run which chat-ops command. Pure: the caller looks up permissions and teams first.

Rules, in order:
1. Read-only commands (``help``, ``status``) are open to anyone who can comment.
2. A failed permission lookup (``permission=None``) denies: we never guess in the actor's favour.
3. Mutating commands need write, maintain or admin access to the repository.
4. For environment commands, the environment's ``allowed`` list (``team:<slug>``, ``user:<login>``)
   narrows that further: the actor needs write access *and* a listed team or login.
5. The environment's ``requires`` (``approved``, ``mergeable``) must hold for the PR. GitHub reports
   ``mergeable: null`` while it computes it, so that denies with a request to try again.
   ``review_passed`` needs the review record, so deploy judges it (bot.deploy.gating).
6. ``--force`` (deploy past an unmet ``review_passed``) needs admin access, or a place in the
   environment's ``allowed`` list: write access alone is not enough.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.chatops.commands import COMMANDS, CommandSpec
from bot.chatops.parser import ParsedCommand

Permission = Literal["admin", "maintain", "write", "triage", "read", "none"]

_RANK: dict[str, int] = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}
_WRITERS = "people with write, maintain or admin access to this repository"


class EnvironmentRule(Protocol):
    """What authorization reads from a repository config's ``environments.<env>`` entry."""

    @property
    def allowed(self) -> Collection[str]: ...

    @property
    def requires(self) -> Collection[str]: ...


@dataclass(frozen=True, slots=True)
class EnvRule:
    """A plain ``EnvironmentRule``; repoconfig's own model works as long as it has the attributes."""

    allowed: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PrState:
    approved: bool
    mergeable: bool | None
    from_fork: bool
    author_permission: Permission | None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    who_may: str


def has_write(permission: str | None) -> bool:
    return permission is not None and _RANK.get(permission, 0) >= _RANK["write"]


def authorize(
    command: ParsedCommand | CommandSpec | str,
    *,
    actor: str,
    permission: Permission | None,
    actor_teams: Collection[str] = frozenset(),
    env_rule: EnvironmentRule | None = None,
    pr_state: PrState | None = None,
) -> Decision:
    spec = _spec(command)
    env = command.env if isinstance(command, ParsedCommand) else None
    where = f" in `{env}`" if env else ""
    if not spec.mutating:
        return Decision(True, f"`{spec.name}` is open to everyone.", "everyone who can comment")
    rule = env_rule if spec.needs_env else None
    who = _who_may(rule)
    if permission is None:
        return Decision(
            False,
            "GitHub did not tell us your permission on this repository, so we could "
            "not check it. Please try again in a minute.",
            who,
        )
    if not has_write(permission):
        return Decision(
            False,
            f"`{spec.name}` changes things, so it needs write access; you have {permission} access.",
            who,
        )
    if rule is None:
        return Decision(True, f"{actor} has {permission} access.", who)
    if rule.allowed and not _listed(rule.allowed, actor, actor_teams):
        return Decision(
            False,
            f"`{spec.name}`{where} is limited to the people and teams the "
            "environment lists, and you are not one of them.",
            who,
        )
    listed = bool(rule.allowed) and _listed(rule.allowed, actor, actor_teams)
    if isinstance(command, ParsedCommand) and command.force and permission != "admin" and not listed:
        return Decision(
            False,
            f"`{spec.name} --force`{where} overrides the environment's `review_passed` requirement, so it needs "
            f"the `admin` permission on this repository or a place in `environments.{env}.allowed`; "
            f"you have {permission} access.",
            f"admins of this repository, or the people and teams in `environments.{env}.allowed`",
        )
    unmet = _unmet(rule.requires, pr_state)
    if unmet:
        return Decision(False, f"`{spec.name}`{where} {unmet}", who)
    return Decision(True, f"{actor} has {permission} access and meets the rules of the environment.", who)


def _spec(command: ParsedCommand | CommandSpec | str) -> CommandSpec:
    if isinstance(command, CommandSpec):
        return command
    return COMMANDS[command.name if isinstance(command, ParsedCommand) else command.lower()]


def _listed(allowed: Collection[str], actor: str, teams: Collection[str]) -> bool:
    actor_key = actor.lower()
    team_keys = {t.lower() for t in teams}
    for entry in allowed:
        kind, name = _entry(entry)
        name = name.lower()
        if not name:
            continue
        # "team:org/slug" and "team:slug" name the same team: the lookup is scoped to the repo's org.
        if kind == "team" and name.rpartition("/")[2] in team_keys:
            return True
        if kind == "user" and name == actor_key:
            return True
    return False


def _unmet(requires: Collection[str], pr: PrState | None) -> str | None:
    """A sentence naming the first unmet requirement, or None when all hold."""
    for requirement in requires:
        if pr is None:
            return f"requires `{requirement}`, which only a pull request can meet."
        if requirement == "approved" and not pr.approved:
            return "requires an approving review on this pull request first."
        if requirement == "mergeable":
            if pr.mergeable is None:
                return (
                    "requires a mergeable pull request, and GitHub is still computing that. "
                    "Please try again in a minute."
                )
            if not pr.mergeable:
                return "requires a mergeable pull request; resolve the conflicts or failing checks first."
        if requirement not in ("approved", "mergeable", "review_passed"):
            # Fail closed on a typo in the config rather than silently ignoring the rule.
            return (
                f"requires `{requirement}`, which Modelship does not know; fix "
                "`environments.<env>.requires` in `.modelship.yml` (known: approved, mergeable, review_passed)."
            )
    return None


def _who_may(rule: EnvironmentRule | None) -> str:
    if rule is None or not rule.allowed:
        return _WRITERS
    names = []
    for entry in rule.allowed:
        kind, name = _entry(entry)
        # No "@": a denial should not ping the people it names.
        if kind == "team" and name:
            names.append(f"members of team `{name}`")
        elif kind == "user" and name:
            names.append(f"the user `{name}`")
    if not names:
        return "nobody: the environment's `allowed` list has no valid entry (`team:<slug>` or `user:<login>`)"
    return f"{_WRITERS} who are also {' or '.join(names)}"


def _entry(entry: str) -> tuple[str, str]:
    kind, _, name = entry.partition(":")
    return kind.strip().lower(), name.strip().removeprefix("@")
