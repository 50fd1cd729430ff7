"""Markdown for the bot's chat-ops replies. Pure: values in, comment bodies out.

Every answer to a command opens by quoting it (``> /modelship deploy staging``), so a reply is
readable on its own and — being a quote — can never be parsed as a command itself.
"""

from __future__ import annotations

from bot.chatops.authz import Decision
from bot.chatops.commands import COMMANDS, PREFIX, CommandSpec
from bot.chatops.parser import ParseError

_MAX_QUOTED = 200
_ZWSP = "\u200b"


def _inert(text: str) -> str:
    # A zero-width space after "@" keeps echoed text from pinging anyone (or any team) again.
    return text.replace("@", "@" + _ZWSP)


def quote(line: str) -> str:
    line = " ".join(line.split())
    if len(line) > _MAX_QUOTED:
        line = line[:_MAX_QUOTED] + "…"
    return "> " + _inert(line)


def reply(line: str, body: str) -> str:
    """A reply to the command on ``line``: the quoted command, a blank line, then ``body``."""
    return f"{quote(line)}\n\n{body.strip()}\n"


def _short(sha: str) -> str:
    return sha[:7]


def help_text(*, app_slug: str | None = None) -> str:
    rows = [
        f"| `{_cell(spec.usage)}` | {spec.summary} | {'write access' if spec.mutating else 'everyone'} |"
        for spec in COMMANDS.values()
    ]
    mention = f" (or `@{app_slug}`)" if app_slug else ""
    return "\n".join(
        [
            f"Start a line with `{PREFIX}`{mention} and a command; several lines run in order. "
            "Lines in code blocks and quotes are ignored.",
            "",
            "| Command | What it does | Who may run it |",
            "| --- | --- | --- |",
            *rows,
            "",
            f"Add `--help` to any command for details, e.g. `{PREFIX} deploy --help`. Environments may "
            "further limit who may run `deploy`, `promote`, `rollback` and `unpin` "
            "(`environments.<env>.allowed` and `requires` in `.modelship.yml`).",
        ]
    )


def _cell(text: str) -> str:
    # GitHub tables split on "|" even inside code spans unless it is escaped.
    return text.replace("|", "\\|")


def command_help(spec: CommandSpec) -> str:
    lines = [f"**`{PREFIX} {spec.usage}`**", "", spec.summary, ""]
    for arg in spec.args:
        optional = "optional" if not arg.required else "required"
        lines.append(f"- `<{arg.name}>` ({optional}){_ARG_NOTES.get(arg.name, '')}")
    for flag in spec.flags:
        lines.append(f"- `--{flag.name}`{_FLAG_NOTES.get(flag.name, '')}")
    lines.append("- `--help`: show this text.")
    who = (
        "Anyone who can comment may run it."
        if not spec.mutating
        else ("Needs write, maintain or admin access to the repository.")
    )
    if spec.needs_env:
        who += " The environment's `allowed` and `requires` rules in `.modelship.yml` apply too."
    if spec.sandbox:
        who += " On a PR from a fork or an outside author it waits for `ok-to-test`."
    lines += ["", who]
    return "\n".join(lines)


_ARG_NOTES = {
    "command": ": the command to explain.",
    "model": ": one model of `.modelship.yml`; all changed models when omitted.",
    "env": ": an environment of `.modelship.yml`.",
    "version": ": the version to restore; the last healthy one when omitted.",
    "sha": ": the head commit you reviewed (7+ hex digits); the current head when omitted.",
}
_FLAG_NOTES = {
    "variant": ": which build to deploy; the configured default when omitted.",
    "dry-run": ": show the exact change to the deploy repository without writing it.",
}


def help_reply(line: str, topic: str | None = None, *, app_slug: str | None = None) -> str:
    spec = COMMANDS.get(topic) if topic else None
    return reply(line, command_help(spec) if spec else help_text(app_slug=app_slug))


