"""The matrix and its live fragment over a real SQLite database, through the dashboard's HTTP face: the
cached rows follow every change of the deployments table (a rollout, a new version, the guard's health),
and a reader's matrix, fragment and JSON hold only the repositories they can read."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from bot.store import deployments
from bot.store.reviews import ReviewedModel, ReviewRecord, save_review
from bot.ui.matrix import Matrix


def row(repo: str, env: str, version: str, state: str = "deployed", model: str = "churn") -> dict[str, Any]:
    return {
        "repo": repo,
        "environment": env,
        "model": model,
        "version": version,
        "deploy_repo": "acme/deploy",
        "state": state,
        "sha256": version * 8,
    }


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
    after = text.split('data-stamp="')[1].split('"')[0]
    quiet = await client.get("/ui/fragments/matrix", params={"after": after})
    assert "hx-swap-oob" not in await quiet.text() and "HX-Refresh" not in quiet.headers
    await record(engine, **row("acme/secret", "canary", "9999999"))  # a new target the reader cannot see
    hidden = await client.get("/ui/fragments/matrix", params={"after": after})
    assert "9999999" not in await hidden.text() and "HX-Refresh" not in hidden.headers
    await record(engine, **row("acme/churn", "canary", "ccccccc"))  # a new environment: the page has no slot
    reshaped = await client.get("/ui/fragments/matrix", params={"after": after})
    assert reshaped.headers.get("HX-Refresh") == "true" and "ccccccc" in await reshaped.text()

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


async def test_the_kept_matrix_reads_only_changed_targets_and_always_equals_a_fresh_read(engine: Any) -> None:
    """After every kind of change the kept cells render exactly what a matrix reading the whole table renders
    (on SQLite and PostgreSQL); only the first look and a deleted row read the whole table."""
    kept = Matrix(engine, stamp_ttl=0.0)
    mine, both = ["acme/churn"], ["acme/churn", "acme/other"]

    async def same_as_a_fresh_read() -> str:
        await kept.refresh()
        fresh = Matrix(engine, stamp_ttl=0.0)
        await fresh.refresh()
        for repos in (mine, both):
            assert kept.table(repos) == fresh.table(repos)
            assert kept.json(repos) == fresh.json(repos)
        return str(kept.table(mine))

    staging = await record(engine, **row("acme/churn", "staging", "aaaaaaa"))
    production = await record(engine, **row("acme/churn", "production", "aaaaaaa"))
    await record(engine, **row("acme/other", "staging", "eeeeeee"))
    page = await same_as_a_fresh_read()
    assert page.count("state-live") == 2 and "eeeeeee" not in page and kept.reloads == 1
    seen = kept.last_change
    assert seen is not None

    async with engine.begin() as conn:  # a changed row: the guard's verdict
        await deployments.set_health(conn, staging, "degraded")
    assert "health-degraded" in await same_as_a_fresh_read()
    assert [c.id for c in kept.changed(both, seen)] == ["cell-acme_churn-staging-churn"]
    assert not kept.reshaped(both, seen)

    # a writer that committed late: its row's timestamp is older than the stamp a page was given already
    given = kept.last_change
    assert given is not None
    async with engine.begin() as conn:
        await conn.execute(
            deployments.DEPLOYMENTS.update()
            .where(deployments.DEPLOYMENTS.c.id == production)
            .values(health="inconclusive", updated_at=given - timedelta(seconds=1))
        )
    assert "health-inconclusive" in await same_as_a_fresh_read()
    assert [c.id for c in kept.changed(both, given)] == ["cell-acme_churn-production-churn"]

    await record(engine, **row("acme/churn", "canary", "ccccccc"))  # a new environment
    await record(engine, **row("acme/churn", "staging", "ddddddd", model="fraud"))  # a new model
    page = await same_as_a_fresh_read()
    assert '<th scope="col">canary</th>' in page and ">fraud</a>" in page
    assert kept.reshaped(mine, seen) and not kept.reshaped(["acme/other"], seen)

    # superseded: a proposal shows as rolling over the running version, then its merge replaces it
    await record(engine, **row("acme/churn", "staging", "bbbbbbb", state="pending"))
    page = await same_as_a_fresh_read()
    assert "state-rolling" in page and ">aaaaaaa<" in page
    await record(engine, **row("acme/churn", "staging", "bbbbbbb"))
    page = await same_as_a_fresh_read()
    assert ">bbbbbbb<" in page and ">aaaaaaa<" in page  # staging runs bbbbbbb; production still aaaaaaa
    assert kept.reloads == 1  # every change so far was read incrementally

    # a deleted row (an operator's hand; the bot deletes none): the cell goes back to the row before it
    newest = await record(engine, **row("acme/churn", "production", "fffffff"))
    assert ">fffffff<" in await same_as_a_fresh_read()
    seen_fffffff = kept.last_change
    assert seen_fffffff is not None
    async with engine.begin() as conn:
        await conn.execute(deployments.DEPLOYMENTS.delete().where(deployments.DEPLOYMENTS.c.id == newest))
    assert ">fffffff<" not in await same_as_a_fresh_read() and kept.reloads == 2
    # a page from before the delete loads again (its cell now shows an older row), once
    assert kept.reshaped(mine, seen_fffffff) and not kept.reshaped(["acme/other"], seen_fffffff)
    assert kept.last_change is not None and not kept.reshaped(mine, kept.last_change)

    if engine.dialect.name != "sqlite":  # PostgreSQL's sequences never hand out an id twice
        return
    # SQLite hands a deleted highest id to the next row: here another target's, in the same look
    newest = await record(engine, **row("acme/churn", "production", "1111111"))
    assert ">1111111<" in await same_as_a_fresh_read()
    async with engine.begin() as conn:
        await conn.execute(deployments.DEPLOYMENTS.delete().where(deployments.DEPLOYMENTS.c.id == newest))
    assert await record(engine, **row("acme/other", "canary", "2222222")) == newest
    page = await same_as_a_fresh_read()
    assert ">1111111<" not in page and kept.reloads == 3
