"""Signing in to the dashboard over plain HTTP, through devhub's real OAuth pages (no browser)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from pydantic import SecretStr

from devkit.devhub import DevHub


def dashboard_settings(hub: DevHub, app_id: int, web_url: str) -> dict[str, Any]:
    """The bot settings that turn the dashboard on, signing in through devhub's OAuth pages for the App."""
    client_id, client_secret = hub.oauth_client(app_id)
    return {
        "ui": "on",
        "ui_client_id": client_id,
        "ui_client_secret": SecretStr(client_secret),
        "ui_session_secret": SecretStr("s" * 48),
        "github_web_url": web_url,
    }


def browser_session() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1, as a browser does (aiohttp's jar skips IP hosts by default)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, base: str, login: str) -> aiohttp.ClientResponse:
    """Start at /ui/oauth/start, press devhub's "Sign in as <login>", follow GitHub's redirect back."""
    async with http.get(f"{base}/ui/oauth/start", allow_redirects=False) as started:
        location = started.headers["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    form = {"client_id": query["client_id"], "redirect_uri": query["redirect_uri"], "state": query["state"]}
    async with http.post(location.partition("?")[0], data=form | {"login": login}) as done:
        await done.read()
        return done