def denial(line: str, *, actor: str, decision: Decision) -> str:
    return reply(
        line,
        f"Sorry @{actor}, I can't run that. {decision.reason}\n\nWho may run it: {decision.who_may}.",
    )


def parse_error(error: ParseError) -> str:
    body = error.message
    if error.kind == "bad_arguments" and error.command:
        body += f"\n\nSee `{PREFIX} {error.command} --help` for details."
    return reply(error.line, body)


def not_available(line: str, missing: str) -> str:
    """For a command whose service has not landed, or whose environment is not configured."""
    return reply(line, f"This is not available yet: {missing.strip().rstrip('.')}.")


def environment_not_configured(line: str, env: str, known: list[str]) -> str:
    configured = ", ".join(f"`{e}`" for e in sorted(known)) or "none"
    return not_available(
        line,
        f"environment `{env}` is not configured in `.modelship.yml` on the base branch "
        f"(add it under `environments:`; configured: {configured})",
    )


def rate_limited(line: str, *, actor: str, retry_after: float) -> str:
    seconds = max(1, round(retry_after))
    return reply(
        line,
        f"@{actor}, that is more commands than I take at once, so I am skipping this one and any "
        f"more for now. Try again in about {seconds} s.",
    )


def fork_waiting(*, head_sha: str, author: str) -> str:
    """Posted when an untrusted PR (fork, or author without write access) would run in the sandbox."""
    return (
        f"Thanks @{author}! This pull request comes from a fork or from an author without write access, "
        "so nothing runs in the sandbox yet.\n\n"
        f"A maintainer with write access can review the changes and comment "
        f"`{PREFIX} ok-to-test {_short(head_sha)}` to run the evaluation on commit `{_short(head_sha)}`.\n"
    )


def needs_ok_to_test(line: str, *, head_sha: str) -> str:
    """A sandbox command on an untrusted PR whose head commit nobody has approved yet."""
    return reply(
        line,
        "This pull request comes from a fork or from an author without write access, and commit "
        f"`{_short(head_sha)}` has not been approved for sandbox runs. Review it, then comment "
        f"`{PREFIX} ok-to-test {_short(head_sha)}` (needs write access) and run this again.",
    )


def new_push_needs_approval(*, old_sha: str, new_sha: str) -> str:
    return (
        f"New commits were pushed: the `ok-to-test` for `{_short(old_sha)}` does not cover "
        f"`{_short(new_sha)}`. A maintainer with write access needs to review the new commits and comment "
        f"`{PREFIX} ok-to-test {_short(new_sha)}`.\n"
    )


def approval_recorded(line: str, *, head_sha: str) -> str:
    return reply(line, f"Approved commit `{_short(head_sha)}` for sandbox runs. A new push needs a new `ok-to-test`.")


def approved_older_head(line: str, *, approved_sha: str, head_sha: str) -> str:
    """A bare ok-to-test approved the head of when it was written; a push since then is not covered."""
    return reply(
        line,
        f"Approved commit `{_short(approved_sha)}`, the head when you commented. New commits were pushed "
        f"since (the head is now `{_short(head_sha)}`); they are not approved and nothing runs for them. "
        f"Review them, then comment `{PREFIX} ok-to-test {_short(head_sha)}`.",
    )


def head_unknown(line: str, *, head_sha: str) -> str:
    """A bare ok-to-test when the head changed around the comment (or its history is unknown)."""
    return reply(
        line,
        "I can't tell which commit was the head when you commented (it changed around that time, or I "
        "have no record of it), so nothing was approved. Name the commit you reviewed: "
        f"`{PREFIX} ok-to-test {_short(head_sha)}` approves the current head `{_short(head_sha)}`.",
    )


def stale_approval(line: str, *, requested: str, head_sha: str) -> str:
    return reply(
        line,
        f"`{requested[:12]}` is not the head of this pull request any more (it is `{_short(head_sha)}`), "
        f"so nothing was approved. Review the new commits, then comment `{PREFIX} ok-to-test "
        f"{_short(head_sha)}`.",
    )
