"""The client against a scripted GitHub: what it retries, how long it waits, when it gives up."""

from __future__ import annotations

import logging

import aiohttp
import gidgethub
import pytest
from prometheus_client import REGISTRY

from bot.github.client import GitHubClient
from bot.github.retry import GitHubRetriesExhausted, RetryPolicy
from tests.github.conftest import FakeGitHub, FakeTime, Reply

SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}
TOKEN = "ghs_" + "T0k3n" * 8


def make_client(
    session: aiohttp.ClientSession,
    github: FakeGitHub,
    fake_time: FakeTime,
    *,
    base_path: str = "",
    installation: str = "7",
    **policy: float,
) -> GitHubClient:
    async def authorize() -> str:
        return f"token {TOKEN}"

    return GitHubClient(
        session,
        base_url=github.url + base_path,
        authorizer=authorize,
        installation=installation,
        policy=RetryPolicy(jitter=lambda: 0.999999, **policy),  # type: ignore[arg-type]
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )


def rounded(waits: list[float]) -> list[float]:
    return [round(w, 2) for w in waits]


async def test_server_errors_back_off_exponentially_then_succeed(session, github, fake_time) -> None:
    github.queue("/repos/o/r", Reply(502), Reply(503), Reply(500), Reply(504))
    client = make_client(session, github, fake_time, base_delay=1, max_delay=4)

    repo = await client.getitem("/repos/o/r")

    assert repo["path"] == "/repos/o/r"
    assert rounded(fake_time.sleeps) == [1, 2, 4, 4]
    assert github.paths() == ["/repos/o/r"] * 5


async def test_a_timeout_is_retried(session, github, fake_time) -> None:
    github.queue("/repos/o/r", Reply(delay=1.0))
    client = make_client(session, github, fake_time, request_timeout=0.2, base_delay=2)
    errors = REGISTRY.get_sample_value("github_requests_total", {"method": "GET", "status": "error"}) or 0

    assert (await client.getitem("/repos/o/r"))["path"] == "/repos/o/r"

    assert rounded(fake_time.sleeps) == [2]
    assert REGISTRY.get_sample_value("github_requests_total", {"method": "GET", "status": "error"}) == errors + 1


async def test_a_dropped_connection_is_retried(session, github, fake_time) -> None:
    # aiohttp itself resends an idempotent request once on a dropped connection; a POST it does not.
    github.queue("/repos/o/r/check-runs", Reply(drop=True))
    client = make_client(session, github, fake_time)

    assert (await client.post("/repos/o/r/check-runs", data={}))["path"] == "/repos/o/r/check-runs"
    assert rounded(fake_time.sleeps) == [1]
    assert len(github.seen) == 2


async def test_spent_primary_quota_waits_until_the_reset(session, github, fake_time) -> None:
    reset = int(fake_time.now) + 120
    limited = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    github.queue("/repos/o/r", Reply(403, {"message": "API rate limit exceeded for installation"}, limited))
    client = make_client(session, github, fake_time)

    assert (await client.getitem("/repos/o/r"))["path"] == "/repos/o/r"
    assert fake_time.sleeps == [121]
    assert fake_time.now >= reset


@pytest.mark.parametrize("status", [403, 429])
async def test_secondary_limit_honours_retry_after(session, github, fake_time, status: int) -> None:
    github.queue("/repos/o/r/issues/1/comments", Reply(status, SECONDARY, {"retry-after": "17"}))
    client = make_client(session, github, fake_time)

    comment = await client.post("/repos/o/r/issues/1/comments", data={"body": "hi"})

    assert comment["path"] == "/repos/o/r/issues/1/comments"
    assert fake_time.sleeps == [17]
    assert [s.method for s in github.seen] == ["POST", "POST"]


async def test_secondary_limit_without_retry_after_waits_a_minute_then_doubles(session, github, fake_time) -> None:
    github.queue("/repos/o/r", Reply(403, SECONDARY), Reply(403, SECONDARY))
    client = make_client(session, github, fake_time)
    client.policy = RetryPolicy(jitter=lambda: 0.0)

    assert (await client.getitem("/repos/o/r"))["path"] == "/repos/o/r"
    assert fake_time.sleeps == [60, 120]


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, gidgethub.BadRequest), (404, gidgethub.BadRequest), (422, gidgethub.InvalidField)],
)
async def test_client_errors_surface_at_once(session, github, fake_time, status, error) -> None:
    body = {
        "message": "Resource not accessible by integration",
        "errors": [{"code": "invalid", "field": "x"}],
    }
    github.queue("/repos/o/r", Reply(status, body, {"x-ratelimit-remaining": "4999"}))
    client = make_client(session, github, fake_time)

    with pytest.raises(error):
        await client.getitem("/repos/o/r")
    assert fake_time.sleeps == [] and len(github.seen) == 1


