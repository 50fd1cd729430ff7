"""GitHubApp: app and installation clients, tokens for git, and per-installation rate-limit pauses."""

from __future__ import annotations

import asyncio

import aiohttp
import gidgethub
import pytest

from bot.github.app import GitHubApp, git_base_url
from tests.github.conftest import APP_ID, FakeGitHub, FakeTime, Reply


def make_app(session: aiohttp.ClientSession, pem: str, api_url: str, fake_time: FakeTime) -> GitHubApp:
    return GitHubApp(APP_ID, pem, api_url, session, sleep=fake_time.sleep, clock=fake_time.clock)


@pytest.mark.parametrize(
    ("api_url", "web_url"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://ghe.example/api/v3", "https://ghe.example"),
        ("https://ghe.example/api/v3/", "https://ghe.example"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
    ],
)
def test_the_web_root_for_links_is_derived_from_the_api_url(api_url, web_url) -> None:
    assert git_base_url(api_url) == web_url


async def test_git_goes_to_the_clone_url_github_returns_asked_once_per_repository(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    app = make_app(session, private_key_pem, github.url + "/api/v3", fake_time)
    github.queue("/api/v3/repos/o/r", Reply(body={"clone_url": "https://git.ghe.example/scm/o/r.git"}))

    assert await app.clone_url("o/r", 5) == "https://git.ghe.example/scm/o/r.git"
    assert await app.clone_url("o/r", 5) == "https://git.ghe.example/scm/o/r.git"
    assert github.paths().count("/api/v3/repos/o/r") == 1


async def test_a_webhooks_repository_primes_the_clone_url_without_credentials(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    app = make_app(session, private_key_pem, github.url, fake_time)
    app.remember_repository({"full_name": "o/r", "clone_url": "https://user:pw@git.example/o/r.git"})
    app.remember_repository({"full_name": "o/s", "clone_url": "git@evil.example:o/s.git"})  # not http(s): ignored

    assert await app.clone_url("o/r", 5) == "https://git.example/o/r.git"
    assert "/repos/o/r" not in github.paths()
    with pytest.raises(ValueError, match="owner/name"):
        await app.clone_url("o/r@evil.example/x", 5)


async def test_a_git_token_that_was_refused_is_replaced_by_a_new_one(
    session, github: FakeGitHub, private_key_pem, fake_time
) -> None:
    source = make_app(session, private_key_pem, github.url, fake_time).git_token(5)
    first = await source.get()
    assert await source.get() == first  # cached
    source.invalidate()
    assert await source.get() not in (first, "")
    assert len(github.issued) == 2


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
