"""The dashboard in a real browser: Debian's chromium (headless, through Playwright) against the real bot
and devhub. Two PRs merge and deploy to two environments, a third repository the reader cannot read
deploys too; a guard incident and a parked job are recorded. Then people sign in with GitHub and look.

Screenshots of every page land in $MODELSHIP_TEST_ARTIFACTS (default /tmp/modelship-test-artifacts).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from pydantic import SecretStr
from sqlalchemy import update

from bot.chatops import store as chatops_store
from bot.chatops.ratelimit import RateLimiter
from bot.guard import store as guard_store
from bot.store import deployments
from bot.store.models import Job
from bot.store.queue import ClaimedJob, enqueue, job_row
from bot.store.reviews import ReviewedModel, ReviewRecord, save_review
from devkit.devhub import DevHub, start
from devkit.harness import RunningBot, bot_running
from tests.fixtures.bot import settle_jobs
from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.10.3.min.js"
ARTIFACTS = Path(os.environ.get("MODELSHIP_TEST_ARTIFACTS", "/tmp/modelship-test-artifacts")) / "ui"
MODEL, HIDDEN = "acme/churn", "acme/secret-models"
CONFIG = """\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
  staging: {{auto: true}}
  production: {{auto: true}}
deploy: {{repository: {deploy}}}
"""
EVIDENCE = """\
**churn** version `{bad}` in **staging** is degraded.

| Check | Window | Observed | Threshold | Breaches in a row |
| --- | --- | --- | --- | --- |
| `error_rate` | 5s | 0.31 | ≤ 0.02 | 3 of 3 |

<details><summary><code>error_rate</code> query and recent values</summary>

```promql
sum(rate(model_errors_total{{model="churn"}}[5s])) / sum(rate(model_requests_total{{model="churn"}}[5s]))
```

