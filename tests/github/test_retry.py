"""The retry policy alone: which responses are retried and how long each wait is."""

from __future__ import annotations

import email.utils
import json

import pytest

from bot.github.retry import RetryPolicy, backoff, plan_retry, quota_exhausted_until

NOW = 1_800_000_000.0
STEADY = RetryPolicy(jitter=lambda: 0.0)
SECONDARY = json.dumps({"message": "You have exceeded a secondary rate limit."}).encode()


def plan(status: int, headers: dict[str, str], body: bytes = b"{}", *, attempt: int = 1, hits: int = 1):
    return plan_retry(status, headers, body, attempt=attempt, rate_limit_hits=hits, now=NOW, policy=STEADY)


def test_backoff_doubles_then_caps_and_jitter_stays_between_half_and_full() -> None:
    full = RetryPolicy(base_delay=1, max_delay=8, jitter=lambda: 0.999999)
    assert [round(backoff(n, full), 3) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert [backoff(n, STEADY) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_without_pausing_the_installation(status: int) -> None:
    wait = plan(status, {}, attempt=2)
    assert wait is not None and wait.seconds == 1.0 and not wait.rate_limited


def test_retry_after_comes_first_even_when_the_quota_is_spent() -> None:
    headers = {"Retry-After": "7", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(NOW + 500)}
    wait = plan(429, headers)
    assert wait is not None and wait.seconds == 7 and wait.rate_limited


def test_retry_after_as_http_date() -> None:
    wait = plan(403, {"retry-after": email.utils.formatdate(NOW + 10, usegmt=True)}, SECONDARY)
    assert wait is not None and wait.seconds == 10


def test_spent_primary_quota_waits_until_reset_plus_a_second() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)}
    wait = plan(403, headers, b'{"message": "API rate limit exceeded"}')
    assert wait is not None and wait.seconds == 121 and wait.rate_limited


def test_reset_in_the_past_waits_only_the_margin() -> None:
    wait = plan(429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) - 5)})
    assert wait is not None and wait.seconds == 1


def test_secondary_limit_waits_a_minute_then_doubles_up_to_the_cap() -> None:
    waits = [plan(403, {"x-ratelimit-remaining": "4000"}, SECONDARY, hits=n) for n in range(1, 6)]
    assert [w.seconds for w in waits if w] == [60, 120, 240, 480, 600]


def test_secondary_jitter_only_lengthens_the_wait() -> None:
    policy = RetryPolicy(jitter=lambda: 0.99)
    wait = plan_retry(429, {}, b"{}", attempt=1, rate_limit_hits=1, now=NOW, policy=policy)
    assert wait is not None and 60 <= wait.seconds <= 75


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, b'{"message": "Resource not accessible by integration"}'),
        (401, b'{"message": "Bad credentials"}'),
        (404, b'{"message": "Not Found"}'),
        (422, b'{"message": "Validation Failed"}'),
        (403, b"<html>not json</html>"),
    ],
)
def test_client_errors_are_not_retried(status: int, body: bytes) -> None:
    assert plan(status, {"x-ratelimit-remaining": "10"}, body) is None


def test_a_success_that_spends_the_quota_pauses_until_reset() -> None:
    assert quota_exhausted_until({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000100"}) == 1_800_000_101
    assert quota_exhausted_until({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "1800000100"}) is None
    assert quota_exhausted_until({}) is None


def test_the_older_abuse_detection_message_counts_as_a_secondary_limit() -> None:
    body = b'{"message": "You have triggered an abuse detection mechanism."}'
    wait = plan(403, {"x-ratelimit-remaining": "4000"}, body)
    assert wait is not None and wait.seconds == 60 and wait.rate_limited
