"""What to do with one parsed command: run it, or answer why not. Pure: the handler gathers the facts
(permission, teams, base-branch environments, PR state, approvals), calls ``decide`` and carries out
the outcome. Rate limiting happens before this, since it needs a clock and state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from bot.chatops import replies
from bot.chatops.authz import EnvironmentRule, Permission, PrState, authorize
from bot.chatops.parser import ParsedCommand, ParseError
from bot.chatops.trust import approval_target, may_run_sandbox

# GitHub reaction contents: 😕 on failure, 🚀 on success; None leaves the initial 👀 alone.
Reaction = Literal["confused", "rocket"]


@dataclass(frozen=True, slots=True)
class Facts:
    actor: str
    permission: Permission | None  # None: the collaborator-permission lookup failed
    pr: PrState
    head_sha: str
    actor_teams: frozenset[str] = frozenset()
    environments: Mapping[str, EnvironmentRule] = field(default_factory=dict)
    approvals: tuple[tuple[str, str], ...] = ()  # (sha, approver) from earlier ok-to-test
    commented_head: str | None = None  # ok-to-test: the head when the comment was written (None: unknown)
    available: Collection[str] = frozenset()  # commands whose service this server runs
    app_slug: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    body: str
    reaction: Reaction | None
    decision: str  # for the audit log: why this was the answer


@dataclass(frozen=True, slots=True)
class Run:
    command: ParsedCommand
    approve_sha: str | None = None  # for ok-to-test: the exact SHA to record the approval for


def decide(item: ParsedCommand | ParseError, facts: Facts) -> Reply | Run:
    if isinstance(item, ParseError):
        return Reply(replies.parse_error(item), "confused", f"parse error: {item.kind}")
    command = item
    if command.wants_help or command.name == "help":
        topic = command.name if command.wants_help else command.args.get("command")
        return Reply(replies.help_reply(command.line, topic, app_slug=facts.app_slug), "rocket", "help")
    env = command.env
    rule = facts.environments.get(env) if env else None
    decision = authorize(
        command,
        actor=facts.actor,
        permission=facts.permission,
        actor_teams=facts.actor_teams,
        env_rule=rule,
        pr_state=facts.pr,
    )
    if not decision.allowed:
        body = replies.denial(command.line, actor=facts.actor, decision=decision)
        return Reply(body, "confused", f"denied: {decision.reason}")
    if env is not None and rule is None:
        body = replies.environment_not_configured(command.line, env, list(facts.environments))
        return Reply(body, "confused", f"environment {env} not configured")
    if command.name not in facts.available:
        missing = f"`{command.name}` needs a service this Modelship server does not run yet"
        return Reply(replies.not_available(command.line, missing), "confused", "service not available")
    if command.name == "ok-to-test":
        requested = command.args.get("sha")
        target = approval_target(requested, facts.head_sha, facts.commented_head)
        if target is None and requested is None:
            body = replies.head_unknown(command.line, head_sha=facts.head_sha)
            return Reply(body, "confused", "ok-to-test: the head when commenting is unknown")
        if target is None:
            body = replies.stale_approval(command.line, requested=requested or "", head_sha=facts.head_sha)
            return Reply(body, "confused", "ok-to-test for a SHA that is not the head")
        return Run(command, approve_sha=target)
    if command.spec.sandbox and not may_run_sandbox(
        facts.pr, facts.pr.author_permission, facts.approvals, facts.head_sha
    ):
        body = replies.needs_ok_to_test(command.line, head_sha=facts.head_sha)
        return Reply(body, None, "waiting for ok-to-test")
    return Run(command)
