"""/healthz, /readyz and /metrics on the running bot, and the `modelship jobs` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from bot.store.queue import enqueue, job_row
from devkit.devhub import RunningDevHub
from tests.fixtures.bot import RunningBot

ROOT = Path(__file__).resolve().parents[2]


async def test_health_readiness_and_metrics(devhub: RunningDevHub, bot: RunningBot) -> None:
    await devhub.hub.create_repo("acme/churn", {"README.md": "x"})
    await devhub.hub.install("acme", ["acme/churn"])
    await devhub.hub.ping()
    await bot.idle()
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{bot.url}/healthz") as r:
            assert r.status == 200
        async with s.get(f"{bot.url}/readyz") as r:
            assert r.status == 200 and (await r.json())["message"] == "ready"
        async with s.get(f"{bot.url}/metrics") as r:
            text = await r.text()
    assert 'modelship_webhook_deliveries_total{event="ping",outcome="ignored"}' in text
    assert 'modelship_jobs{state="done"}' in text
    assert "modelship_webhook_ack_seconds_bucket" in text
    assert 'modelship_job_duration_seconds_count{kind="webhook",outcome="done"}' in text


async def test_readyz_fails_when_the_workers_are_gone(devhub: RunningDevHub, bot: RunningBot) -> None:
    await bot.service.workers.stop()
    async with aiohttp.ClientSession() as s, s.get(f"{bot.url}/readyz") as r:
        assert r.status == 503 and "no worker" in (await r.json())["message"]


async def test_shutdown_drains_in_flight_jobs_and_releases_the_slow_ones(
    devhub: RunningDevHub, bot: RunningBot
) -> None:
    import asyncio

    started = asyncio.Event()

    async def slow(job: object) -> None:
        started.set()
        await asyncio.sleep(60)

    pool = bot.service.workers
    pool.runners = {**pool.runners, "slow": slow}
    pool.drain_seconds = 0.5
    async with bot.service.services.engine.begin() as conn:
        await enqueue(conn, [job_row("slow", "acme/churn#9")])
    pool.wake()
    await asyncio.wait_for(started.wait(), 10)
    await pool.stop()
    jobs = await bot.service.services.queue.list(["queued"])
    assert [(j["kind"], j["attempts"]) for j in jobs] == [("slow", 0)], "released without spending an attempt"


async def test_jobs_cli_lists_parked_jobs_with_their_error(tmp_path: Path) -> None:
    from bot.store.db import make_engine, migrate
    from bot.store.queue import JobQueue

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    await migrate(engine)
    async with engine.begin() as conn:
        await enqueue(conn, [job_row("webhook", "acme/churn#3"), job_row("webhook", "acme/churn#4")])
    queue = JobQueue(engine)
    job = await queue.claim("w")
    assert job is not None
    await queue.fail(job, "w", "GitHubBroken: 502 Bad Gateway", transient=False)
    await engine.dispose()
    env = {**os.environ, "MODELSHIP_WEBHOOK_SECRET": "x", "MODELSHIP_DATABASE_URL": url}
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "jobs"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout
    assert "parked" in out and "GitHubBroken: 502 Bad Gateway" in out and "acme/churn#4" in out
    retry = subprocess.run(
        [sys.executable, "-m", "bot.cli", "jobs", "--retry", str(job.id)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert retry.returncode == 0 and f"job {job.id} requeued" in retry.stdout
