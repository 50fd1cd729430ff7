"""The status reply: what a PR has going on, safe to render whatever users typed."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.chatops.status import render
from bot.chatops.store import Approval, AuditEntry, Hold, JobView

HEAD = "abcdef1234567890" * 2 + "abcdef12"
AT = datetime(2026, 11, 26, 21, 30, tzinfo=UTC)


def test_an_idle_pr_says_so_for_every_part() -> None:
    body = render(head_sha=HEAD, jobs=[], hold=None, approvals=[], audit=[])
    assert "head `abcdef1`" in body and "No jobs yet." in body and "Not on hold." in body
    assert "None." in body and "None yet." in body
    assert "Deployments" in body and "Not available yet" in body


def test_jobs_holds_approvals_and_commands_are_listed_and_defused() -> None:
    body = render(
        head_sha=HEAD,
        jobs=[JobView(3, "review", "parked", 3, "boom | @team\nsecond line", "evaluate")],
        hold=Hold("alice", AT),
        approvals=[Approval(HEAD, "bob", AT), Approval("1234567" + "0" * 33, "bob", AT)],
        audit=[
            AuditEntry(
                "o/r", 1, "mallory", 9, "help", "/modelship help `x` | @org/team", {}, "help", "replied", True, AT
            )
        ],
        sections=["**Deployments**\n\nstaging: v3"],
    )
    assert "| #3 | review (evaluate) | parked | 3 | boom \\| @\u200bteam second line |" in body
    assert "On hold since 2026-11-26 21:30 UTC (by alice)" in body
    assert "`abcdef1` (current head) by bob" in body and "`1234567` by bob" in body
    assert "`/modelship help 'x' \\| @\u200borg/team`" in body
    assert "staging: v3" in body and "Not available yet" not in body