async def test_gives_up_after_max_attempts_with_a_clear_error(session, github, fake_time) -> None:
    github.queue("/repos/o/r", *[Reply(502)] * 3)
    client = make_client(session, github, fake_time, max_attempts=3)

    with pytest.raises(GitHubRetriesExhausted) as caught:
        await client.getitem("/repos/o/r")

    assert caught.value.status == 502
    assert str(caught.value) == f"GitHub GET {github.url}/repos/o/r failed after 3 attempts; last: server error 502"
    assert len(github.seen) == 3


async def test_a_wait_beyond_max_wait_fails_fast_naming_the_limit(session, github, fake_time) -> None:
    limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(fake_time.now) + 3000)}
    github.queue("/repos/o/r", Reply(403, {"message": "API rate limit exceeded"}, limited))
    client = make_client(session, github, fake_time, max_wait=900)

    with pytest.raises(GitHubRetriesExhausted, match=r"waiting 3001 s exceeds RetryPolicy.max_wait \(900 s\)"):
        await client.getitem("/repos/o/r")
    assert fake_time.sleeps == [] and len(github.seen) == 1


async def test_spending_the_last_request_pauses_the_next_one_until_reset(session, github, fake_time) -> None:
    reset = int(fake_time.now) + 30
    github.queue("/rate_limit", Reply(200, {}, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}))
    client = make_client(session, github, fake_time)

    await client.getitem("/rate_limit")
    assert fake_time.sleeps == []
    await client.getitem("/repos/o/r")
    assert fake_time.sleeps == [31]


async def test_ghes_base_url_keeps_its_path_for_templates_and_pagination(session, github, fake_time) -> None:
    next_page = f"{github.url}/api/v3/repositories/1/pulls?page=2"
    github.queue("/api/v3/repos/o/r/pulls", Reply(200, [{"n": 1}], {"Link": f'<{next_page}>; rel="next"'}))
    github.queue("/api/v3/repositories/1/pulls", Reply(200, [{"n": 2}]))
    client = make_client(session, github, fake_time, base_path="/api/v3/")

    pulls = [p["n"] async for p in client.getiter("/repos/{owner}/{repo}/pulls", {"owner": "o", "repo": "r"})]
    repo = await client.getitem("repos/o/r")

    assert pulls == [1, 2]
    assert repo["path"] == "/api/v3/repos/o/r"
    assert github.paths() == [
        "/api/v3/repos/o/r/pulls",
        "/api/v3/repositories/1/pulls?page=2",
        "/api/v3/repos/o/r",
    ]


async def test_requests_and_remaining_quota_are_counted(session, github, fake_time) -> None:
    github.queue("/repos/o/r", Reply(503), Reply(200, {}, {"x-ratelimit-remaining": "4321"}))
    client = make_client(session, github, fake_time, installation="99")

    def count(status: str) -> float:
        return REGISTRY.get_sample_value("github_requests_total", {"method": "GET", "status": status}) or 0

    before = count("503"), count("200")
    await client.getitem("/repos/o/r")

    assert (count("503"), count("200")) == (before[0] + 1, before[1] + 1)
    assert REGISTRY.get_sample_value("github_ratelimit_remaining", {"installation": "99"}) == 4321


async def test_the_token_goes_in_the_header_and_nowhere_in_logs_or_errors(
    session, github, fake_time, caplog: pytest.LogCaptureFixture
) -> None:
    github.queue("/repos/o/r/pulls", Reply(502), Reply(drop=True), Reply(502))
    client = make_client(session, github, fake_time, max_attempts=3)

    with caplog.at_level(logging.DEBUG, logger="bot.github"), pytest.raises(GitHubRetriesExhausted) as caught:
        await client.post("/repos/o/r/pulls", data={"title": "t"})

    assert {s.headers["Authorization"] for s in github.seen} == {f"token {TOKEN}"}
    assert len(caplog.records) == 2 and "retry 1 in" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(caught.value)