```mermaid
xychart-beta
    title "error_rate (≤ 0.02), UTC"
    x-axis ["10:00:01", "10:00:02", "10:00:03", "10:00:04"]
    y-axis "error_rate" 0 --> 0.341
    line [0.01, 0.29, 0.3, 0.31]
    line [0.02, 0.02, 0.02, 0.02]
```
</details>"""


@dataclass
class World:
    hub: DevHub
    bot: RunningBot
    browser: Browser
    versions: list[int]  # deployments ids of churn in staging, oldest first
    incident_id: int
    parked_job: int


OPTIMIZATION = {
    "models": [
        {
            "name": "churn",
            "task": "classification",
            "estimator": "RandomForestClassifier",
            "variants": [
                {"name": "original", "status": "ok", "size_bytes": 2_400_000, "metric_delta": {"accuracy": 0.0}},
                {
                    "name": "int8_dynamic",
                    "status": "ok",
                    "size_bytes": 600_000,
                    "latency": {"p95_ms": 0.8, "p95_ci_ms": {"low": 0.7, "high": 0.9}, "batch_rows_per_s": 90_000},
                    "metric_delta": {"accuracy": -0.002},
                    "parity": {"holds": True, "label_agreement": 0.995},
                },
                {"name": "onnx_fp32", "status": "not_applicable", "reason": "no converter for this estimator"},
            ],
            "chosen": {"variant": "int8_dynamic", "sha256": "c" * 64, "reason": "smallest within tolerance"},
        }
    ]
}


def _comparison() -> dict[str, Any]:
    """What a review of v1 against v2 compares: the real statistics (paired bootstrap, gates) over
    evaluation documents as the sandbox writes them, and its optimization report."""
    import numpy as np

    from bot.review.compare import compare_review
    from bot.review.stored import report_to_json
    from tests.review.evaluations import evaluation_doc, policy

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    base_pred = np.where(rng.random(300) < 0.8, y, 1 - y)
    head_pred = np.where(rng.random(300) < 0.9, y, 1 - y)
    spec = policy(metrics=["accuracy", "f1"], gates={"accuracy": {"min": 0.95}, "f1": {"min_delta": -0.01}})
    comparison = compare_review(
        [spec],
        {"churn": evaluation_doc("churn", y, base_pred, metrics=("accuracy", "f1"))},
        {"churn": evaluation_doc("churn", y, head_pred, metrics=("accuracy", "f1"))},
        resamples=200,
    )
    return report_to_json(comparison, OPTIMIZATION)


async def _merge(hub: DevHub, bot: RunningBot, repo: str, branch: str, content: bytes, f1: float) -> None:
    await hub.push(repo, branch, {"models/churn.onnx": content})
    number = await hub.open_pr(repo, branch)
    pull = hub.pull(repo, number)
    churn = ReviewedModel(
        status="compared",
        metrics={"f1": f1, "accuracy": f1 + 0.05},
        gates_passed=True,
        model_path="models/churn.onnx",
        model_sha256=hashlib.sha256(content).hexdigest(),
    )
    await save_review(
        bot.service.services.engine,
        repo=repo,
        number=number,
        head_sha=pull.head_sha,
        base_sha=pull.base_sha,
        conclusion="success",
        record=ReviewRecord(models={"churn": churn}),
        report=_comparison() if branch == "v2" else None,
    )
    await hub.merge_pr(repo, number, user="maya")
    await asyncio.sleep(0.2)
    await settle_jobs(bot.service.services.engine, horizon=10, timeout=60)


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("ui")
    running = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)
    hub = running.hub
    app_id, key = await hub.create_app()
    client_id, client_secret = hub.oauth_client(app_id)

    async def no_review(job: ClaimedJob) -> None:
        """Reviews need a sandbox; the test stores their results itself."""

    async def quick(job: ClaimedJob) -> None:
        """The parked job's work: succeeds when retried."""

    try:
        async with (
            bot_running(
                running,
                tmp,
                app=(app_id, key),
                extra_runners={"quick": quick},
                ui="on",
                ui_client_id=client_id,
                ui_client_secret=SecretStr(client_secret),
                ui_session_secret=SecretStr("s" * 48),
                github_web_url=running.base_url,
            ) as bot,
            async_playwright() as playwright,
        ):
            cast(dict[str, Any], bot.service.workers.runners)["review"] = no_review
            bot.service.services.limiter = RateLimiter(capacity=10_000, per_second=1_000)
            for repo in (MODEL, HIDDEN):
                deploy = f"{repo}-deploy"
                await hub.create_repo(deploy, {"README.md": "# deploy\n"}, private=True)
                await hub.create_repo(
                    repo,
                    {
                        "models/churn.onnx": b"v0",
                        "data/eval.csv": "a,label\n1,0\n",
                        ".modelship.yml": CONFIG.format(deploy=deploy),
                    },
                    private=True,
                )
                await hub.install("acme", [repo, deploy])
            for repo, user, role in ((MODEL, "maya", "maintain"), (MODEL, "rita", "read"), (HIDDEN, "maya", "none")):
                hub.set_permission(repo, user, role)
            hub.set_permission(HIDDEN, "olga", "admin")
            await _merge(hub, bot, MODEL, "v1", b"churn v1", 0.80)
            await _merge(hub, bot, MODEL, "v2", b"churn v2", 0.84)
            await _merge(hub, bot, HIDDEN, "s1", b"secret v1", 0.7)
            engine = bot.service.services.engine
            async with engine.begin() as conn:
                rows = [r for r in await deployments.of_model(conn, MODEL, "churn") if r["environment"] == "staging"]
                bad, good = rows[-1], rows[-2]
                await guard_store.create_incident(
                    conn,
                    {
                        "key": f"{MODEL}:staging:churn:{bad['version']}",
                        "repo": MODEL,
                        "environment": "staging",
                        "model": "churn",
                        "bad_version": bad["version"],
                        "bad_deployment_id": bad["id"],
                        "target_version": good["version"],
                        "target_deployment_id": good["id"],
                        "deploy_repo": f"{MODEL}-deploy",
                        "values_path": "environments/staging/churn/values.yaml",
                        "branch": "modelship/rollback/staging/churn",
                        "trigger": "guard",
                        "reason": "error_rate above its threshold 3 times in a row",
                        "evidence": EVIDENCE.format(bad=bad["version"]),
                        "state": "merged",
                        "pr_number": 7,
                        "pr_url": f"{running.base_url}/{MODEL}-deploy/pull/7",
                    },
                )
                incident = await guard_store.incident_by_key(conn, f"{MODEL}:staging:churn:{bad['version']}")
                await enqueue(conn, [job_row("quick", f"{MODEL}#3:quick", max_attempts=1)])
            async with engine.begin() as conn:
                parked = await conn.scalar(
                    update(Job)
                    .where(Job.kind == "quick")
                    .values(state="parked", attempts=1, last_error="TimeoutError: the registry did not answer")
                    .returning(Job.id)
                )
            assert incident is not None and parked is not None
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            print(f"\nscreenshots: {ARTIFACTS}")
            yield World(hub, bot, browser, [r["id"] for r in rows], incident.id, int(parked))
            await browser.close()
    finally:
        await running.stop()


