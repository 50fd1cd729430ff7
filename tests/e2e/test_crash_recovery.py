"""SIGKILL the service with jobs queued and running: after a restart every job's effect happens once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.store.db import make_engine
from bot.store.models import Job
from devkit.devhub import RunningDevHub
from devkit.devhub.faults import Fault
from devkit.processes import free_port
from tests.fixtures.devhub import WEBHOOK_SECRET

REPO = "acme/churn"
pytestmark = pytest.mark.slow


async def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    for _ in range(1200):  # 60 s: on a loaded 2-core machine, imports and migrations alone took over 15 s
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        assert proc.poll() is None, log.read_text()
        await asyncio.sleep(0.05)
    raise TimeoutError(log.read_text())


async def _jobs(db_url: str) -> list[tuple[str, str]]:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            return [(r.serial_key, r.state) for r in await conn.execute(select(Job.serial_key, Job.state))]
    finally:
        await engine.dispose()


async def test_sigkill_with_jobs_queued_and_running(devhub: RunningDevHub, tmp_path: Path) -> None:
    hub = devhub.hub
    app_id, key = await hub.create_app(slug="modelship")
    await hub.create_repo(REPO, {"models/churn.onnx": b"v1"})
    await hub.install("acme", [REPO])
    port = free_port()
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    env = {
        **os.environ,
        "MODELSHIP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MODELSHIP_GITHUB_APP_ID": str(app_id),
        "MODELSHIP_GITHUB_PRIVATE_KEY": key,
        "MODELSHIP_GITHUB_API_URL": devhub.api_url,
        "MODELSHIP_DATA_DIR": str(tmp_path),
        "MODELSHIP_DATABASE_URL": db_url,
        "MODELSHIP_PORT": str(port),
        "MODELSHIP_JOB_LEASE_SECONDS": "3",
        "MODELSHIP_WORKERS": "2",
        "MODELSHIP_SANDBOX": "off",  # no review runs here; serve refuses to start without an engine otherwise
    }
    hub.sender.url = f"http://127.0.0.1:{port}/webhooks/github"
    log = tmp_path / "serve.log"
    first = await _serve(env, port, log)

    # Comment creation answers slowly, so jobs are mid-flight when the process dies.
    hub.add_fault(Fault("slow", count=100, path=r"/issues/\d+/comments$", method="POST", delay=1.0))
    numbers = []
    for i in range(4):
        await hub.push(REPO, f"b{i}", {"models/churn.onnx": f"v{i + 2}".encode()})
        numbers.append(await hub.open_pr(REPO, f"b{i}"))
    for _ in range(200):
        states = {state for _, state in await _jobs(db_url)}
        if "running" in states and "queued" in states:
            break
        await asyncio.sleep(0.05)
    assert {"running", "queued"} <= states, states
    first.send_signal(signal.SIGKILL)
    first.wait()

    second = await _serve(env, port, log)
    try:
        for _ in range(400):
            jobs = await _jobs(db_url)
            if jobs and all(state == "done" for _, state in jobs if _.startswith(REPO)):
                break
            await asyncio.sleep(0.1)
        assert all(state == "done" for _, state in jobs), jobs
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    for number in numbers:
        comments = [
            c
            for c in hub.comments.values()
            if c.repo == REPO and c.issue_number == number and c.user.login == "modelship[bot]"
        ]
        assert len(comments) == 1, f"PR #{number} has {len(comments)} bot comments"
    assert second.returncode == 0, "SIGTERM drains and exits cleanly"
