"""Untrusted pull requests: nothing from a fork, or from an author without write access, runs in the
sandbox until a write+ user comments ``ok-to-test`` on the exact head commit. Pure functions.

An approval names a SHA, not a PR: a later push changes the head, and the new commits need a new look.
A bare ``ok-to-test`` approves the head *as it was when the comment was written*, never a push that
landed between the comment and the bot reading it.

When was a commit the head? GitHub's commit lists and timeline carry commit dates, which the pusher
writes (``GIT_COMMITTER_DATE``), so they cannot order a push against a comment. What GitHub stamps
itself is the ``updated_at`` of the ``pull_request`` event (opened / reopened / synchronize) that made
a commit the head; the comment's ``created_at`` is stamped the same way. Both are whole seconds, so a
push in the same second as the comment is ambiguous, and then nothing is approved without a SHA.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HeadEvent:
    """A ``pull_request`` event that made ``sha`` the PR's head, at GitHub's ``updated_at`` (epoch seconds)."""

    sha: str
    at: int


def head_when_commented(events: Sequence[HeadEvent], created_at: int) -> str | None:
    """The PR's head when a comment created at ``created_at`` was written, or None when unknowable.

    The last head set in an earlier second counts; a head set in the comment's own second may have
    come just before or just after it, so it counts only when it is the only candidate (a PR opened
    and commented on within a second). Several candidates, or no event at all: None.
    """
    earlier = [e for e in events if e.at < created_at]
    candidates = {e.sha.lower() for e in events if e.at == created_at}
    if earlier:
        latest = max(e.at for e in earlier)
        candidates |= {e.sha.lower() for e in earlier if e.at == latest}  # two pushes in that second: ambiguous
    return candidates.pop() if len(candidates) == 1 else None


def approval_target(requested_sha: str | None, head_sha: str, commented_head: str | None = None) -> str | None:
    """The full SHA an ``ok-to-test [sha]`` approves, or None when nothing may be approved.

    Without a SHA it approves ``commented_head``, the head when the comment was written (it may be
    older than the current head; None when that cannot be told). With one (a prefix of at least 7
    digits) it must match the current head, so approving what you reviewed cannot approve a newer push.
    """
    if requested_sha is None:
        return commented_head.lower() if commented_head else None
    requested = requested_sha.lower()
    if len(requested) < MIN_SHA_PREFIX or not head_sha.lower().startswith(requested):
        return None
    return head_sha.lower()
