"""bot.ui.github against devhub: the App's user-authorization web flow, what the user can read, and the
org/team restriction an operator sets (MODELSHIP_UI_ALLOWED)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.ui.github import OAuthClient, SignInError
from devkit.devhub import RunningDevHub

CALLBACK = "http://127.0.0.1:9/ui/oauth/callback"


async def _code(session: aiohttp.ClientSession, oauth: OAuthClient, login: str) -> str:
    url = oauth.authorize_url(CALLBACK, "st8")
    page = await session.get(url)
    assert f"Sign in as {login}" in await page.text()
    query = parse_qs(urlsplit(url).query)
    form = {k: v[0] for k, v in query.items()} | {"login": login}
    answer = await session.post(url.split("?")[0], data=form, allow_redirects=False)
    back = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert back["state"] == ["st8"]
    return back["code"][0]


async def test_sign_in_reads_the_user_their_repositories_and_memberships(devhub: RunningDevHub) -> None:
    hub = devhub.hub
    app_id, _ = await hub.create_app()
    client_id, secret = hub.oauth_client(app_id)
    await hub.create_repo("acme/churn", {"README.md": "x"}, private=True)
    await hub.create_repo("acme/other", {"README.md": "x"}, private=True)
    hub.set_permission("acme/churn", "maya", "write")
    hub.add_team_member("acme", "ml", "maya")
    hub.set_permission("acme/churn", "olga", "read")
    async with aiohttp.ClientSession() as session:
        oauth = OAuthClient(client_id, secret, devhub.base_url, devhub.base_url, session)
        token = await oauth.exchange(await _code(session, oauth, "maya"), CALLBACK)
        login = await oauth.login(token)
        repos = await oauth.readable_repos(token)
        in_org, in_team, elsewhere = (
            await oauth.member_of(token, login, "acme"),
            await oauth.member_of(token, login, "acme/ml"),
            await oauth.member_of(token, login, "globex"),
        )
        olga = await oauth.exchange(await _code(session, oauth, "olga"), CALLBACK)
        olga_in_team = await oauth.member_of(olga, "olga", "acme/ml")
        with pytest.raises(SignInError, match="bad_verification_code"):
            await OAuthClient(client_id, "wrong", devhub.base_url, devhub.base_url, session).exchange(
                await _code(session, oauth, "maya"), CALLBACK
            )

    assert login == "maya" and repos == {"acme/churn": "write"}
    assert (in_org, in_team, elsewhere, olga_in_team) == (True, True, False, False)
    assert hub.contract_violations == []
