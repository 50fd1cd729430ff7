"""The dashboard in a real browser: Debian's chromium (headless, through Playwright) against the real bot
and devhub. Two PRs merge and deploy to two environments, a third repository the reader cannot read
deploys too. What the incident and jobs pages show is made by the bot itself: a model server serves the
version running in staging, the session's Prometheus scrapes it, and the guard opens a real rollback PR
once its error rate breaches the threshold; a fourth repository's deploy repository refuses every push,
so its deploy job fails and is parked. Then people sign in with GitHub and look.

Screenshots of every page land in $MODELSHIP_TEST_ARTIFACTS (default /tmp/modelship-test-artifacts).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from sqlalchemy import select, update

from bot.chatops import store as chatops_store
from bot.chatops.ratelimit import RateLimiter
from bot.guard import store as guard_store
from bot.guard.store import IncidentView
from bot.store import deployments
from bot.store.models import Job
from bot.store.queue import ClaimedJob
from bot.store.reviews import ReviewedModel, ReviewRecord, save_review
from devkit.devhub import DevHub, Fault, start
from devkit.guard_world import wait_until
from devkit.harness import RunningBot, bot_running
from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA
from devkit.traffic import traffic
from tests.fixtures.bot import settle_jobs
from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key
from tests.fixtures.model_servers import ModelServer
from tests.fixtures.prometheus import PrometheusServer
from tests.ui.signin import dashboard_settings

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe-core-4.10.3.min.js"
ARTIFACTS = Path(os.environ.get("MODELSHIP_TEST_ARTIFACTS", "/tmp/modelship-test-artifacts")) / "ui"
MODEL, HIDDEN, FRAUD = "acme/churn", "acme/secret-models", "acme/fraud"
THRESHOLD, FAILURE_LIMIT = 0.02, 3
ROLLBACK_BRANCH = "modelship/rollback/staging/churn"
# The guard watches staging of acme/churn only: error rate at most 2 %, checked every second.
GUARD = f"""\
    guard:
      interval: 1s
      initial_delay: 0s
      failure_limit: {FAILURE_LIMIT}
      auto_merge: false
      checks:
        - {{template: error_rate, max: {THRESHOLD}, window: 5s}}
"""
CONFIG = """\
version: 1
models:
  - name: {model}
    path: models/{model}.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
  staging:
    auto: true
    progress_deadline: 24h
{guard}  production: {{auto: true, progress_deadline: 24h}}
deploy: {{repository: {deploy}}}
"""
# Live tracking is on (the bot has a Prometheus): a deploy is live once a model server serves its file. Only
# churn's staging has one here; the long progress_deadline keeps the others committed instead of rolled back.


@dataclass
class World:
    hub: DevHub
    bot: RunningBot
    browser: Browser
    versions: list[int]  # deployments ids of churn in staging, oldest first
    parked_job: int  # acme/fraud's deploy job, parked after its deploy repository refused every push
    outage: Fault  # that refusal (devhub answers 503 to every push to acme/fraud-deploy)
    prometheus: PrometheusServer
    server: ModelServer  # serves the churn version running in staging, scraped by the session's Prometheus
    traffic: aiohttp.ClientSession
    served: str  # sha256 of v2's file, the one staging's model server serves
    hub_url: str  # devhub's web address (where a PR's html_url points)

    async def breach(self) -> None:
        """Half of staging's requests fail from now on (idempotent): the guard sees its error rate breach."""
        async with self.traffic.post(f"{self.server.url}/admin/faults", json={"error_rate": 0.5}) as answer:
            assert answer.status == 200

    async def incident(self) -> IncidentView:
        """The breach's incident, once the guard has opened its rollback PR on devhub."""
        await self.breach()

        async def opened() -> IncidentView | None:
            async with self.bot.service.services.engine.connect() as conn:
                found = await guard_store.incidents_of(conn, [MODEL])
            return found[0] if len(found) == 1 and found[0].pr_number is not None else None

        await wait_until(opened, 40)
        found = await opened()
        assert found is not None
        return found


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


