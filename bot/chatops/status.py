"""The body of the ``status`` reply. Pure: the PR's jobs, hold, approvals and command log in, Markdown out."""

from __future__ import annotations

from collections.abc import Sequence

from bot.chatops.store import Approval, AuditEntry, Hold, JobView

_CELL = 80


def cell(text: str | None, limit: int = _CELL) -> str:
    """Text safe inside a table cell: one line, no pipes, no mentions, clipped."""
    if not text:
        return ""
    text = " ".join(text.split()).replace("|", "\\|").replace("@", "@\u200b")
    return text if len(text) <= limit else text[:limit] + "…"


def code(text: str, limit: int = _CELL) -> str:
    # Inside a code span a backtick would end it early.
    return f"`{cell(text.replace('`', chr(39)), limit)}`"


def render(
    *,
    head_sha: str,
    jobs: Sequence[JobView],
    hold: Hold | None,
    approvals: Sequence[Approval],
    audit: Sequence[AuditEntry],
    sections: Sequence[str] = (),
) -> str:
    """``sections``: Markdown from features that report their own state (e.g. deployments)."""
    lines = [f"**Status of this pull request** (head `{head_sha[:7]}`)", "", "**Jobs**", ""]
    if jobs:
        lines += ["| Job | Kind | State | Attempts | Last error |", "| --- | --- | --- | --- | --- |"]
        for j in jobs:
            kind = f"{j.kind} ({j.trigger})" if j.trigger else j.kind
            lines.append(f"| #{j.id} | {cell(kind)} | {j.state} | {j.attempts} | {cell(j.last_error)} |")
    else:
        lines.append("No jobs yet.")
    lines += ["", "**Hold**", ""]
    lines.append(
        f"On hold since {hold.at:%Y-%m-%d %H:%M} UTC (by {cell(hold.actor)}): deploys are blocked until `unhold`."
        if hold
        else "Not on hold."
    )
    lines += ["", "**Sandbox approvals** (`ok-to-test`)", ""]
    if approvals:
        for a in approvals:
            current = " (current head)" if a.sha.lower() == head_sha.lower() else ""
            lines.append(f"- `{a.sha[:7]}`{current} by {cell(a.approver)} at {a.at:%Y-%m-%d %H:%M} UTC")
    else:
        lines.append("None.")
    lines += ["", *(sections or ["**Deployments**\n\nNot available yet: the deploy service has not landed."])]
    lines += ["", "**Recent commands**", ""]
    if audit:
        lines += ["| When (UTC) | Who | Command | Decision | Result |", "| --- | --- | --- | --- | --- |"]
        for e in audit:
            when = f"{e.at:%Y-%m-%d %H:%M:%S}" if e.at else ""
            lines.append(
                f"| {when} | {cell(e.actor)} | {code(e.line, 60)} | {cell(e.decision, 60)} | {cell(e.result, 60)} |"
            )
    else:
        lines.append("None yet.")
    return "\n".join(lines)
