"""The bot's own pull requests against devhub: one PR per branch, retitled when the branch moves on."""

from __future__ import annotations

import aiohttp
import pytest

from bot.github.app import GitHubApp
from bot.github.pulls import open_or_update_pull
from devkit.devhub import RunningDevHub
from devkit.devhub.gitstore import ZERO_SHA

pytestmark = pytest.mark.slow

DEPLOY, BRANCH = "acme/deploy", "modelship/deploy/staging/iris"


async def test_a_branch_gets_one_pr_that_follows_the_newest_title_and_body(
    devhub: RunningDevHub, session: aiohttp.ClientSession
) -> None:
    hub = devhub.hub
    app_id, key = await hub.create_app()
    await hub.create_repo(DEPLOY, {"README.md": "# deploy\n"})
    app = GitHubApp(app_id, key, devhub.api_url, session)
    gh = await app.for_installation(await hub.install("acme", [DEPLOY]))
    await hub.push(DEPLOY, BRANCH, {"environments/staging/iris/values.yaml": "model: {revision: a}\n"})

    opened = await open_or_update_pull(gh, DEPLOY, BRANCH, "main", "deploy(staging): iris aaaaaaa", "body 1")
    again = await open_or_update_pull(gh, DEPLOY, BRANCH, "main", "deploy(staging): iris aaaaaaa", "body 1")
    assert opened is not None and again is not None and again["number"] == opened["number"]
    assert hub.open_count(DEPLOY) == 1

    # The branch now carries a newer version: the same PR says so.
    await hub.push(DEPLOY, BRANCH, {"environments/staging/iris/values.yaml": "model: {revision: b}\n"})
    newer = await open_or_update_pull(gh, DEPLOY, BRANCH, "main", "deploy(staging): iris bbbbbbb", "body 2")
    assert newer is not None and newer["number"] == opened["number"] and hub.open_count(DEPLOY) == 1
    pull = hub.pull(DEPLOY, opened["number"])
    assert (pull.title, pull.body) == ("deploy(staging): iris bbbbbbb", "body 2")


async def test_a_branch_with_nothing_to_merge_gets_no_pr(devhub: RunningDevHub, session: aiohttp.ClientSession) -> None:
    hub = devhub.hub
    app_id, key = await hub.create_app()
    await hub.create_repo(DEPLOY, {"README.md": "# deploy\n"})
    app = GitHubApp(app_id, key, devhub.api_url, session)
    gh = await app.for_installation(await hub.install("acme", [DEPLOY]))
    # The branch points at main's head: everything on it is merged already.
    main = hub.git.resolve(DEPLOY, "refs/heads/main")
    assert main is not None
    hub.git.update_ref(DEPLOY, f"refs/heads/{BRANCH}", main, ZERO_SHA)

    assert await open_or_update_pull(gh, DEPLOY, BRANCH, "main", "t", "b") is None
    assert hub.open_count(DEPLOY) == 0
