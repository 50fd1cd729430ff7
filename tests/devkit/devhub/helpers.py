"""Shared steps for devhub's own tests: an installed app and clients that speak to it like the bot."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token

from devkit.devhub import RunningDevHub

REPO = "acme/models"


@dataclass
class Installed:
    app_id: int
    private_key: str
    installation_id: int
    token: str


async def install_app(devhub: RunningDevHub, session: aiohttp.ClientSession, repo: str = REPO) -> Installed:
    hub = devhub.hub
    if repo not in hub.repos:
        await hub.create_repo(repo, {"README.md": "# models\n", "model/params.json": '{"c": 1.0}\n'})
    app_id, key = await hub.create_app()
    installation_id = await hub.install(repo.split("/")[0], [repo])
    gh = GitHubAPI(session, "modelship-test", base_url=devhub.api_url)
    token = await get_installation_access_token(
        gh, installation_id=str(installation_id), app_id=str(app_id), private_key=key
    )
    return Installed(app_id, key, installation_id, token["token"])


def client(devhub: RunningDevHub, session: aiohttp.ClientSession, token: str) -> GitHubAPI:
    return GitHubAPI(session, "modelship-test", oauth_token=token, base_url=devhub.api_url)
