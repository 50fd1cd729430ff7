"""Guard benchmark: the watcher's cost per interval for many deployments, and its detection latency.

Starts a real Prometheus (Debian's binary, 1 s scrapes) and two real model servers (`python -m
model_server.serve`, versions 1 and 2) under steady traffic, then prints two tables:
  - cost: one watcher round over N deployments × 3 checks (error_rate, latency_p95, prediction_drift):
    the bot's CPU time, wall time, queries sent, Prometheus' own CPU, and the share of one core
    that costs at a 30 s interval. Every query hits live series (the deployments alternate between
    the two served versions), so Prometheus does real work.
  - detection: errors injected into version 2 (50 %) -> ROLLBACK decided, against the theoretical
    minimum interval × failure_limit.
  - detection through the running bot: the real service (watcher loop, database, devhub as GitHub)
    from the breach to the rollback PR opened in the deploy repository.
Run: `.venv/bin/python bench/guard.py [--deployments 100] [--rounds 5]`.
Targets (issue 7): 100 deployments ≤ 5 % of one core at a 30 s interval; detection within one
interval of interval × failure_limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import text

# The benchmark uses devkit's launchers, guard world and model; run from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.guard.analysis import CheckConfig, CheckState, Decision
from bot.guard.checks import Deployment, evaluate_many
from bot.guard.prometheus import PrometheusHTTP
from bot.guard.templates import load_templates
from bot.settings import SOURCE_ROOT
from devkit.guard_world import V1, V2, build_world, config, running_bot, wait_until
from devkit.harness import WEBHOOK_SECRET
from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA, write_iris_classifier
from devkit.processes import ModelServer, model_server
from devkit.processes import Prometheus as PrometheusServer
from devkit.traffic import predict_forever

PROMQL = SOURCE_ROOT / "config" / "promql"  # the default of MODELSHIP_PROMQL_DIR

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_server(model: Path, sha: str, version: str, logs: Path) -> ModelServer:
    server = model_server(
        model, name="iris", version=version, sha256=sha, env="production", log=logs / f"v{version[:7]}.log"
    )
    server.start(timeout=30)
    return server


async def cost(prometheus: PrometheusServer, session: aiohttp.ClientSession, n: int, rounds: int) -> None:
    provider = PrometheusHTTP(prometheus.url, session)
    templates = load_templates(PROMQL)
    checks = [
        CheckConfig(template="error_rate", max=0.02, window="1m", initial_delay=0),
        CheckConfig(template="latency_p95", max=0.05, window="1m", initial_delay=0),
        CheckConfig(template="prediction_drift", max=0.2, window="1m", initial_delay=0),
    ]
    deployments = [Deployment("production", "iris", V1 if i % 2 else V2) for i in range(n)]
    states: list[dict[str, CheckState]] = [{} for _ in deployments]
    assert prometheus.pid is not None
    rows = []
    for _ in range(rounds):
        queries, prom_cpu = provider.queries, process_cpu(prometheus.pid)
        cpu, wall = time.process_time(), time.perf_counter()
        watched = [(d, checks, s) for d, s in zip(deployments, states, strict=True)]
        evaluations = await evaluate_many(provider, templates, watched, now=time.time())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        prom_cpu = process_cpu(prometheus.pid) - prom_cpu
        states = [e.states for e in evaluations]
        rows.append((provider.queries - queries, cpu, wall, prom_cpu))
        await asyncio.sleep(1)
    print(f"\nWatcher cost per round: {n} deployments × {len(checks)} checks, {rounds} rounds")
    print(
        f"{'round':>5} {'queries':>8} {'bot CPU ms':>11} {'wall ms':>9} {'Prometheus CPU ms':>18} "
        f"{'bot % core @30s':>16}"
    )
    for i, (q, c, w, p) in enumerate(rows, 1):
        print(f"{i:>5} {q:>8} {c * 1000:>11.1f} {w * 1000:>9.1f} {p * 1000:>18.0f} {100 * c / 30:>15.2f}%")
    mean_cpu = sum(r[1] for r in rows) / len(rows)
    verdict = "meets" if mean_cpu / 30 <= 0.05 else "MISSES"
    share = 100 * mean_cpu / 30
    print(f"mean bot CPU {mean_cpu * 1000:.1f} ms/round = {share:.2f} % of one core at 30 s ({verdict} ≤ 5 %)")


async def detection(
    prometheus: PrometheusServer,
    session: aiohttp.ClientSession,
    canary: str,
    interval: float,
    failure_limit: int,
) -> float:
    provider = PrometheusHTTP(prometheus.url, session)
    templates = load_templates(PROMQL)
    check = CheckConfig(template="error_rate", max=0.02, window="5s", failure_limit=failure_limit, initial_delay=0)
    deployment = Deployment("production", "iris", V2)
    states: dict[str, CheckState] = {}

    async def round_() -> Decision:
        nonlocal states
        [evaluation] = await evaluate_many(provider, templates, [(deployment, [check], states)], now=time.time())
        states = evaluation.states
        return evaluation.decision

    for _ in range(60):
        if await round_() is Decision.HEALTHY:
            break
        await asyncio.sleep(interval)
    async with session.post(f"{canary}/admin/faults", json={"error_rate": 0.5}) as response:
        response.raise_for_status()
    injected = time.monotonic()
    try:
        while True:
            tick = time.monotonic()
            if await round_() is Decision.ROLLBACK:
                return time.monotonic() - injected
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - tick)))
    finally:
        async with session.post(f"{canary}/admin/faults", json={"error_rate": 0}) as response:
            response.raise_for_status()
        await asyncio.sleep(6)  # let the 5 s window forget the errors before the next run


async def detection_via_bot(
    prometheus: PrometheusServer,
    session: aiohttp.ClientSession,
    canary: str,
    interval: float,
    failure_limit: int,
    root: Path,
) -> tuple[float, float]:
    """Breach -> incident recorded (decided) and -> rollback PR opened, through the real service's watcher loop."""
    from devkit.devhub import start

    devhub = await start(root / "devhub", webhook_secret=WEBHOOK_SECRET)
    try:
        app = await devhub.hub.create_app(slug="modelship")
        settings = {"prometheus_url": prometheus.url, "guard_interval_seconds": interval}
        async with running_bot(devhub, root / "bot", app, **settings) as service:
            engine = service.services.engine
            guard = config(auto_merge=False, failure_limit=failure_limit, interval=f"{interval:g}s")
            world = await build_world(devhub.hub, engine, app, guard_config=guard)

            async def healthy() -> bool:
                async with engine.connect() as conn:
                    health = await conn.scalar(text("SELECT health FROM deployments WHERE version = :v"), {"v": V2})
                return health == "healthy"

            await wait_until(healthy, 60)
            async with session.post(f"{canary}/admin/faults", json={"error_rate": 0.5}) as response:
                response.raise_for_status()
            injected = time.monotonic()

            async def decided() -> bool:
                async with engine.connect() as conn:
                    return bool(await conn.scalar(text("SELECT count(*) FROM guard_incidents")))

            try:
                await wait_until(decided, interval * failure_limit + 30, step=0.02)
                decided_after = time.monotonic() - injected
                await wait_until(world.rollback_pulls, 30, step=0.02)
                return decided_after, time.monotonic() - injected
            finally:
                async with session.post(f"{canary}/admin/faults", json={"error_rate": 0}) as response:
                    response.raise_for_status()
    finally:
        await devhub.stop()
        await asyncio.sleep(6)  # let the 5 s window forget the errors before the next run


