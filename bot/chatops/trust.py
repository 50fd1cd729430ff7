"""Untrusted pull requests: nothing from a fork, or from an author without write access, runs in the
sandbox until a write+ user comments ``ok-to-test`` on the exact head commit. Pure functions.

An approval names a SHA, not a PR: a later push changes the head, and the new commits need a new look.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bot.chatops.authz import has_write

MIN_SHA_PREFIX = 7


class ForkAware(Protocol):
    @property
    def from_fork(self) -> bool: ...


def needs_approval(pr: ForkAware, author_permission: str | None) -> bool:
    """True for a fork PR, or an author without write access; a failed lookup (None) counts as untrusted."""
    return pr.from_fork or not has_write(author_permission)


def approval_covers(approvals: Iterable[tuple[str, str]], head_sha: str) -> bool:
    """Whether any ``(sha, approver)`` approval is for exactly ``head_sha``."""
    head = head_sha.lower()
    return bool(head) and any(sha.lower() == head for sha, _approver in approvals)


def may_run_sandbox(
    pr: ForkAware, author_permission: str | None, approvals: Iterable[tuple[str, str]], head_sha: str
) -> bool:
    return not needs_approval(pr, author_permission) or approval_covers(approvals, head_sha)


def approval_target(requested_sha: str | None, head_sha: str) -> str | None:
    """The full SHA an ``ok-to-test [sha]`` approves, or None when ``sha`` is not the current head.

    Without a SHA it approves the head seen when the command is handled. With one (a prefix of at
    least 7 digits) it must match the head, so approving what you reviewed cannot approve a newer push.
    """
    if requested_sha is None:
        return head_sha.lower()
    requested = requested_sha.lower()
    if len(requested) < MIN_SHA_PREFIX or not head_sha.lower().startswith(requested):
        return None
    return head_sha.lower()