async def _merge(
    hub: DevHub, bot: RunningBot, repo: str, branch: str, content: bytes, f1: float, model: str = "churn"
) -> None:
    await hub.push(repo, branch, {f"models/{model}.onnx": content})
    number = await hub.open_pr(repo, branch)
    pull = hub.pull(repo, number)
    reviewed = ReviewedModel(
        status="compared",
        metrics={"f1": f1, "accuracy": f1 + 0.05},
        gates_passed=True,
        model_path=f"models/{model}.onnx",
        model_sha256=hashlib.sha256(content).hexdigest(),
    )
    await save_review(
        bot.service.services.engine,
        repo=repo,
        number=number,
        head_sha=pull.head_sha,
        base_sha=pull.base_sha,
        conclusion="success",
        record=ReviewRecord(models={model: reviewed}),
        report=_comparison() if branch == "v2" else None,
    )
    await hub.merge_pr(repo, number, user="maya")
    await asyncio.sleep(0.2)
    await settle_jobs(bot.service.services.engine, horizon=10, timeout=60)


@pytest.fixture(scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory,
    prometheus: PrometheusServer,
    iris_model: tuple[Path, str],
    start_model_server: Callable[..., ModelServer],
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("ui")
    running = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)
    hub = running.hub
    app_id, key = await hub.create_app()

    async def no_review(job: ClaimedJob) -> None:
        """Reviews need a sandbox; the test stores their results itself."""

    server: ModelServer | None = None
    try:
        async with (
            bot_running(
                running,
                tmp,
                app=(app_id, key),
                **dashboard_settings(hub, app_id, running.base_url),
                prometheus_url=prometheus.url,
                guard_interval_seconds=1.0,
                live_interval_seconds=1.0,
            ) as bot,
            async_playwright() as playwright,
        ):
            cast(dict[str, Any], bot.service.workers.runners)["review"] = no_review
            bot.service.services.limiter = RateLimiter(capacity=10_000, per_second=1_000)
            for repo, model, guard in ((MODEL, "churn", GUARD), (HIDDEN, "churn", ""), (FRAUD, "fraud", "")):
                deploy = f"{repo}-deploy"
                await hub.create_repo(deploy, {"README.md": "# deploy\n"}, private=True)
                await hub.create_repo(
                    repo,
                    {
                        f"models/{model}.onnx": b"v0",
                        "data/eval.csv": "a,label\n1,0\n",
                        ".modelship.yml": CONFIG.format(model=model, guard=guard, deploy=deploy),
                    },
                    private=True,
                )
                await hub.install("acme", [repo, deploy])
            for repo, user, role in (
                (MODEL, "maya", "maintain"),
                (MODEL, "rita", "read"),
                (FRAUD, "maya", "maintain"),
                (FRAUD, "rita", "read"),
                (HIDDEN, "maya", "none"),
            ):
                hub.set_permission(repo, user, role)
            hub.set_permission(HIDDEN, "olga", "admin")
            hub.set_permission(f"{MODEL}-deploy", "maya", "read")  # the timeline's values files live there
            await _merge(hub, bot, MODEL, "v1", b"churn v1", 0.80)
            # v2 is a real ONNX model: the model server in staging loads and serves this very file
            await _merge(hub, bot, MODEL, "v2", iris_model[0].read_bytes(), 0.84)
            engine = bot.service.services.engine
            async with engine.connect() as conn:
                rows = [r for r in await deployments.of_model(conn, MODEL, "churn") if r["environment"] == "staging"]
            running_version = str(rows[-1]["version"])
            # The version running in staging, served and scraped (it starts while the other repositories merge).
            starting = asyncio.create_task(
                asyncio.to_thread(start_model_server, running_version, name="churn", env="staging")
            )
            await _merge(hub, bot, HIDDEN, "s1", b"secret v1", 0.7)
            # acme/fraud's deploy repository refuses every push: its deploy job gives up and is parked.
            outage = hub.faults.add(
                Fault("git_unavailable", count=100_000, path=rf"^/{FRAUD}-deploy\.git/git-receive-pack$", status=503)
            )
            await _merge(hub, bot, FRAUD, "f1", b"fraud v1", 0.9, model="fraud")
            async with engine.connect() as conn:
                parked = await conn.scalar(select(Job.id).where(Job.serial_key == f"{FRAUD}#1:deploy"))
            assert parked is not None
            server = await starting
            prometheus.add_target(server.address)
            await asyncio.to_thread(prometheus.wait_for, f'up{{instance="{server.address}"}} == 1', 30)
            # 5 requests a second: enough for a 5 s error-rate window, little CPU on a 2-core machine
            async with traffic([server.url], [IRIS_SETOSA, IRIS_VIRGINICA], every=0.2) as session:

                async def live_and_healthy() -> bool:
                    async with engine.connect() as conn:
                        row = await deployments.latest(conn, MODEL, "staging", "churn")
                    return row is not None and row.rollout == "live" and row.health == "healthy"

                # live tracking has seen the server serve v2's file, the guard has seen it serve well
                await wait_until(live_and_healthy, 40)
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
                yield World(
                    hub,
                    bot,
                    browser,
                    [r["id"] for r in rows],
                    int(parked),
                    outage,
                    prometheus,
                    server,
                    session,
                    iris_model[1],
                    running.base_url,
                )
                await browser.close()
    finally:
        if server is not None:
            prometheus.remove_target(server.address)
            await asyncio.to_thread(server.stop)
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
    churn = matrix.locator("tbody tr").filter(has_text=MODEL)
    await expect(churn.locator(".cell")).to_have_count(2)
    assert (await churn.inner_text()).count("sha256:" + world.served[:12]) == 2
    # staging's model server serves v2's file (live tracking says live) and serves it well (the guard says so);
    # nothing serves production in this world, so its deploy is committed and no more
    staging = page.locator("#cell-acme_churn-staging-churn")
    await expect(staging.locator(".badge")).to_have_text("live")
    await expect(staging.locator(".health-healthy")).to_have_text("healthy")
    await expect(page.locator("#cell-acme_churn-production-churn .badge")).to_have_text("committed")
    # acme/fraud's deploy never landed: both of its environments say so
    fraud = matrix.locator("tbody tr").filter(has_text=FRAUD)
    await expect(fraud.locator(".badge")).to_have_text(["failed", "failed"])
    assert HIDDEN not in await page.content()
    await accessible(page)
    await shoot(page, "matrix")

    # staging starts failing requests: the guard marks it degraded and the live fragment swaps the cell in
    await world.breach()
    await expect(staging.locator(".health-degraded")).to_have_text("degraded", timeout=20_000)
    await shoot(page, "matrix-live")
    await context.close()


