"""What a review that ended without a result tells the PR: a completed check run and a comment saying why."""

from __future__ import annotations

import pytest

from bot.review.report import REVIEW_MARKER, render_review_failed

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("failure", "error", "conclusion", "says"),
    [
        ("input", "InputError: models/model.onnx does not exist at 0123456", "failure", "Fix this in the PR"),
        ("infrastructure", "RetriesExhausted: git fetch of o/r: gave up after 5 attempts", "cancelled", "gave up"),
        ("transient", "GitHubBroken: 502", "cancelled", "not a problem in your PR"),
        ("bug", "KeyError: 'secret internals'", "cancelled", "internal error"),
    ],
)
def test_each_kind_of_failure_completes_the_check_run_and_says_how_to_rerun(
    failure: str, error: str, conclusion: str, says: str
) -> None:
    comment, check = render_review_failed(head_sha=SHA, failure=failure, error=error, job_id=42, attempts=1)
    assert comment.startswith(REVIEW_MARKER) and "`0123456789ab`" in comment
    assert check["conclusion"] == conclusion  # never "neutral": branch protection would count it as passing
    assert says in comment and says in check["summary"]
    assert "/modelship evaluate" in comment and "⏳" not in comment


def test_a_bug_shows_its_type_and_job_not_its_message() -> None:
    comment, _ = render_review_failed(
        head_sha=SHA, failure="bug", error="KeyError: 'secret internals'", job_id=42, attempts=1
    )
    assert "`KeyError`" in comment and "job 42" in comment and "secret internals" not in comment


def test_attempts_are_counted_when_the_queue_retried_the_job() -> None:
    comment, _ = render_review_failed(
        head_sha=SHA, failure="transient", error="GitHubBroken: 502", job_id=7, attempts=3
    )
    assert "could not run** after 3 attempts" in comment
