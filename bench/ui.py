"""Dashboard benchmark: server time per page and per live fragment, next to a static file from the same server.

Run: `.venv/bin/python bench/ui.py [--requests 200]`.
The database (SQLite, migrated) holds 1,000 deployments: 10 environments x 100 models (10 repositories of
10 models), plus 50 incidents, 200 audit rows and 100 jobs. One signed-in session that can read every
repository asks each page; the server time is the dashboard's own `Server-Timing: app;dur=` (handler,
queries and template), the round trip is measured by the client on loopback. `cpu;dur=` (the event
loop thread's CPU time during the request) shows what a request costs apart from waiting for a core.
The matrix (bot.ui.matrix) keeps one rendered cell per target and one rendered row per model: "table just
changed" changes a row before every request and asks the table on every request (not once a second), so
each one pays the look (an aggregate, then one indexed query of the changed targets), renders the changed
cell and its model's row again and joins the page (the worst case). The fragments and the other matrix
rows ask the table at most once a second for all users, as `serve` does: a poll that finds nothing new
touches no database. "1 cell changed" asks from a stamp before one change; "no change" from the latest.
Targets (issue 17): p95 server time <= 50 ms per page, <= 10 ms per live fragment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.chatops import store as chatops_store  # noqa: E402
from bot.guard import store as guard_store  # noqa: E402
from bot.guard.evidence import render_evidence  # noqa: E402
from bot.store import deployments  # noqa: E402
from bot.store.base import utcnow  # noqa: E402
from bot.store.db import make_engine, migrate  # noqa: E402
from bot.store.queue import JobQueue, enqueue, job_row  # noqa: E402
from bot.ui.app import Dashboard  # noqa: E402
from bot.ui.github import OAuthClient  # noqa: E402
from bot.ui.session import COOKIE, SessionStore  # noqa: E402
from tests.guard.test_evidence import rolled_back  # noqa: E402

ENVS = [f"env{i}" for i in range(10)]
REPOS = [f"acme/models-{i}" for i in range(10)]


async def seed(engine: Any) -> None:
    now = utcnow()
    evidence = render_evidence(rolled_back())  # what the guard writes on a rollback, with its chart
    async with engine.begin() as conn:
        for r, repo in enumerate(REPOS):
            for m in range(10):
                for e, env in enumerate(ENVS):
                    await deployments.insert(
                        conn,
                        repo=repo,
                        environment=env,
                        model=f"model-{r}-{m}",
                        version=f"{(r * 100 + m * 10 + e):040x}",
                        source_pr=m + 1,
                        deploy_repo=f"{repo}-deploy",
                        variant="int8_dynamic" if e % 2 else "original",
                        sha256=f"{e:064x}",
                        actor="maya",
                        state="deployed",
                        health="healthy",
                        pinned=e == 9,
                        # every kind the timeline shows: env9's rollback pins, env8 promotes, env7 unpins
                        kind={9: "rollback", 8: "promote", 7: "unpin"}.get(e, "deploy"),
                        detail="rolled back by the guard" if e == 9 else None,
                        created_at=now - timedelta(minutes=e),
                        updated_at=now - timedelta(minutes=e),
                    )
        for i in range(50):
            await guard_store.create_incident(
                conn,
                {
                    "key": f"k{i}",
                    "repo": REPOS[i % 10],
                    "environment": "env0",
                    "model": f"model-{i % 10}-0",
                    "bad_version": "b" * 40,
                    "bad_deployment_id": 1,
                    "target_version": "a" * 40,
                    "target_deployment_id": 2,
                    "deploy_repo": "acme/deploy",
                    "values_path": "environments/env0/m/values.yaml",
                    "branch": "modelship/rollback/env0/m",
                    "trigger": "guard",
                    "evidence": evidence,
                    "state": "merged",
                },
            )
        await chatops_store.record(
            conn,
            [
                chatops_store.AuditEntry(
                    REPOS[i % 10], i, "maya", i, "status", "/modelship status", {}, "allowed", "ok", True
                )
                for i in range(200)
            ],
        )
        await enqueue(conn, [job_row("review", f"{REPOS[i % 10]}#{i}:review") for i in range(100)])


def quoted(when: datetime) -> str:
    return when.replace(tzinfo=None).isoformat() + "%2B00:00"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await migrate(engine)
        await seed(engine)
        async with aiohttp.ClientSession() as http:
            oauth = OAuthClient("bench", "bench", "http://127.0.0.1:9", "http://127.0.0.1:9", http)
            sessions = SessionStore(engine, b"b" * 32, 3600)
            dashboard = Dashboard(
                engine=engine,
                queue=JobQueue(engine),
                github=None,  # type: ignore[arg-type]  # no action is measured
                oauth=oauth,
                sessions=sessions,
                health=lambda: {"checked_at": "now", "failed": [], "checks": []},
                refresh_seconds=1e9,
            )
            cookie, _ = await sessions.create("maya", "ghu_x", dict.fromkeys(REPOS, "read"), time.time())
            app = web.Application()
            app.add_subapp("/ui/", dashboard.app())
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            async with engine.connect() as conn:
                before = (await deployments.last_change(conn)) or utcnow()
            async with engine.begin() as conn:  # the guard changes one cell: what a poll usually finds
                await deployments.set_health(conn, 345, "degraded")

            async def now_stamp() -> str:  # the table's stamp when the target's turn comes (after the writes)
                async with engine.connect() as conn:
                    return quoted((await deployments.last_change(conn)) or utcnow())

            earlier = quoted(before)
            targets: list[tuple[str, str, Any]] = [
                ("static file (ui.css)", "static", "/ui/static/ui.css"),
                ("matrix page (1,000 cells)", "page", "/ui/"),
                ("matrix page, table just changed", "page", "/ui/?cold"),
                ("model timeline + diff", "page", "/ui/models/acme/models-3/model-3-4?a=341&b=342"),
                ("PR page", "page", "/ui/prs/acme/models-3/5"),
                ("incidents", "page", "/ui/incidents"),
                ("incident + SVG chart", "page", "/ui/incidents/7"),
                ("jobs", "page", "/ui/jobs"),
                ("audit (filtered)", "page", "/ui/audit?actor=maya"),
                ("health", "page", "/ui/health"),
                ("matrix fragment, no change", "fragment", now_stamp),
                ("matrix fragment, 1 cell changed", "fragment", f"/ui/fragments/matrix?after={earlier}"),
                ("deployments JSON", "api", "/ui/api/deployments"),
            ]
            rows = []
            for name, kind, where in targets:
                path = where if isinstance(where, str) else f"/ui/fragments/matrix?after={await where()}"
                server, cpu, total = [], [], []
                # the worst case reads the table's change time on every request (serve: at most once a second)
                dashboard.matrix_cells.stamp_ttl = 0.0 if path.endswith("?cold") else 1.0
                for i in range(requests + 10):
                    if path.endswith("?cold"):  # a deploy or the guard changed a row: nothing rendered is reused
                        async with engine.begin() as conn:
                            await deployments.set_health(conn, 345, "degraded" if i % 2 else "healthy")
                    started = time.perf_counter()
                    async with http.get(base + path, cookies={COOKIE: cookie}, allow_redirects=False) as resp:
                        await resp.read()
                        assert resp.status == 200, (path, resp.status)
                        timing = resp.headers["Server-Timing"]
                    if i >= 10:  # warm-up: template compilation, SQLite page cache
                        total.append((time.perf_counter() - started) * 1000)
                        durations = [float(part.split("dur=")[1]) for part in timing.split(",")]
                        server.append(durations[0])
                        cpu.append(durations[1])
                rows.append((name, kind, pct(server, 50), pct(server, 95), pct(cpu, 95), pct(total, 95)))
            await runner.cleanup()
        await engine.dispose()
    load = os.getloadavg()[0]
    print(f"dashboard, {requests} requests each, 1,000 deployments / 10 envs / 100 models, SQLite, one client")
    print(f"load average {load:.1f} on {os.cpu_count()} cores (wall times grow with it; loop CPU much less)")
    head = f"{'what':32} {'kind':9} {'server p50':>10} {'server p95':>10} {'loop CPU p95':>12} {'round trip p95':>14}"
    print(head + "  target (p95 server, ms)")
    for name, kind, p50, p95, cpu95, rt in rows:
        target = {"page": "<= 50", "fragment": "<= 10", "api": "<= 50"}.get(kind, "")
        ok = "" if not target else (" ok" if p95 <= float(target.split()[1]) else " MISSED")
        print(f"{name:32} {kind:9} {p50:10.2f} {p95:10.2f} {cpu95:12.2f} {rt:14.2f}  {target}{ok}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args().requests))