async def measure(prometheus: PrometheusServer, urls: list[str], args: argparse.Namespace, root: Path) -> None:
    async with aiohttp.ClientSession() as session:
        load = asyncio.create_task(predict_forever(session, urls, [IRIS_SETOSA, IRIS_VIRGINICA]))
        try:
            ready = 'count(rate(modelship_model_requests_total{status="200"}[5s]) > 0) == 2'
            await asyncio.to_thread(prometheus.wait_for, ready, 60)
            await cost(prometheus, session, args.deployments, args.rounds)
            if args.skip_detection:
                return
            print("\nDetection: 50 % errors injected -> ROLLBACK decided (error_rate max 0.02, window 5s)")
            print(
                f"{'interval s':>10} {'failure_limit':>14} {'minimum s':>10} {'measured s':>11} "
                f"{'within 1 interval':>18}"
            )
            for interval, limit in ((1.0, 3), (2.0, 3)):
                took = await detection(prometheus, session, urls[1], interval, limit)
                ok = "yes" if took <= interval * limit + interval else "NO"
                print(f"{interval:>10g} {limit:>14} {interval * limit:>10g} {took:>11.2f} {ok:>18}")
            print("\nDetection through the running bot: 50 % errors injected -> incident decided -> PR opened")
            print(
                f"{'interval s':>10} {'failure_limit':>14} {'minimum s':>10} {'decided s':>10} "
                f"{'within 1 interval':>18} {'PR opened s':>12}"
            )
            for n, (interval, limit) in enumerate(((1.0, 3), (2.0, 3))):
                decided, opened = await detection_via_bot(
                    prometheus, session, urls[1], interval, limit, root / f"bot-run-{n}"
                )
                ok = "yes" if decided <= interval * limit + interval else "NO"
                print(f"{interval:>10g} {limit:>14} {interval * limit:>10g} {decided:>10.2f} {ok:>18} {opened:>12.2f}")
        finally:
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await load


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="modelship-bench-guard-") as tmp:
        root = Path(tmp)
        model = root / "iris.onnx"
        sha = write_iris_classifier(model)
        prometheus = PrometheusServer(root / "prometheus")
        servers: list[ModelServer] = []
        try:
            prometheus.start()
            for version in (V1, V2):
                servers.append(start_server(model, sha, version, root))
                prometheus.add_target(servers[-1].address)
            await measure(prometheus, [server.url for server in servers], args, root)
        finally:
            for server in servers:
                server.stop()
            prometheus.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-detection", action="store_true")
    asyncio.run(main(parser.parse_args()))
