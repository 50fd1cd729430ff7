"""Untrusted PRs run nothing in the sandbox until the exact head commit is approved."""

from __future__ import annotations

from bot.chatops.authz import PrState
from bot.chatops.trust import (
    HeadEvent,
    approval_covers,
    approval_target,
    head_when_commented,
    may_run_sandbox,
    needs_approval,
)

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
    assert approval_target(None, HEAD, HEAD) == HEAD
    assert approval_target(HEAD[:7].upper(), HEAD) == HEAD
    assert approval_target(HEAD[:6], HEAD) is None  # too short to be unambiguous
    assert approval_target(HEAD[:7], NEW_HEAD) is None  # reviewed an older push


def test_a_bare_ok_to_test_approves_the_head_of_when_the_comment_was_written() -> None:
    assert approval_target(None, NEW_HEAD, HEAD) == HEAD  # pushed after the comment: not approved
    assert approval_target(None, HEAD, None) is None  # unknown: approve nothing, ask for the SHA
    assert approval_target(HEAD[:7], HEAD, NEW_HEAD) == HEAD  # a named SHA is checked against the head


OPENED, PUSHED = HeadEvent(HEAD, 1000), HeadEvent(NEW_HEAD, 1060)


def test_the_head_when_commented_is_the_last_one_set_in_an_earlier_second() -> None:
    assert head_when_commented([OPENED, PUSHED], 1059) == HEAD  # the push came a second after the comment
    assert head_when_commented([OPENED, PUSHED], 1061) == NEW_HEAD
    assert head_when_commented([PUSHED, OPENED], 1061) == NEW_HEAD  # delivery order does not matter


def test_a_head_set_in_the_comments_own_second_is_ambiguous_unless_it_is_the_only_candidate() -> None:
    assert head_when_commented([OPENED, PUSHED], 1060) is None  # 0.07 s after the comment, or before?
    assert head_when_commented([OPENED], 1000) == HEAD  # opened and commented on within a second
    assert head_when_commented([OPENED, HeadEvent(NEW_HEAD, 1000)], 1001) is None  # two heads in one second
    assert head_when_commented([], 1000) is None  # no record: nothing to go on
    assert head_when_commented([PUSHED], 1000) is None  # only heads from after the comment