async def test_timeline_diff_between_two_deployed_versions(world: World) -> None:
    context, page = await signed_in(world, "maya")
    await page.get_by_role("link", name="churn").first.click()
    await expect(page.get_by_role("heading", name="staging")).to_be_visible()
    await page.get_by_label("From").select_option(str(world.versions[0]))
    await page.get_by_label("To").select_option(str(world.versions[1]))
    await page.get_by_role("button", name="Compare").click()
    # the values files as committed to the deploy repository: the changed lines, and the changed keys
    lines = await page.locator("pre.values-file-diff").inner_text()
    assert "-  sha256: " + hashlib.sha256(b"churn v1").hexdigest() in lines
    assert "+  sha256: " + world.served in lines
    values = page.locator("table.values-diff")
    await expect(values.get_by_role("rowheader", name="model.sha256")).to_be_visible()
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


def _mermaid_values(markdown: str) -> list[float]:
    """The first line series of the first Mermaid chart: the values the guard charted."""
    found = re.search(r"```mermaid\n.*?^\s*line \[(.*?)\]", markdown, re.S | re.M)
    assert found is not None, markdown
    return [float(v) for v in found.group(1).split(",")]


async def test_an_incident_from_a_real_guard_run_with_its_chart(world: World) -> None:
    incident = await world.incident()
    # The rollback PR the guard opened on devhub, and the values it charted there
    pull = world.hub.pull(f"{MODEL}-deploy", int(incident.pr_number or 0))
    assert pull.state == "open" and pull.head_ref == ROLLBACK_BRANCH
    seen = _mermaid_values(pull.body or "")
    assert len(seen) >= FAILURE_LIMIT and all(v > THRESHOLD for v in seen[-FAILURE_LIMIT:]), seen

    context, page = await signed_in(world, "maya")
    await page.get_by_role("link", name="Incidents").click()
    row = page.locator("tbody tr").filter(has=page.get_by_role("link", name=f"#{incident.id}", exact=True))
    await expect(row.get_by_role("link", name=f"{MODEL}-deploy#{pull.number}")).to_be_visible()
    assert "staging" in await row.inner_text() and incident.bad_version[:7] in await row.inner_text()
    await accessible(page)
    await shoot(page, "incidents")
    await row.get_by_role("link", name=f"#{incident.id}", exact=True).click()

    heading = await page.locator("main p").first.inner_text()
    assert f"{incident.bad_version[:7]} is being rolled back to {incident.target_version[:7]}" in heading, heading
    # the chart holds exactly the values the guard saw, and the threshold
    chart = page.get_by_role("img", name=re.compile("error_rate"))
    await expect(chart).to_be_visible()
    assert await chart.locator("circle").count() == len(seen)
    points = await chart.locator("polyline.values").get_attribute("points")
    assert points is not None and len(points.split()) == len(seen)
    assert await chart.locator("line.threshold").count() == 1
    described = await chart.locator("desc").text_content()
    assert described == f"values {', '.join(f'{v:g}' for v in seen)}; threshold {THRESHOLD:g}"
    # values against the threshold, as the guard judged them
    evidence = page.get_by_role("table", name="Values against thresholds")
    judged = await evidence.get_by_role("row", name=re.compile("^error_rate")).inner_text()
    assert f"max {THRESHOLD:g}" in judged and f"{FAILURE_LIMIT} of {FAILURE_LIMIT}" in judged, judged
    # the PromQL is the guard's query for this version, and Prometheus answers it with a breach still
    promql = await page.locator("pre code").first.inner_text()
    assert f'version="{incident.bad_version}"' in promql and 'env="staging"' in promql, promql
    answer = await asyncio.to_thread(world.prometheus.query, promql)
    assert answer and float(answer[0]["value"][1]) > THRESHOLD, answer
    # the rollback PR it links to is the one on devhub
    link = page.get_by_role("link", name=f"{MODEL}-deploy#{pull.number}")
    assert await link.get_attribute("href") == f"{world.hub_url}/{MODEL}-deploy/pull/{pull.number}"
    await accessible(page)
    await shoot(page, "incident")
    await context.close()


