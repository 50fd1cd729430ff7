"""Untrusted PRs run nothing in the sandbox until the exact head commit is approved."""

from __future__ import annotations

from bot.chatops.authz import PrState
from bot.chatops.trust import approval_covers, approval_target, may_run_sandbox, needs_approval

HEAD = "a" * 40
NEW_HEAD = "b" * 40
FORK = PrState(approved=False, mergeable=None, from_fork=True, author_permission="none")
SAME_REPO = PrState(approved=False, mergeable=None, from_fork=False, author_permission="write")


def test_fork_prs_need_approval_whatever_the_authors_access() -> None:
    assert needs_approval(FORK, "admin")
    assert needs_approval(FORK, None)


def test_same_repo_prs_need_approval_unless_the_author_can_write() -> None:
    assert not needs_approval(SAME_REPO, "write")
    assert not needs_approval(SAME_REPO, "maintain")
    assert needs_approval(SAME_REPO, "triage")
    assert needs_approval(SAME_REPO, "read")
    assert needs_approval(SAME_REPO, None)  # lookup failed: untrusted


def test_an_approval_covers_only_its_exact_sha() -> None:
    approvals = [(HEAD, "maintainer")]
    assert approval_covers(approvals, HEAD)
    assert approval_covers([(HEAD.upper(), "maintainer")], HEAD)
    assert not approval_covers(approvals, NEW_HEAD)
    assert not approval_covers([], HEAD)
    assert not approval_covers([(HEAD[:7], "maintainer")], HEAD)  # a prefix is not the commit


def test_a_new_push_needs_a_new_approval() -> None:
    approvals = [(HEAD, "maintainer")]
    assert may_run_sandbox(FORK, "none", approvals, HEAD)
    assert not may_run_sandbox(FORK, "none", approvals, NEW_HEAD)
    assert may_run_sandbox(FORK, "none", [*approvals, (NEW_HEAD, "maintainer")], NEW_HEAD)


def test_trusted_prs_run_without_approval() -> None:
    assert may_run_sandbox(SAME_REPO, "write", [], HEAD)


def test_ok_to_test_binds_to_the_head_it_names() -> None:
    assert approval_target(None, HEAD) == HEAD
    assert approval_target(HEAD[:7].upper(), HEAD) == HEAD
    assert approval_target(HEAD[:6], HEAD) is None  # too short to be unambiguous
    assert approval_target(HEAD[:7], NEW_HEAD) is None  # reviewed an older push
