"""Public repositories of the App's installations are readable by every signed-in user, though GitHub's
``/user/repos`` does not list them: the dashboard adds them from ``GET /installation/repositories`` (devhub,
contract-checked), for a short TTL. A private repository the user cannot read stays hidden on the page, the
live fragment and the JSON; a repository made private disappears within the TTL; a listing GitHub refuses
adds nothing; the operator's org/team restriction still decides who signs in at all, and who stays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.github.app import GitHubApp
from bot.store import deployments
from bot.store.db import make_engine, migrate
from bot.store.installations import active_installations
from bot.store.models import Installation
from bot.store.queue import JobQueue
from bot.ui.app import Dashboard
from bot.ui.github import OAuthClient
from bot.ui.public import PublicRepos, is_public
from bot.ui.session import SessionStore
from devkit.devhub import RunningDevHub
from devkit.devhub.faults import Fault
from tests.ui.signin import browser_session, sign_in

CHURN, OPEN, SECRET = "acme/churn", "acme/open-models", "acme/secret-models"
ELSEWHERE = "zed/public-elsewhere"  # public, but the App is not installed there: not the bot's business
EARLY = "2000-01-01T00:00:00+00:00"  # the fragment's cursor: every cell changed after it


@pytest.fixture
async def engine(devhub: RunningDevHub, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    hub = devhub.hub
    for name, private in ((CHURN, True), (OPEN, False), (SECRET, True), (ELSEWHERE, False)):
        await hub.create_repo(name, {"README.md": "# models\n"}, private=private)
    hub.set_permission(CHURN, "rita", "read")
    hub.account("paul")
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/ui.db")
    await migrate(engine)
    async with engine.begin() as conn:
        for repo in (CHURN, OPEN, SECRET, ELSEWHERE):
            await deployments.record(
                conn,
                repo=repo,
                environment="staging",
                model="churn",
                version="a" * 40,
                deploy_repo="acme/deploy",
                state="deployed",
            )
    yield engine
    await engine.dispose()


@asynccontextmanager
async def dashboard(
    devhub: RunningDevHub, engine: AsyncEngine, *, allowed: str = "", refresh: float = 1e9, ttl: float = 60.0
) -> AsyncIterator[tuple[str, Dashboard]]:
    """The dashboard on a real port, signing in through devhub, its App installed on acme's three repositories
    (the installations row is what the installation webhook stores)."""
    hub = devhub.hub
    app_id, key = await hub.create_app()
    installation = await hub.install("acme", [CHURN, OPEN, SECRET])
    async with engine.begin() as conn:
        await conn.execute(
            insert(Installation).values(
                id=installation, account="acme", repositories={"all": False, "names": [CHURN, OPEN, SECRET]}
            )
        )
    client_id, client_secret = hub.oauth_client(app_id)
    async with aiohttp.ClientSession() as http:
        github = GitHubApp(app_id=app_id, private_key_pem=key, api_url=devhub.api_url, session=http)
        ui = Dashboard(
            engine=engine,
            queue=JobQueue(engine),
            github=github,
            oauth=OAuthClient(client_id, client_secret, devhub.base_url, devhub.api_url, http),
            sessions=SessionStore(engine, b"k" * 32, 3600, cache_seconds=0.0),
            allowed=allowed,
            refresh_seconds=refresh,
            stamp_ttl=0.0,
            public=PublicRepos(lambda: active_installations(engine), github, ttl=ttl),
        )
        app = web.Application()
        app.add_subapp("/ui/", ui.app())
        async with TestServer(app) as server:
            yield str(server.make_url("")).rstrip("/"), ui


async def seen(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """What the user is shown, on each face: the page, the live fragment, the JSON."""
    async with http.get(f"{base}/ui/") as page:
        assert page.status == 200
        html = await page.text()
    async with http.get(f"{base}/ui/fragments/matrix", params={"after": EARLY}) as fragment:
        assert fragment.status == 200
        cells = await fragment.text()
    async with http.get(f"{base}/ui/api/deployments") as api:
        assert api.status == 200
        data = await api.json()

    def shown(text: str) -> set[str]:
        return {r for r in (CHURN, OPEN, SECRET, ELSEWHERE) if r in text}

    return {
        "page": shown(html),
        "fragment": shown(cells),
        "json": set(data["repositories"]),
        "rows": {d["repo"] for d in data["deployments"]},
    }


def test_only_what_github_calls_public_is_public() -> None:
    assert is_public({"private": False, "visibility": "public"})
    assert is_public({"private": False})  # GitHub Enterprise Server versions without `visibility`
    assert not is_public({"private": True, "visibility": "private"})
    assert not is_public({"private": True, "visibility": "internal"})  # the enterprise's members only
    assert not is_public({"private": False, "visibility": "internal"})
    assert not is_public({})  # unknown: hidden


async def test_a_collaborator_also_sees_the_public_repositories_and_never_a_private_one(
    devhub: RunningDevHub, engine: AsyncEngine
) -> None:
    async with dashboard(devhub, engine) as (base, _), browser_session() as http:
        await sign_in(http, base, "rita")
        both = {CHURN, OPEN}
        assert await seen(http, base) == {"page": both, "fragment": both, "json": both, "rows": both}
        async with http.get(f"{base}/ui/models/{OPEN}/churn") as public:
            assert public.status == 200
        async with http.get(f"{base}/ui/models/{SECRET}/churn") as private:
            assert private.status == 404
        async with http.get(f"{base}/ui/models/{ELSEWHERE}/churn") as elsewhere:
            assert elsewhere.status == 404  # public on GitHub, but not a repository this bot serves

        # paul collaborates on nothing: the public repository is all he sees
        async with browser_session() as other:
            await sign_in(other, base, "paul")
            assert await seen(other, base) == {"page": {OPEN}, "fragment": {OPEN}, "json": {OPEN}, "rows": {OPEN}}


async def test_a_repository_made_private_disappears_within_the_ttl(devhub: RunningDevHub, engine: AsyncEngine) -> None:
    async with dashboard(devhub, engine, ttl=0.3) as (base, _), browser_session() as http:
        await sign_in(http, base, "paul")
        assert (await seen(http, base))["json"] == {OPEN}
        devhub.hub.repo(OPEN).private = True  # the owner changes its visibility on GitHub
        await asyncio.sleep(0.35)
        assert await seen(http, base) == {"page": set(), "fragment": set(), "json": set(), "rows": set()}
        async with http.get(f"{base}/ui/models/{OPEN}/churn") as timeline:
            assert timeline.status == 404


async def test_a_listing_github_refuses_adds_nothing(devhub: RunningDevHub, engine: AsyncEngine) -> None:
    async with dashboard(devhub, engine) as (base, _), browser_session() as http:
        devhub.hub.add_fault(Fault("error", count=100, path="^/installation/repositories", status=403))
        await sign_in(http, base, "rita")
        assert await seen(http, base) == {"page": {CHURN}, "fragment": {CHURN}, "json": {CHURN}, "rows": {CHURN}}
        devhub.hub.faults.pending.clear()


async def test_the_org_or_team_restriction_decides_who_signs_in_and_who_stays(
    devhub: RunningDevHub, engine: AsyncEngine
) -> None:
    hub = devhub.hub
    hub.add_team_member("acme", "ml", "rita")
    async with dashboard(devhub, engine, allowed="acme/ml", refresh=0.0) as (base, _):
        async with browser_session() as paul:
            answer = await sign_in(paul, base, "paul")
            assert answer.status == 403 and "paul is not a member of acme/ml" in await answer.text()
            async with paul.get(f"{base}/ui/api/deployments") as api:
                assert api.status == 401  # public repositories are for the dashboard's users, not for anyone
        async with browser_session() as rita:
            await sign_in(rita, base, "rita")
            assert (await seen(rita, base))["json"] == {CHURN, OPEN}
            del hub.teams[("acme", "ml")]["rita"]  # she leaves the team: her next request re-checks and ends it
            async with rita.get(f"{base}/ui/api/deployments") as api:
                assert api.status == 401
            async with rita.get(f"{base}/ui/", allow_redirects=False) as page:
                assert page.status == 303 and page.headers["Location"] == "/ui/login"
