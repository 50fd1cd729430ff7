"""The timeline's values diff is the diff of the values files the bot committed: three real merges deploy
churn to staging through the bot and devhub (a person edits the values file between the second and the
third); the dashboard reads each file back at its deploy commit through the contents API (contract-checked),
keeps it, and shows the changed lines, escaped. A file that cannot be read is a sentence on the page."""

from __future__ import annotations

import asyncio
import hashlib
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest

from bot.store import deployments
from bot.store.reviews import ReviewedModel, ReviewRecord, save_review
from devkit.devhub import DevHub, start
from devkit.harness import RunningBot, bot_running
from tests.fixtures.bot import settle_jobs
from tests.fixtures.devhub import WEBHOOK_SECRET, assert_contract_kept, shared_key
from tests.ui.signin import browser_session, dashboard_settings, sign_in

pytestmark = pytest.mark.slow

MODEL, DEPLOY = "acme/churn", "acme/churn-deploy"
UNSERVED = "acme/old-deploy"  # a deploy repository the App is not installed on
VALUES = "environments/staging/churn/values.yaml"
CONFIG = f"""\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
  staging: {{auto: true}}
deploy: {{repository: {DEPLOY}}}
"""
SCRIPT = '<script>alert("values")</script>'


@dataclass
class World:
    hub: DevHub
    bot: RunningBot
    rows: list[Any]  # churn's staging rows, oldest first: v1, v2, v3


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def merge(hub: DevHub, bot: RunningBot, branch: str, content: bytes) -> None:
    """A PR changing the model merges; its review (stored as the sandbox would) passed, so staging deploys."""
    await hub.push(MODEL, branch, {"models/churn.onnx": content})
    number = await hub.open_pr(MODEL, branch)
    pull = hub.pull(MODEL, number)
    churn = ReviewedModel(
        status="compared",
        metrics={"f1": 0.8},
        gates_passed=True,
        model_path="models/churn.onnx",
        model_sha256=sha(content),
    )
    await save_review(
        bot.service.services.engine,
        repo=MODEL,
        number=number,
        head_sha=pull.head_sha,
        base_sha=pull.base_sha,
        conclusion="success",
        record=ReviewRecord(models={"churn": churn}),
    )
    await hub.merge_pr(MODEL, number, user="maya")
    await asyncio.sleep(0.2)
    await settle_jobs(bot.service.services.engine, horizon=10, timeout=60)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("values")
    running = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)
    hub = running.hub
    app_id, key = await hub.create_app()

    async def no_review(job: Any) -> None:
        """Reviews need a sandbox; the test stores their results itself."""

    try:
        async with bot_running(
            running,
            tmp,
            app=(app_id, key),
            **dashboard_settings(hub, app_id, running.base_url),
        ) as bot:
            cast(dict[str, Any], bot.service.workers.runners)["review"] = no_review
            await hub.create_repo(DEPLOY, {"README.md": "# deploy\n"}, private=True)
            files = {"models/churn.onnx": b"v0", "data/eval.csv": "a,label\n1,0\n", ".modelship.yml": CONFIG}
            await hub.create_repo(MODEL, files, private=True)
            await hub.install("acme", [MODEL, DEPLOY])
            await hub.create_repo(UNSERVED, {"README.md": "# old\n"}, private=True)
            hub.set_permission(UNSERVED, "maya", "read")
            hub.set_permission(MODEL, "maya", "maintain")
            hub.set_permission(DEPLOY, "maya", "read")
            hub.set_permission(MODEL, "rita", "read")  # the model repository only: not its deploy repository
            await merge(hub, bot, "v1", b"churn v1")
            await merge(hub, bot, "v2", b"churn v2")
            # a person adds a comment (repository content: untrusted) before the next deploy keeps it
            text = (hub.git.read(DEPLOY, "refs/heads/main", VALUES) or b"").decode()
            await hub.push(DEPLOY, "main", {VALUES: f"# {SCRIPT}\n{text}"}, author="maya")
            await merge(hub, bot, "v3", b"churn v3")
            async with bot.service.services.engine.connect() as conn:
                rows = [r for r in await deployments.of_model(conn, MODEL, "churn") if r["environment"] == "staging"]
            assert [r["deploy_commit"] is not None and r["values_path"] == VALUES for r in rows] == [True] * 3
            yield World(hub, bot, rows)
    finally:
        await running.stop()
    assert_contract_kept(hub)


def compare_url(world: World, a: int, b: int) -> str:
    return f"{world.bot.url}/ui/models/{MODEL}/churn?a={a}&b={b}"


