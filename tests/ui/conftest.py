"""The dashboard over a real SQLite database through its HTTP face, signed in as maya (reads acme/churn)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.store.db import make_engine, migrate
from bot.store.queue import JobQueue
from bot.ui.app import Dashboard
from bot.ui.github import OAuthClient
from bot.ui.session import COOKIE, SessionStore


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Any, str]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/ui.db")
    await migrate(engine)
    async with aiohttp.ClientSession() as http:
        sessions = SessionStore(engine, b"k" * 32, 3600)
        dashboard = Dashboard(
            engine=engine,
            queue=JobQueue(engine),
            github=None,  # type: ignore[arg-type]  # no action here
            oauth=OAuthClient("id", "secret", "http://127.0.0.1:9", "http://127.0.0.1:9", http),
            sessions=sessions,
            refresh_seconds=1e9,
            stamp_ttl=0.0,  # every request sees the table as it is (serve: changes show within a second)
        )
        cookie, _ = await sessions.create("maya", "ghu_x", {"acme/churn": "read"}, time.time())
        app = web.Application()
        app.add_subapp("/ui/", dashboard.app())
        async with TestClient(TestServer(app)) as client:
            client.session.cookie_jar.update_cookies({COOKIE: cookie})
            yield client, engine, cookie
    await engine.dispose()
