"""GitHubApp: app and installation clients, tokens for git, and per-installation rate-limit pauses."""

from __future__ import annotations

import asyncio

import aiohttp
import gidgethub
import pytest

from bot.github.app import GitHubApp
from bot.github.redact import redact
from tests.github.conftest import APP_ID, FakeGitHub, FakeTime, Reply


def make_app(session: aiohttp.ClientSession, pem: str, api_url: str, fake_time: FakeTime) -> GitHubApp:
    return GitHubApp(APP_ID, pem, api_url, session, sleep=fake_time.sleep, clock=fake_time.clock)


@pytest.mark.parametrize(
    ("api_url", "git_url"),
    [
        ("https://api.github.com", "https://x-access-token:T@github.com/o/r.git"),
        ("https://ghe.example/api/v3", "https://x-access-token:T@ghe.example/o/r.git"),
        ("https://ghe.example/api/v3/", "https://x-access-token:T@ghe.example/o/r.git"),
        ("http://127.0.0.1:8765", "http://x-access-token:T@127.0.0.1:8765/o/r.git"),
    ],
)
def test_git_url_is_derived_from_the_api_url(session, private_key_pem, fake_time, api_url, git_url) -> None:
    assert make_app(session, private_key_pem, api_url, fake_time).git_url("o/r", "T") == git_url


def test_git_url_refuses_what_is_not_a_repository_name(session, private_key_pem, fake_time) -> None:
    app = make_app(session, private_key_pem, "https://api.github.com", fake_time)
    with pytest.raises(ValueError, match="owner/name"):
        app.git_url("o/r@evil.example/x", "T")


@pytest.mark.parametrize("key", ["", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----", "public"])
def test_a_bad_private_key_names_the_settings_and_not_the_key(session, fake_time, public_key_pem, key) -> None:
    key = public_key_pem if key == "public" else key
    with pytest.raises(ValueError, match="MODELSHIP_GITHUB_PRIVATE_KEY_PATH") as caught:
        make_app(session, key, "http://x", fake_time)
    assert "c2VjcmV0" not in str(caught.value) and caught.value.__cause__ is None


async def test_jwt_to_installation_token_to_repository_on_ghes(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    app = make_app(session, private_key_pem, github.url + "/api/v3", fake_time)

    client = await app.for_installation(5)
    repo = await client.getitem("/repos/{owner}/{repo}", {"owner": "o", "repo": "r"})

    token = github.issued[0][1]
    assert github.paths() == ["/api/v3/app/installations/5/access_tokens", "/api/v3/repos/o/r"]
    assert repo["auth"] == f"token {token}"
    assert await app.installation_token(5) == token
    assert await app.for_installation(5) is client


async def test_the_app_client_reuses_one_jwt_for_five_minutes(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    client = await (make_app(session, private_key_pem, github.url, fake_time)).app_client()
    first = (await client.getitem("/app"))["auth"]
    fake_time.now += 299
    assert (await client.getitem("/app"))["auth"] == first
    fake_time.now += 1
    assert (await client.getitem("/app"))["auth"] != first


async def test_a_long_lived_installation_client_switches_to_a_fresh_token(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    client = await make_app(session, private_key_pem, github.url, fake_time).for_installation(5)
    before = (await client.getitem("/repos/o/r"))["auth"]
    fake_time.now += 3600 - 300
    after = (await client.getitem("/repos/o/r"))["auth"]
    assert [f"token {t}" for _, t in github.issued] == [before, after]


async def test_the_token_for_git_is_redacted_in_its_url(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    app = make_app(session, private_key_pem, github.url, fake_time)
    url = app.git_url("o/r", await app.installation_token(5))
    assert redact(url) == f"http://x-access-token:***@{github.url.removeprefix('http://')}/o/r.git"


class GatedTime(FakeTime):
    """Sleeps block until the test opens the gate, so it can look at who is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.gate.wait()
        self.now += seconds


async def test_a_rate_limited_installation_pauses_itself_and_never_stalls_another(
    session, github: FakeGitHub, private_key_pem
) -> None:
    time = GatedTime()
    github.queue("/repos/a/r", Reply(429, {"message": "secondary rate limit"}, {"retry-after": "30"}))
    app = make_app(session, private_key_pem, github.url, time)
    limited, other = await app.for_installation(1), await app.for_installation(2)

    first = asyncio.create_task(limited.getitem("/repos/a/r"))
    await asyncio.sleep(0.05)
    same_installation = asyncio.create_task(limited.getitem("/repos/a/other"))
    await asyncio.sleep(0.05)

    assert (await asyncio.wait_for(other.getitem("/repos/b/r"), timeout=2))["path"] == "/repos/b/r"
    assert not first.done() and not same_installation.done()
    assert "/repos/a/other" not in github.paths()

    time.gate.set()
    assert [(await t)["path"] for t in (first, same_installation)] == ["/repos/a/r", "/repos/a/other"]
    assert time.sleeps == [30, 30]


async def test_a_token_github_stopped_accepting_is_replaced_once(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    client = await make_app(session, private_key_pem, github.url, fake_time).for_installation(5)
    github.queue("/repos/o/r", Reply(401, {"message": "Bad credentials"}))

    assert (await client.getitem("/repos/o/r"))["path"] == "/repos/o/r"
    assert len(github.issued) == 2 and fake_time.sleeps == []

    github.queue("/repos/o/r", Reply(401, {"message": "Bad credentials"}), Reply(401, {"message": "Bad credentials"}))
    with pytest.raises(gidgethub.BadRequest, match="Bad credentials"):
        await client.getitem("/repos/o/r")
    assert len(github.issued) == 3