async def signed_in(world: World, login: str, *, javascript: bool = True) -> tuple[BrowserContext, Page]:
    """A new browser that signs in through devhub's authorize page as ``login``."""
    context = await world.browser.new_context(java_script_enabled=javascript, bypass_csp=True)
    page = await context.new_page()
    await page.goto(f"{world.bot.url}/ui/")
    assert page.url.endswith("/ui/login")
    await page.get_by_role("link", name="Sign in with GitHub").click()
    await page.get_by_role("button", name=f"Sign in as {login}").click()
    await expect(page.get_by_text(f"Signed in as {login}")).to_be_visible()
    return context, page


async def shoot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def accessible(page: Page) -> None:
    """axe-core (vendored) finds no serious or critical violation on the page."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => (await axe.run(document)).violations.map(v => [v.id, v.impact])")
    assert [v for v in result if v[1] in ("serious", "critical")] == []


async def test_sign_in_and_the_matrix_after_the_deploys_updates_live(world: World) -> None:
    context, page = await signed_in(world, "maya")
    cookie = next(c for c in await context.cookies() if c["name"] == "modelship_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    assert "ghu_" not in cookie["value"] and "ghu_" not in await page.content()

    matrix = page.get_by_role("table")
    await expect(matrix.get_by_role("columnheader", name="staging")).to_be_visible()
    await expect(matrix.get_by_role("columnheader", name="production")).to_be_visible()
    cells = page.locator(".cell")
    await expect(cells).to_have_count(2)
    text = await matrix.inner_text()
    assert text.count("live") == 2 and "sha256:" + hashlib.sha256(b"churn v2").hexdigest()[:12] in text
    assert HIDDEN not in await page.content()
    await accessible(page)
    await shoot(page, "matrix")

    # the guard marks staging degraded: the live fragment swaps the cell in without a reload
    async with world.bot.service.services.engine.begin() as conn:
        await deployments.set_health(conn, world.versions[-1], "degraded")
    staging = page.locator("#cell-acme_churn-staging-churn")
    await expect(staging.locator(".health-degraded")).to_have_text("degraded", timeout=10_000)
    await shoot(page, "matrix-live")
    await context.close()


async def test_timeline_diff_between_two_deployed_versions(world: World) -> None:
    context, page = await signed_in(world, "maya")
    await page.get_by_role("link", name="churn").first.click()
    await expect(page.get_by_role("heading", name="staging")).to_be_visible()
    await page.get_by_label("From").select_option(str(world.versions[0]))
    await page.get_by_label("To").select_option(str(world.versions[1]))
    await page.get_by_role("button", name="Compare").click()
    values = page.locator("table.values-diff")
    await expect(values.get_by_role("rowheader", name="version")).to_be_visible()
    assert hashlib.sha256(b"churn v1").hexdigest() in await values.inner_text()
    metrics = await page.locator("table.metrics-diff").inner_text()
    assert re.search(r"f1\s+0\.8\s+0\.84\s+\+0\.04", metrics), metrics
    await accessible(page)
    await shoot(page, "timeline-diff")
    await page.get_by_role("link", name="#2").first.click()
    await expect(page.get_by_role("heading", name=f"{MODEL}#2")).to_be_visible()
    # the review as the PR comment shows it: metrics with their intervals, gate rows, the optimization table
    metrics = page.get_by_role("table", name="churn: metrics, base against head")
    accuracy = await metrics.get_by_role("row", name=re.compile("^accuracy")).inner_text()
    assert re.search(r"\[[+−]0\.\d{4}, [+−]0\.\d{4}\]", accuracy) and "better" in accuracy, accuracy
    gates = page.get_by_role("table", name="churn: gates")
    assert "≥ 0.95" in await gates.get_by_role("row", name=re.compile("^accuracy")).inner_text()
    assert "fail" in await gates.get_by_role("row", name=re.compile("^accuracy")).inner_text()
    assert "Δ ≥ -0.01" in await gates.get_by_role("row", name=re.compile("^f1")).inner_text()
    optimization = page.get_by_role("table", name="churn: optimization (RandomForestClassifier)")
    int8 = await optimization.get_by_role("row", name=re.compile("^int8 dynamic")).inner_text()
    assert "585.9 KB" in int8 and "0.8 ms (0.7–0.9)" in int8 and "✓ chosen" in int8, int8
    onnx = await optimization.get_by_role("row", name=re.compile("^ONNX fp32")).inner_text()
    assert "not applicable: no converter" in onnx
    await accessible(page)
    await shoot(page, "pull")
    await context.close()


async def test_an_incident_with_its_chart(world: World) -> None:
    context, page = await signed_in(world, "maya")
    await page.get_by_role("link", name="Incidents").click()
    await page.get_by_role("link", name=f"#{world.incident_id}").click()
    chart = page.get_by_role("img", name=re.compile("error_rate"))
    await expect(chart).to_be_visible()
    assert await chart.locator("polyline.values").count() == 1 and await chart.locator("line.threshold").count() == 1
    body = await page.inner_text("main")
    assert "model_errors_total" in body and "0.31" in body and "≤ 0.02" in body
    await expect(page.get_by_role("link", name=f"{MODEL}-deploy#7")).to_be_visible()
    await accessible(page)
    await shoot(page, "incident")
    await context.close()


async def test_a_parked_job_is_refused_to_a_reader_and_retried_by_a_maintainer(world: World) -> None:
    reader, page = await signed_in(world, "rita")
    await page.get_by_role("link", name="Jobs").click()
    await shoot(page, "jobs")
    await accessible(page)
    await page.get_by_role("button", name=f"Retry job {world.parked_job}").click()
    await expect(page.get_by_role("status")).to_contain_text("needs write access; you have read access")
    job = await world.bot.service.services.queue.get(world.parked_job)
    assert job is not None and job["state"] == "parked"
    await reader.close()

    maintainer, page = await signed_in(world, "maya")
    await page.goto(f"{world.bot.url}/ui/jobs")
    await page.get_by_role("button", name=f"Retry job {world.parked_job}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"retry job #{world.parked_job}")
    await settle_jobs(world.bot.service.services.engine, horizon=5, timeout=30)
    job = await world.bot.service.services.queue.get(world.parked_job)
    assert job is not None and job["state"] == "done"

    await page.goto(f"{world.bot.url}/ui/audit?command=retry")
    audit = await page.inner_text("table.audit")
    assert "rita" in audit and "denied: `retry` changes things" in audit and "refused" in audit
    assert "maya" in audit and f"retry job #{world.parked_job}" in audit
    await accessible(page)
    await shoot(page, "audit")
    await page.goto(f"{world.bot.url}/ui/health")
    await expect(page.get_by_role("heading", name="Health")).to_be_visible()
    await accessible(page)
    await shoot(page, "health")
    await maintainer.close()


async def test_a_form_without_its_csrf_token_is_refused(world: World) -> None:
    context, page = await signed_in(world, "maya")
    for form in ({}, {"csrf": "forged"}):
        answer = await page.request.post(f"{world.bot.url}/ui/jobs/{world.parked_job}/cancel", form=form)
        assert answer.status == 403 and "CSRF token missing or wrong" in await answer.text()
    job = await world.bot.service.services.queue.get(world.parked_job)
    assert job is not None and job["state"] != "cancelled"
    await context.close()


async def test_a_repository_the_user_cannot_read_is_nowhere(world: World) -> None:
    context, page = await signed_in(world, "maya")
    base = world.bot.url
    page_html = await page.content()
    fragment = await page.request.get(f"{base}/ui/fragments/matrix?after=2000-01-01T00:00:00%2B00:00")
    api = await (await page.request.get(f"{base}/ui/api/deployments")).json()
    direct = await page.request.get(f"{base}/ui/models/{HIDDEN}/churn")
    assert HIDDEN not in page_html
    assert fragment.status == 200 and "secret" not in await fragment.text() and "acme_churn" in await fragment.text()
    assert api["repositories"] == [MODEL] and {d["repo"] for d in api["deployments"]} == {MODEL}
    assert direct.status == 404
    await context.close()

    owner, page = await signed_in(world, "olga")  # who can read it sees it
    assert HIDDEN in await page.content()
    await owner.close()
    anonymous = await world.browser.new_context()
    answer = await anonymous.request.get(f"{base}/ui/api/deployments")
    assert answer.status == 401
    await anonymous.close()


async def test_pages_show_the_data_without_javascript(world: World) -> None:
    context, page = await signed_in(world, "maya", javascript=False)
    assert "live" in await page.inner_text("table")
    await page.goto(f"{world.bot.url}/ui/incidents/{world.incident_id}")
    assert await page.locator("svg polyline.values").count() == 1
    await shoot(page, "incident-no-js")
    await context.close()


async def test_hold_and_unpin_from_the_pr_page_are_refused_to_a_reader_and_run_for_a_maintainer(world: World) -> None:
    """The PR page's buttons run `/modelship hold` and `/modelship unpin <env>` as if commented on the PR:
    chat-ops' permission check, its command service and its audit log."""
    engine = world.bot.service.services.engine
    async with engine.begin() as conn:  # staging's running version pinned (as a rollback leaves it)
        await conn.execute(
            update(deployments.DEPLOYMENTS)
            .where(deployments.DEPLOYMENTS.c.id == world.versions[-1])
            .values(pinned=True, detail="rolled back")
        )
    pr = f"{world.bot.url}/ui/prs/{MODEL}/2"
    reader, page = await signed_in(world, "rita")
    await page.goto(pr)
    await page.get_by_role("button", name="Hold deploys of this PR").click()
    await expect(page.get_by_role("status")).to_contain_text("`hold` changes things, so it needs write access")
    await page.get_by_role("button", name="Unpin staging").click()
    await expect(page.get_by_role("status")).to_contain_text("`unpin` changes things, so it needs write access")
    async with engine.connect() as conn:
        assert await chatops_store.held(conn, MODEL, 2) is None
    await reader.close()

    maintainer, page = await signed_in(world, "maya")
    await page.goto(pr)
    await page.get_by_role("button", name="Hold deploys of this PR").click()
    await expect(page.get_by_role("status")).to_contain_text("/modelship hold: held")
    async with engine.connect() as conn:
        hold = await chatops_store.held(conn, MODEL, 2)
    assert hold is not None and hold.actor == "maya"
    await page.get_by_role("button", name="Lift the hold").click()
    await expect(page.get_by_role("status")).to_contain_text("/modelship unhold: unheld")
    await page.get_by_role("button", name="Unpin staging").click()
    await expect(page.get_by_role("status")).to_contain_text("/modelship unpin staging:")
    await accessible(page)
    await shoot(page, "pull-actions")
    async with engine.connect() as conn:
        entries = await chatops_store.recent(conn, MODEL, 2, limit=20)
    by = {(e.actor, e.command): e for e in entries}
    assert by[("rita", "hold")].decision.startswith("denied: `hold` changes things")
    assert by[("rita", "unpin")].decision.startswith("denied: `unpin` changes things")
    assert by[("maya", "hold")].decision == "allowed" and by[("maya", "unpin")].decision == "allowed"
    await maintainer.close()
