"""Dashboard sessions: the cookie carries a signed, expiring id and nothing else; the session is a row of
`ui_sessions` (the token encrypted), so a restarted bot still knows it, sign-out deletes it, and a
tampered, expired or foreign cookie finds none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.db import make_engine, migrate
from bot.store.queue import JobQueue
from bot.store.ui_models import UiSession
from bot.ui.app import Dashboard
from bot.ui.github import OAuthClient
from bot.ui.session import COOKIE, SessionStore, same, sign, unsign

SECRET = b"k" * 32


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/ui.db")
    await migrate(engine)
    yield engine
    await engine.dispose()


async def test_a_session_cookie_holds_no_token_and_expires(engine: AsyncEngine) -> None:
    store = SessionStore(engine, SECRET, lifetime=3600)
    cookie, session = await store.create("maya", "ghu_secret", {"acme/churn": "maintain"}, now=1000.0)
    assert "ghu_secret" not in cookie and "maya" not in cookie
    found = await store.get(cookie, now=2000.0)
    assert found is not None and (found.login, found.token, found.csrf) == ("maya", "ghu_secret", session.csrf)
    assert await store.get(cookie, now=1000.0 + 3601) is None  # expired
    assert await store.get(cookie[:-2] + "xx", now=2000.0) is None  # tampered MAC
    sid, _, rest = cookie.partition(".")
    assert await store.get(f"{sid}.9999999999.{rest.partition('.')[2]}", now=2000.0) is None  # expiry pushed out
    assert await SessionStore(engine, b"o" * 32, 3600).get(cookie, now=2000.0) is None  # another server's key
    other = SessionStore(engine, SECRET, 3600, cache_seconds=0.0)  # another replica, reading every time
    assert await other.get(cookie, now=2000.0) is not None
    await store.drop(cookie, now=2000.0)  # signed out on the first: the second finds no row
    assert await other.get(cookie, now=2000.0) is None


async def test_the_token_is_not_stored_in_clear_and_sign_out_deletes_the_row(engine: AsyncEngine) -> None:
    store = SessionStore(engine, SECRET, lifetime=3600)
    cookie, _ = await store.create("maya", "ghu_secret", {"acme/churn": "read"}, now=1000.0)
    async with engine.connect() as conn:
        row = (await conn.execute(select(UiSession))).one()
    assert "ghu_secret" not in row.token and "ghu_secret" not in str(tuple(row))
    assert cookie.partition(".")[0] not in row.id  # the row is keyed by the id's hash, not the id
    await store.drop(cookie, now=2000.0)
    assert await store.get(cookie, now=2000.0) is None
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(UiSession)) == 0
    # an expired session's row goes when the next one is created
    await store.create("maya", "ghu_1", {}, now=1000.0)
    await store.create("rita", "ghu_2", {}, now=9000.0)
    async with engine.connect() as conn:
        assert (await conn.execute(select(UiSession.login))).scalars().all() == ["rita"]


async def test_a_session_survives_a_restart_of_the_bot(tmp_path: Path) -> None:
    """Signed in on one dashboard process; a new process (new engine, same database and secret) lets the
    cookie in, as another replica would."""
    url = f"sqlite+aiosqlite:///{tmp_path}/ui.db"

    async def dashboard(engine: AsyncEngine, http: aiohttp.ClientSession) -> Dashboard:
        return Dashboard(
            engine=engine,
            queue=JobQueue(engine),
            github=None,  # type: ignore[arg-type]  # no action here
            oauth=OAuthClient("id", "secret", "http://127.0.0.1:9", "http://127.0.0.1:9", http),
            sessions=SessionStore(engine, SECRET, 3600),
            refresh_seconds=1e9,
        )

    first = make_engine(url)
    await migrate(first)
    async with aiohttp.ClientSession() as http:
        before = await dashboard(first, http)
        cookie, _ = await before.sessions.create("maya", "ghu_x", {"acme/churn": "read"}, before.clock())
        await first.dispose()

        second = make_engine(url)
        app = web.Application()
        app.add_subapp("/ui/", (await dashboard(second, http)).app())
        async with TestClient(TestServer(app)) as client:
            client.session.cookie_jar.update_cookies({COOKIE: cookie})
            page = await client.get("/ui/health", allow_redirects=False)
            assert page.status == 200 and "Signed in as <strong>maya</strong>" in await page.text()
        await second.dispose()


def test_signing_and_csrf_comparison() -> None:
    signed = sign(SECRET, "state.2000")
    assert unsign(SECRET, signed, now=1999) == "state"
    assert unsign(SECRET, signed, now=2001) is None
    assert unsign(SECRET, "state.2000", now=1) is None
    assert same("a", "a") and not same("a", "b") and not same(None, None) and not same("", "")