def file_diff(page: str) -> list[str]:
    """The unified diff's lines, as text (unescaped)."""
    block = re.search(r'<pre class="values-file-diff"[^>]*>(.*?)</pre>', page, re.S)
    assert block is not None, page
    return [html.unescape(line) for line in re.findall(r'<span class="line [a-z]+">(.*?)</span>', block.group(1))]


def contents_reads(hub: DevHub) -> int:
    return sum(1 for r in hub.faults.log if "/contents/environments/" in r.path)


async def test_the_diff_shows_the_lines_the_deploys_changed_in_the_values_files(world: World) -> None:
    v1, v2, _ = world.rows
    async with browser_session() as http:
        await sign_in(http, world.bot.url, "maya")
        before = contents_reads(world.hub)
        async with http.get(compare_url(world, v1["id"], v2["id"])) as answer:
            assert answer.status == 200
            page = await answer.text()
        lines = file_diff(page)
        assert f"--- {DEPLOY}@{v1['deploy_commit'][:7]}:{VALUES}" in lines
        assert f"-  sha256: {sha(b'churn v1')}" in lines and f"+  sha256: {sha(b'churn v2')}" in lines
        assert f"-  revision: {v1['version']}" in lines and f"+  revision: {v2['version']}" in lines
        assert not any(line.startswith(("+  name:", "-  name:")) for line in lines)  # unchanged lines are context
        keys = re.search(r'<table class="diff values-diff">(.*?)</table>', page, re.S)
        assert keys is not None
        assert f'<th scope="row">model.sha256</th><td class="old">{sha(b"churn v1")}</td>' in keys.group(1)
        assert "model.name" not in keys.group(1)
        assert contents_reads(world.hub) == before + 2  # one read per file, at its commit

        async with http.get(compare_url(world, v1["id"], v2["id"])) as again:
            assert again.status == 200 and file_diff(await again.text()) == lines
        assert contents_reads(world.hub) == before + 2  # commits never change: kept, not read again


async def test_what_a_person_wrote_into_the_values_is_shown_escaped(world: World) -> None:
    _, v2, v3 = world.rows
    async with browser_session() as http:
        await sign_in(http, world.bot.url, "maya")
        async with http.get(compare_url(world, v2["id"], v3["id"])) as answer:
            page = await answer.text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;values&#34;)&lt;/script&gt;" in page
    lines = file_diff(page)
    assert f"+# {SCRIPT}" in lines and f"+  sha256: {sha(b'churn v3')}" in lines


async def test_a_file_that_cannot_be_read_is_said_instead_of_an_error(world: World) -> None:
    v1, v2, _ = world.rows
    engine = world.bot.service.services.engine
    common = {k: v2[k] for k in ("repo", "environment", "model", "version", "deploy_repo", "sha256")}
    async with engine.begin() as conn:
        # the file is not at that commit (deleted, moved, or the commit is not this repository's)
        moved = "environments/gone/values.yaml"
        gone = await deployments.insert(
            conn, **common, deploy_commit=v1["deploy_commit"], values_path=moved, state="failed"
        )
        # a protected environment's proposal: its deploy PR is not merged, there is no commit yet
        pending = await deployments.insert(conn, **common, deploy_pr=9, values_path=VALUES, state="pending")
        # a deploy repository maya may read but the App is not installed on (any more)
        elsewhere = {**common, "deploy_repo": UNSERVED}
        unserved = await deployments.insert(
            conn, **elsewhere, deploy_commit=v1["deploy_commit"], values_path=VALUES, state="failed"
        )
    async with browser_session() as http:
        await sign_in(http, world.bot.url, "maya")
        for other, said in (
            (gone, f"environments/gone/values.yaml is not in {DEPLOY} at {v1['deploy_commit'][:7]}"),
            (pending, f"the deploy pull request {DEPLOY}#9 is not merged"),
            (unserved, f"The GitHub App is not installed on {UNSERVED}: it cannot read the file."),
        ):
            async with http.get(compare_url(world, v1["id"], other)) as answer:
                assert answer.status == 200
                page = html.unescape(await answer.text())
            assert said in page and 'class="values-file-diff"' not in page, said
            assert "metrics-diff" in page  # the rest of the comparison is still there


async def test_a_user_who_cannot_read_the_deploy_repository_sees_no_values(world: World) -> None:
    v1, v2, _ = world.rows
    async with browser_session() as http:
        await sign_in(http, world.bot.url, "rita")
        async with http.get(compare_url(world, v1["id"], v2["id"])) as answer:
            assert answer.status == 200
            page = html.unescape(await answer.text())
    assert f"The values live in {DEPLOY}, which your GitHub account cannot read." in page
    assert 'class="values-file-diff"' not in page and 'class="diff values-diff"' not in page
