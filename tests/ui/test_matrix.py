"""The matrix and its live fragment over a real SQLite database, through the dashboard's HTTP face: the
cached rows follow every change of the deployments table (a rollout, a new version, the guard's health),
and a reader's matrix, fragment and JSON hold only the repositories they can read."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.store import deployments
from bot.store.db import make_engine, migrate
from bot.store.queue import JobQueue
from bot.store.reviews import ReviewedModel, ReviewRecord, save_review
from bot.ui.app import Dashboard
from bot.ui.github import OAuthClient
from bot.ui.session import COOKIE, SessionStore


def row(repo: str, env: str, version: str, state: str = "deployed") -> dict[str, Any]:
    return {
        "repo": repo,
        "environment": env,
        "model": "churn",
        "version": version,
        "deploy_repo": "acme/deploy",
        "state": state,
        "sha256": version * 8,
    }


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


async def record(engine: Any, **values: Any) -> int:
    async with engine.begin() as conn:
        return await deployments.record(conn, **values)


async def cells(client: TestClient[Any, Any]) -> str:
    answer = await client.get("/ui/")
    assert answer.status == 200
    return await answer.text()


async def test_the_cached_matrix_follows_rollouts_new_versions_and_health(ui: Any) -> None:
    client, engine, _ = ui
    await record(engine, **row("acme/churn", "staging", "aaaaaaa"))
    await record(engine, **row("acme/secret", "staging", "fffffff"))
    first = await cells(client)
    assert "aaaaaaa" in first and "state-live" in first and "fffffff" not in first

    await record(engine, **row("acme/churn", "staging", "bbbbbbb", state="pending"))  # a proposal under way
    rolling = await cells(client)
    assert "state-rolling" in rolling and "aaaaaaa" in rolling  # what runs is still the old version

    digest = "sha256:" + "d" * 64
    await save_review(  # the review published the variant: the matrix shows that artifact for the version
        engine,
        repo="acme/churn",
        number=5,
        head_sha="h" * 40,
        base_sha="b" * 40,
        conclusion="success",
        record=ReviewRecord(
            models={"churn": ReviewedModel("compared", artifact=f"127.0.0.1:5000/acme/churn@{digest}")}
        ),
    )
    new = await record(engine, **row("acme/churn", "staging", "bbbbbbb"), source_pr=5)
    await record(engine, **row("acme/churn", "production", "aaaaaaa"))
    live = await cells(client)
    assert "bbbbbbb" in live and "aaaaaaa" in live and live.count("state-live") == 2
    assert f'title="127.0.0.1:5000/acme/churn@{digest}">{digest[:19]}<' in live

    stamp = live.split('data-stamp="')[1].split('"')[0]
    async with engine.begin() as conn:
        await deployments.set_health(conn, new, "degraded")
    fragment = await client.get("/ui/fragments/matrix", params={"after": stamp})
    text = await fragment.text()
    assert fragment.status == 200
    assert 'id="cell-acme_churn-staging-churn"' in text and "hx-swap-oob" in text and "degraded" in text
    assert "cell-acme_churn-production-churn" not in text  # only what changed
    quiet = await client.get("/ui/fragments/matrix", params={"after": text.split('data-stamp="')[1].split('"')[0]})
    assert "hx-swap-oob" not in await quiet.text()

    api = await (await client.get("/ui/api/deployments")).json()
    assert {d["repo"] for d in api["deployments"]} == {"acme/churn"}
    assert "degraded" in await cells(client)


async def test_without_a_session_nothing_is_shown(ui: Any) -> None:
    client, engine, _ = ui
    await record(engine, **row("acme/churn", "staging", "aaaaaaa"))
    client.session.cookie_jar.clear()
    page = await client.get("/ui/", allow_redirects=False)
    fragment = await client.get("/ui/fragments/matrix", params={"after": "2000-01-01T00:00:00"})
    assert page.status == 303 and page.headers["Location"] == "/ui/login"
    assert fragment.status == 401 and "aaaaaaa" not in await fragment.text()


async def test_the_timeline_says_what_wrote_each_row_who_and_why(ui: Any) -> None:
    client, engine, _ = ui
    await record(engine, **row("acme/churn", "staging", "aaaaaaa"), actor="maya", kind="deploy")
    await record(engine, **row("acme/churn", "production", "aaaaaaa"), actor="carol", kind="promote")
    await record(engine, **row("acme/churn", "production", "bbbbbbb"), actor="maya", kind="deploy")
    why = "rollback from bbbbbbb: error rate 7% > 5%"
    rolled_back = row("acme/churn", "production", "aaaaaaa")
    await record(engine, **rolled_back, actor="bot", kind="rollback", pinned=True, detail=why)
    async with engine.begin() as conn:
        await deployments.record_unpin(conn, **rolled_back, actor="alice", detail=f"unpinned; was: {why}")
    answer = await client.get("/ui/models/acme/churn/churn")
    assert answer.status == 200
    page = await answer.text()
    # Each timeline row, per environment (staging first: it was deployed to first), newest first: (what, who, why).
    cells = r'<span class="kind kind-(\w+)">\1</span>( · pinned)?[^<]*</td>\s*<td>([^<]*)</td>\s*<td>'
    found = re.findall(cells + r"(?:<a [^>]*>[^<]*</a>)? ?([^<]*)</td>", page)
    assert [(kind, bool(pinned), who, html.unescape(why)) for kind, pinned, who, why in found] == [
        ("deploy", False, "maya", ""),
        ("unpin", False, "alice", f"unpinned; was: {why}"),
        ("rollback", True, "bot", why),
        ("deploy", False, "maya", ""),
        ("promote", False, "carol", ""),
    ]
    assert "(promote, superseded)" in page and "(unpin, deployed)" in page  # the compare picker names them too
