"""App JWTs and the installation-token cache, against a GitHub that really checks the JWT."""

from __future__ import annotations

import asyncio

import jwt
import pytest

from bot.github.auth import InstallationTokens, make_app_jwt
from bot.github.client import GitHubClient
from tests.github.conftest import APP_ID, FakeGitHub, FakeTime, Reply


def test_app_jwt_is_rs256_backdated_a_minute_and_lives_nine(private_key_pem: str, public_key_pem: str) -> None:
    token = make_app_jwt(APP_ID, private_key_pem, now=1_800_000_000.7)

    claims = jwt.decode(token, public_key_pem, algorithms=["RS256"], options={"verify_iat": False, "verify_exp": False})
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert claims == {"iat": 1_799_999_940, "exp": 1_800_000_540, "iss": str(APP_ID)}


@pytest.fixture
def tokens(session, github: FakeGitHub, fake_time: FakeTime, private_key_pem: str) -> InstallationTokens:
    async def bearer() -> str:
        return f"Bearer {make_app_jwt(APP_ID, private_key_pem, now=fake_time.clock())}"

    app = GitHubClient(session, base_url=github.url, authorizer=bearer, sleep=fake_time.sleep, clock=fake_time.clock)
    return InstallationTokens(app, clock=fake_time.clock)


async def test_a_token_is_fetched_once_and_reused(tokens: InstallationTokens, github: FakeGitHub) -> None:
    first = await tokens.get(11)
    assert await tokens.get(11) == first
    assert github.issued == [(11, first)]
    assert github.seen[0].headers["Authorization"].startswith("Bearer ey")


async def test_a_token_is_refreshed_five_minutes_before_it_expires(
    tokens: InstallationTokens, github: FakeGitHub, fake_time: FakeTime
) -> None:
    first = await tokens.get(11)
    fake_time.now += 3600 - 301
    assert await tokens.get(11) == first
    fake_time.now += 1
    second = await tokens.get(11)
    assert second != first and [t for _, t in github.issued] == [first, second]


async def test_concurrent_callers_share_one_fetch(tokens: InstallationTokens, github: FakeGitHub) -> None:
    github.token_gates[11] = gate = asyncio.Event()
    waiting = [asyncio.create_task(tokens.get(11)) for _ in range(5)]
    await asyncio.sleep(0.05)
    gate.set()
    assert len(set(await asyncio.gather(*waiting))) == 1
    assert len(github.issued) == 1


async def test_a_slow_fetch_for_one_installation_never_delays_another(
    tokens: InstallationTokens, github: FakeGitHub
) -> None:
    github.token_gates[11] = gate = asyncio.Event()
    slow = asyncio.create_task(tokens.get(11))
    await asyncio.sleep(0.02)

    other = await asyncio.wait_for(tokens.get(22), timeout=2)

    assert other.startswith("ghs_22x") and not slow.done()
    gate.set()
    assert (await slow).startswith("ghs_11x")


async def test_an_invalidated_token_is_fetched_again(tokens: InstallationTokens, github: FakeGitHub) -> None:
    first = await tokens.get(11)
    tokens.invalidate(11)
    assert await tokens.get(11) != first and len(github.issued) == 2


async def test_a_malformed_token_response_names_the_installation(
    tokens: InstallationTokens, github: FakeGitHub
) -> None:
    github.queue("/app/installations/11/access_tokens", Reply(201, {"token": "ghs_x", "expires_at": "soon"}))
    with pytest.raises(ValueError, match="installation 11 lacks a valid 'token' / 'expires_at'"):
        await tokens.get(11)