async def test_a_parked_job_is_refused_to_a_reader_and_retried_by_a_maintainer(world: World) -> None:
    queue = world.bot.service.services.queue
    job = await queue.get(world.parked_job)
    assert job is not None and job["state"] == "parked" and job["kind"] == "deploy"
    refused_pushes = [r for r in world.hub.faults.log if r.fault == "git_unavailable"]
    assert len(refused_pushes) == 4  # every attempt of the job's pushes, all refused

    reader, page = await signed_in(world, "rita")
    await page.get_by_role("link", name="Jobs").click()
    row = page.locator(f"#job-{world.parked_job}")
    text = await row.inner_text()
    assert f"{FRAUD}#1:deploy" in text and "parked" in text and "1 of 3" in text, text
    assert "is unreachable: gave up after 4 attempts" in text, text
    await shoot(page, "jobs")
    await accessible(page)
    await page.get_by_role("button", name=f"Retry job {world.parked_job}").click()
    await expect(page.get_by_role("status")).to_contain_text("needs write access; you have read access")
    job = await queue.get(world.parked_job)
    assert job is not None and job["state"] == "parked"
    await reader.close()

    # the deploy repository takes pushes again; the parked job waits for someone to retry it
    world.hub.faults.pending.remove(world.outage)
    await asyncio.sleep(0.5)  # several polls of the workers
    job = await queue.get(world.parked_job)
    assert job is not None and job["state"] == "parked"

    maintainer, page = await signed_in(world, "maya")
    await page.goto(f"{world.bot.url}/ui/jobs")
    await page.get_by_role("button", name=f"Retry job {world.parked_job}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"retry job #{world.parked_job}")

    async def done() -> bool:
        job = await queue.get(world.parked_job)
        return job is not None and job["state"] == "done"

    await wait_until(done, 30)
    await page.reload()
    finished = page.get_by_role("table", name="Recently finished")
    row = finished.locator(f"#job-{world.parked_job}")
    assert "done" in await row.inner_text() and f"{FRAUD}#1:deploy" in await row.inner_text()
    await expect(page.get_by_role("button", name=f"Retry job {world.parked_job}")).to_have_count(0)
    await shoot(page, "jobs-retried")  # (axe checked this page, its finished table too, for the reader)
    values = await asyncio.to_thread(
        world.hub.git.read, f"{FRAUD}-deploy", "refs/heads/main", "environments/staging/fraud/values.yaml"
    )
    assert values is not None and hashlib.sha256(b"fraud v1").hexdigest() in values.decode()

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
    assert api["repositories"] == [MODEL, f"{MODEL}-deploy", FRAUD]
    assert {d["repo"] for d in api["deployments"]} == {MODEL, FRAUD}
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
    incident = await world.incident()
    context, page = await signed_in(world, "maya", javascript=False)
    assert "live" in await page.inner_text("table")
    await page.goto(f"{world.bot.url}/ui/incidents/{incident.id}")
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
