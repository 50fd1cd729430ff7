"""Sign-in with GitHub on devhub: the authorize page signs in a chosen user, the code buys a user token
once, and that token reads the user, the repositories they can read (with permissions) and their orgs."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp

from devkit.devhub import RunningDevHub

REDIRECT = "http://127.0.0.1:9/ui/oauth/callback"


async def _sign_in(devhub: RunningDevHub, session: aiohttp.ClientSession, client_id: str, login: str) -> str:
    page = await session.get(f"{devhub.base_url}/login/oauth/authorize", params={"client_id": client_id})
    assert page.status == 200 and f"Sign in as {login}" in await page.text()
    form = {"client_id": client_id, "redirect_uri": REDIRECT, "state": "s1", "login": login}
    answer = await session.post(f"{devhub.base_url}/login/oauth/authorize", data=form, allow_redirects=False)
    assert answer.status == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["s1"]
    return query["code"][0]


async def test_a_code_buys_a_user_token_once_and_the_token_reads_what_the_user_may(devhub: RunningDevHub) -> None:
    hub = devhub.hub
    app_id, _ = await hub.create_app()
    client_id, secret = hub.oauth_client(app_id)
    await hub.create_repo("acme/open", {"README.md": "x"})
    await hub.create_repo("acme/secret", {"README.md": "x"}, private=True)
    hub.set_permission("acme/open", "maya", "maintain")
    hub.add_team_member("acme", "ml", "maya")
    async with aiohttp.ClientSession() as session:
        code = await _sign_in(devhub, session, client_id, "maya")
        exchange = {"client_id": client_id, "client_secret": secret, "code": code, "redirect_uri": REDIRECT}
        headers = {"Accept": "application/json"}
        url = f"{devhub.base_url}/login/oauth/access_token"
        token = (await (await session.post(url, data=exchange, headers=headers)).json())["access_token"]
        again = await (await session.post(url, data=exchange, headers=headers)).json()
        wrong = await _sign_in(devhub, session, client_id, "maya")
        bad_secret = await (
            await session.post(url, data=exchange | {"code": wrong, "client_secret": "nope"}, headers=headers)
        ).json()
        auth = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
        user = await (await session.get(f"{devhub.base_url}/user", headers=auth)).json()
        repos = await (await session.get(f"{devhub.base_url}/user/repos", headers=auth)).json()
        orgs = await (await session.get(f"{devhub.base_url}/user/orgs", headers=auth)).json()
        anonymous = await session.get(f"{devhub.base_url}/user", headers={"Authorization": "Bearer ghu_nope"})

    assert token.startswith("ghu_")
    assert again["error"] == "bad_verification_code"  # a code is good for one exchange
    assert bad_secret["error"] == "bad_verification_code"
    assert user["login"] == "maya"
    assert [(r["full_name"], r["permissions"]["maintain"], r["permissions"]["admin"]) for r in repos] == [
        ("acme/open", True, False)
    ]
    assert [o["login"] for o in orgs] == ["acme"]
    assert anonymous.status == 401
    assert hub.contract_violations == []
