"""App authentication as GitHub enforces it: app JWT -> installation token -> API."""

from __future__ import annotations

import time

import aiohttp
import jwt
import pytest
from gidgethub import BadRequest
from gidgethub.aiohttp import GitHubAPI

from devkit.devhub import RunningDevHub
from devkit.devhub.auth import generate_key
from tests.devkit.devhub.helpers import REPO, client, install_app


async def test_app_jwt_buys_an_installation_token_that_opens_the_api(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        app_jwt = jwt.encode(
            {"iat": int(time.time()) - 60, "exp": int(time.time()) + 540, "iss": str(installed.app_id)},
            installed.private_key,
            algorithm="RS256",
        )
        app = await GitHubAPI(session, "test", base_url=devhub.base_url).getitem("/app", jwt=app_jwt)
        repo = await client(devhub, session, installed.token).getitem(f"/repos/{REPO}")
        token = devhub.hub.tokens[installed.token]

    assert app["id"] == installed.app_id and app["slug"] == "modelship"
    assert repo["full_name"] == REPO
    assert installed.token.startswith("ghs_")
    assert 3590 < token.expires_at - time.time() <= 3600


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"iat": -60, "exp": 3600}, "too far in the future"),
        ({"iat": -700, "exp": -100}, "'Expiration time' claim"),
    ],
)
async def test_jwt_outside_githubs_time_rules_is_refused(
    devhub: RunningDevHub, claims: dict[str, int], message: str
) -> None:
    app_id, key = await devhub.hub.create_app()
    now = int(time.time())
    token = jwt.encode(
        {"iat": now + claims["iat"], "exp": now + claims["exp"], "iss": str(app_id)}, key, algorithm="RS256"
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{devhub.base_url}/app", headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        body = await response.json()

    assert response.status == 401
    assert message in body["message"]
    assert body["documentation_url"].startswith("https://docs.github.com/")


async def test_jwt_signed_with_another_key_is_refused(devhub: RunningDevHub) -> None:
    app_id, _ = await devhub.hub.create_app()
    forged_key, _ = generate_key()
    forged = jwt.encode(
        {"iat": int(time.time()) - 60, "exp": int(time.time()) + 500, "iss": str(app_id)},
        forged_key,
        algorithm="RS256",
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{devhub.base_url}/app/installations/1/access_tokens",
            headers={"Authorization": f"Bearer {forged}"},
        ) as response,
    ):
        assert response.status == 401
        assert (await response.json())["message"] == "A JSON web token could not be decoded"


async def test_requests_without_a_valid_installation_token_get_githubs_401(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
        statuses = []
        for headers in ({}, {"Authorization": "token ghs_not_a_real_token"}):
            async with session.get(f"{devhub.api_url}/repos/{REPO}", headers=headers) as response:
                statuses.append((response.status, (await response.json())["message"]))

    assert statuses == [(401, "Requires authentication"), (401, "Bad credentials")]


async def test_a_token_sees_only_its_installations_repositories(devhub: RunningDevHub) -> None:
    await devhub.hub.create_repo("other/secret", {"a.txt": "a"}, private=True)
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        with pytest.raises(BadRequest) as refused:
            await client(devhub, session, installed.token).getitem("/repos/other/secret")

    assert refused.value.status_code == 404


async def test_expired_installation_token_is_refused(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        devhub.hub.tokens[installed.token].expires_at = time.time() - 1
        with pytest.raises(BadRequest) as refused:
            await client(devhub, session, installed.token).getitem(f"/repos/{REPO}")

    assert refused.value.status_code == 401
