"""Deploy benchmark: merge -> deploy commit pushed, with real git over smart HTTP on loopback.

Starts devhub (the GitHub simulator: `git http-backend` behind aiohttp, installation-token auth) with
one deploy repository, then deploys N different models three ways and prints one table:
  - sequential: one merge at a time through one DeployRepo (the latency of a single deploy);
  - burst: N merges at once through one DeployRepo (serialised by its per-repository lock, so the
    latency includes waiting for the deploys ahead; the rate is serialised deploys per minute);
  - racing: N merges at once spread over R DeployRepo replicas with separate clones, as if R bot
    processes shared the repository (rejected pushes are fetched, re-applied and retried).
Each deploy is the bot's whole write path: plan the values (ruamel round-trip + schema validation),
fetch, commit, push. Every run checks that all N commits landed and no update was lost.
Then the same through the real bot (in-process service, webhooks signed by devhub, durable queue,
deploy job, GitHub Deployment and PR comment), timed from the merge (devhub sends `pull_request`
closed) to the deploy commit visible in the deploy repository:
  - bot sequential: one merge at a time (the end-to-end latency of one merge);
  - bot burst: N merges back to back (deploy jobs are serialised per deploy repository).
Then live tracking (issue 15), with a real Prometheus scraping real model servers (devkit's launcher):
  - merge -> commit and merge -> live, p50/p95 in the same run: the bot tracks each deploy on its
    round (--live-interval, production default 10 s) while this script plays the cluster: once a deploy
    commit lands it starts a model server on the committed file and retires the old one (what Argo CD
    or Flux would do), so "live" is every ready replica serving the new sha256 as Prometheus sees it;
  - the tracker's cost: one round over 100 environments rolling out (a real Prometheus query each, the
    database on SQLite): the bot's CPU per round and its share of one core at a 10 s round.
Run: `.venv/bin/python bench/deploy.py [--merges 50] [--replicas 3] [--live-merges 10] [--only live]`.
Targets (issue 6): p95 <= 2 s per deploy and >= 60 serialised deploys per minute; (issue 15) live tracking
of 100 environments <= 2 % of one core at a 10 s round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from bot.deploy.gitops import CommitResult, DeployRepo, RepoLocks, RetryPolicy
from bot.deploy.helm import HelmRefusal, check_values, render_chart_sync
from bot.deploy.manifest import ModelRef, commit_message, plan_deploy, values_path
from bot.github.git import StaticToken
from devkit.devhub import RunningDevHub, start

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts/model-server"


def model(i: int, run: str) -> ModelRef:
    return ModelRef(
        name=f"{run}-model-{i:03d}",
        repository="acme/models",
        revision=f"{i + 1:040x}",
        path=f"models/m{i}/model.onnx",
        sha256=f"{i + 1:064x}",
        variant="onnx",
        sequence=1_764_000_000 + i,
        source_pr=i + 1,
    )


async def deploy(repo: DeployRepo, ref: ModelRef) -> tuple[float, CommitResult]:
    def edit(text: str | None) -> str | None:
        # As the product's writer does: Helm renders the new values before anything is committed.
        planned = plan_deploy(text, ref).text
        if planned is not None:
            check_values(CHART, planned)
        return planned

    started = time.perf_counter()
    result = await repo.commit(
        {values_path("staging", ref.name): edit},
        commit_message(ref, "staging", metrics={"accuracy": 0.95}),
    )
    return time.perf_counter() - started, result


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def scenario(name: str, runs: list[Awaitable[tuple[float, CommitResult]]]) -> dict[str, object]:
    started = time.perf_counter()
    outcomes = await asyncio.gather(*runs) if name != "sequential" else [await r for r in runs]
    wall = time.perf_counter() - started
    latencies = [latency for latency, _ in outcomes]
    assert all(result.changed for _, result in outcomes), f"{name}: a deploy wrote nothing"
    return {
        "scenario": name,
        "deploys": len(outcomes),
        "p50_s": statistics.median(latencies),
        "p95_s": percentile(latencies, 95),
        "max_s": max(latencies),
        "per_min": len(outcomes) / wall * 60,
        "attempts": sum(result.attempts for _, result in outcomes),
    }


async def main(merges: int, replicas: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        work = Path(tmp)
        running: RunningDevHub = await start(work / "devhub", webhook_secret=WEBHOOK_SECRET)
        try:
            hub = running.hub
            app_id, key = await hub.create_app()
            await hub.create_repo("acme/deploy", {"README.md": "# deploy repository\n"})
            token = hub.issue_token(await hub.install("acme", ["acme/deploy"])).value
            url = f"{running.base_url}/acme/deploy.git"

            def repo(name: str, locks: RepoLocks | None = None) -> DeployRepo:
                return DeployRepo(
                    url,
                    work / name,
                    token=StaticToken(token),
                    locks=locks or RepoLocks(),
                    retry=RetryPolicy(conflict_attempts=50, base_s=0.02, cap_s=0.5),
                )

            single = repo("single")
            await deploy(single, model(0, "warmup"))  # the first fetch clones; not a merge latency
            rows = [await scenario("sequential", [deploy(single, model(i, "seq")) for i in range(merges)])]
            rows.append(await scenario("burst", [deploy(single, model(i, "burst")) for i in range(merges)]))
            racers = [repo(f"replica-{r}") for r in range(replicas)]
            rows.append(
                await scenario(
                    f"racing x{replicas}",
                    [deploy(racers[i % replicas], model(i, "race")) for i in range(merges)],
                )
            )
            bare = hub.git.path("acme/deploy")
            count = int(
                subprocess.run(
                    ["git", "rev-list", "--count", "main"], cwd=bare, capture_output=True, text=True, check=True
                ).stdout
            )
            expected = 2 + 3 * merges  # seed + warm-up + three runs
            bot_rows, bot_lost = await through_the_bot(running, work, app_id, key, merges)
            rows += bot_rows
        finally:
            await running.stop()

    print(f"\nDeploys to one repository over git smart HTTP on loopback ({merges} merges each)\n")
    print("| scenario | deploys | p50 (s) | p95 (s) | max (s) | deploys/min | push attempts |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['scenario']} | {row['deploys']} | {row['p50_s']:.3f} | {row['p95_s']:.3f} | "
            f"{row['max_s']:.3f} | {row['per_min']:.0f} | {row['attempts']} |"
        )
    print(f"\ncommits on main: {count} (expected {expected}; lost updates: {expected - count})")
    print(f"bot runs: deploy commits missing: {bot_lost}; Helm renders every values file")
    print("targets: p95 <= 2 s for a single deploy (sequential row); >= 60 serialised deploys/min (burst row)")


# --------------------------------------------------------------------------- through the real bot

WEBHOOK_SECRET = "bench-secret"


def _git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, capture_output=True, text=True, check=True).stdout


def _deployed_prs(bare: Path) -> set[int]:
    out = _git(bare, "log", "--format=%(trailers:key=Modelship-Source-PR,valueonly)", "main")
    return {int(line.rsplit("#", 1)[1]) for line in out.split() if "#" in line}


async def through_the_bot(
    running: RunningDevHub, work: Path, app_id: int, key: str, merges: int
) -> tuple[list[dict[str, object]], int]:
    """Merge PRs in devhub; the real bot receives the webhooks and commits to the deploy repository."""
    from bot.store.queue import ClaimedJob
    from devkit.harness import bot_running

    hub = running.hub
    names = [f"m{i:03d}" for i in range(2 * merges)]
    config = "version: 1\nmodels:\n" + "".join(
        f"  - name: {n}\n    path: models/{n}.onnx\n    task: classification\n"
        f"    dataset: {{path: data/{n}.csv, target: label}}\n"
        for n in names
    )
    # requires: [] — no review runs here, and auto environments otherwise ship reviewed heads only.
    config += "environments:\n  staging: {auto: true, requires: []}\ndeploy: {repository: acme/bot-deploy}\n"
    await hub.create_repo("acme/bot-deploy", {"README.md": "# deploy repository\n"})
    files: dict[str, str | bytes | None] = {".modelship.yml": config, **{f"models/{n}.onnx": b"v0" for n in names}}
    await hub.create_repo("acme/models", files)
    await hub.install("acme", ["acme/models", "acme/bot-deploy"])
    bare = hub.git.path("acme/bot-deploy")

    async def no_review(job: ClaimedJob) -> None:
        """Reviews need the sandbox; they are not what this measures."""

    async with bot_running(
        running,
        work,
        app=(app_id, key),
        extra_runners={"review": no_review},
        poll_seconds=0.02,
        workers=2,
        sandbox="off",  # deploys only: no review runs here
    ) as bot:
        service = bot.service

        async def idle() -> None:
            while True:
                depth = await service.services.queue.depth()
                if not depth.get("queued") and not depth.get("running"):
                    return
                await asyncio.sleep(0.05)

        numbers = []
        for n in names:
            await hub.push("acme/models", f"update-{n}", {f"models/{n}.onnx": f"{n} v1".encode()})
            numbers.append(await hub.open_pr("acme/models", f"update-{n}"))
        await idle()  # PR-opened webhooks handled; now only merges count

        async def watch(batch: set[int], landed: dict[int, float]) -> None:
            while len(landed) < len(batch):
                now = time.perf_counter()
                for number in (await asyncio.to_thread(_deployed_prs, bare) & batch) - landed.keys():
                    landed[number] = now
                await asyncio.sleep(0.01)

        rows = []
        for label, batch, sequential in (
            ("bot sequential", numbers[:merges], True),
            ("bot burst", numbers[merges:], False),
        ):
            merged_at: dict[int, float] = {}
            landed: dict[int, float] = {}
            watcher = asyncio.create_task(watch(set(batch), landed))
            started = time.perf_counter()
            for number in batch:
                merged_at[number] = time.perf_counter()
                await hub.merge_pr("acme/models", number)
                while sequential and number not in landed:
                    await asyncio.sleep(0.005)
            merging = time.perf_counter() - started
            await asyncio.wait_for(watcher, timeout=600)
            wall = max(landed.values()) - started
            latencies = [landed[n] - merged_at[n] for n in batch]
            rows.append(
                {
                    "scenario": label,
                    "deploys": len(batch),
                    "p50_s": statistics.median(latencies),
                    "p95_s": percentile(latencies, 95),
                    "max_s": max(latencies),
                    "per_min": len(batch) / wall * 60,
                    # The push-attempt column does not apply; it says how long devhub took to merge them.
                    "attempts": f"(merging took {merging:.1f} s)",
                }
            )
            await idle()
        lost = 2 * merges - (int(_git(bare, "rev-list", "--count", "main")) - 1)
        invalid = [
            n
            for n in names
            if isinstance(
                render_chart_sync(CHART, _git(bare, "show", f"main:{values_path('staging', n)}")), HelmRefusal
            )
        ]
        assert not invalid, f"values files Helm refuses: {invalid}"
        return rows, lost


# --------------------------------------------------------------------------- live tracking


async def live(merges: int, interval: float, environments: int, rounds: int) -> None:
    """Merge -> commit and merge -> live through the real bot, then the tracker's cost per round."""
    import hashlib
    import sys

    sys.path.insert(0, str(ROOT))  # devkit's launchers: run from a checkout
    import onnx

    from bot.store.queue import ClaimedJob
    from devkit.harness import bot_running
    from devkit.onnx_models import write_iris_classifier
    from devkit.processes import ModelServer, Prometheus, model_server

    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        work = Path(tmp)
        prometheus = Prometheus(work / "prometheus")
        prometheus.start()
        running: RunningDevHub = await start(work / "devhub", webhook_secret=WEBHOOK_SECRET)
        servers: list[ModelServer] = []
        try:
            hub = running.hub
            write_iris_classifier(work / "iris.onnx")
            files = []
            for i in range(merges):
                proto = onnx.load(work / "iris.onnx")
                proto.doc_string = f"iris {i}"
                files.append(proto.SerializeToString())
            config = (
                "version: 1\nmodels:\n  - {name: iris, path: models/iris.onnx, task: classification, "
                "dataset: {path: data/eval.csv, target: label}}\n"
                "environments:\n  staging: {auto: true, requires: [], progress_deadline: 5m}\n"  # no review runs
                "deploy: {repository: acme/live-deploy}\n"
            )
            app = await hub.create_app(slug="modelship")
            await hub.create_repo("acme/live-deploy", {"README.md": "# deploy\n"})
            await hub.create_repo("acme/live", {".modelship.yml": config, "data/eval.csv": "a,label\n1,0\n"})
            await hub.install("acme", ["acme/live", "acme/live-deploy"])
            bare = hub.git.path("acme/live-deploy")

            async def no_review(job: ClaimedJob) -> None:
                """Reviews need the sandbox; they are not what this measures."""

            settings = {"prometheus_url": prometheus.url, "live_interval_seconds": interval, "sandbox": "off"}
            async with bot_running(running, work, app=app, extra_runners={"review": no_review}, **settings) as bot:
                engine = bot.service.services.engine
                commit_s, live_s = [], []
                for i, data in enumerate(files):
                    await hub.push("acme/live", f"v{i}", {"models/iris.onnx": data})
                    number = await hub.open_pr("acme/live", f"v{i}")
                    await asyncio.sleep(0.3)  # the PR-opened webhook is not what is measured
                    merged = time.perf_counter()
                    await hub.merge_pr("acme/live", number)
                    while number not in await asyncio.to_thread(_deployed_prs, bare):
                        await asyncio.sleep(0.01)
                    commit_s.append(time.perf_counter() - merged)
                    # The cluster syncs the commit: a replica on the new file, the old one retired.
                    sha = hashlib.sha256(data).hexdigest()
                    path = work / f"iris-{i}.onnx"
                    path.write_bytes(data)
                    server = model_server(
                        path, name="iris", version=str(i), sha256=sha, env="staging", log=work / f"s{i}.log"
                    )
                    await asyncio.to_thread(server.start)
                    prometheus.add_target(server.address)
                    for old in servers:
                        prometheus.remove_target(old.address)
                        old.stop()
                    servers[:] = [server]
                    while await _rollout(engine, sha) != "live":
                        await asyncio.sleep(0.01)
                    live_s.append(time.perf_counter() - merged)
            print(f"\nMerge -> commit and merge -> live through the bot ({merges} merges, live round {interval:g} s)\n")
            print("| step | p50 (s) | p95 (s) | max (s) |")
            print("|---|---:|---:|---:|")
            for label, values in (("merge -> commit", commit_s), ("merge -> live", live_s)):
                print(
                    f"| {label} | {statistics.median(values):.2f} | {percentile(values, 95):.2f} | {max(values):.2f} |"
                )
            print(
                "merge -> live includes the cluster's part as played here (model server start ~2-3 s, Prometheus' "
                "file_sd pick-up up to ~5 s, a 1 s scrape) and up to one live round"
            )
            await _tracker_cost(work, prometheus, environments, rounds, interval=10.0)
        finally:
            for server in servers:
                server.stop()
            await running.stop()
            prometheus.stop()


async def _rollout(engine: object, sha: str) -> str | None:
    from sqlalchemy import select

    from bot.store.review_models import Deployment

    async with engine.connect() as conn:  # type: ignore[attr-defined]
        query = select(Deployment.rollout).where(Deployment.sha256 == sha).order_by(Deployment.id.desc()).limit(1)
        return (await conn.execute(query)).scalar()


async def _tracker_cost(work: Path, prometheus: object, environments: int, rounds: int, *, interval: float) -> None:
    """One tracker round over ``environments`` deploys rolling out: its CPU, wall time and queries."""
    import aiohttp

    from bot.config.repo import parse_repo_config
    from bot.deploy.live import LiveTracker
    from bot.deploy.records import DeployRecords
    from bot.guard.prometheus import PrometheusHTTP
    from bot.guard.templates import load_templates
    from bot.settings import SOURCE_ROOT
    from bot.store import deployments
    from bot.store.db import make_engine, migrate

    names = [f"env-{i:03d}" for i in range(environments)]
    config = parse_repo_config(
        "version: 1\nmodels:\n  - {name: iris, path: models/iris.onnx, task: classification, "
        "dataset: {path: data/eval.csv, target: label}}\nenvironments:\n"
        + "".join(f"  {n}: {{progress_deadline: 24h}}\n" for n in names)
        + "deploy: {repository: acme/deploy}\n"
    )

    class Configs:
        async def read_config(self, repo: str) -> object:
            return config

    async def no_github(repo: str) -> None:
        return None

    engine = make_engine(f"sqlite+aiosqlite:///{work / 'cost.db'}")
    await migrate(engine)
    async with engine.begin() as conn:
        for i, env in enumerate(names):
            await deployments.record(
                conn,
                track=True,
                repo="acme/models",
                environment=env,
                model="iris",
                version=f"{i:040x}",
                deploy_repo="acme/deploy",
                deploy_commit=f"{i:040x}",
                sha256=f"{i:064x}",
                state="deployed",
            )
    async with aiohttp.ClientSession() as session:
        provider = PrometheusHTTP(prometheus.url, session)  # type: ignore[attr-defined]
        tracker = LiveTracker(
            engine,
            DeployRecords(engine, web_url="https://github.com", bot_login="modelship[bot]", live_tracking=True),
            configs=Configs(),  # type: ignore[arg-type]
            github_for=no_github,
            provider=provider,
            template=load_templates(SOURCE_ROOT / "config" / "promql" / "live")["serving"],
            interval=interval,
        )
        await tracker.round()  # the first round tells `committed` for every row: not the steady state
        rows = []
        for _ in range(rounds):
            queries, cpu = provider.queries, time.process_time()
            done = await tracker.round()
            rows.append((provider.queries - queries, time.process_time() - cpu, done.seconds, len(done.steps)))
            await asyncio.sleep(0.5)
    await engine.dispose()
    print(f"\nLive tracker cost per round: {environments} environments rolling out, {rounds} rounds\n")
    print(f"| round | tracked | queries | bot CPU (ms) | wall (ms) | % of a core @ {interval:g} s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, (q, c, w, n) in enumerate(rows, 1):
        print(f"| {i} | {n} | {q} | {c * 1000:.1f} | {w * 1000:.1f} | {100 * c / interval:.2f} % |")
    mean = sum(r[1] for r in rows) / len(rows)
    verdict = "meets" if mean / interval <= 0.02 else "MISSES"
    print(f"mean {mean * 1000:.1f} ms CPU per round = {100 * mean / interval:.2f} % of one core ({verdict} <= 2 %)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merges", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--live-merges", type=int, default=10)
    parser.add_argument("--live-interval", type=float, default=10.0, help="the live round (production default 10 s)")
    parser.add_argument("--environments", type=int, default=100, help="environments tracked in the cost table")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["deploy", "live"], help="run one part only")
    args = parser.parse_args()
    if args.only != "live":
        asyncio.run(main(args.merges, args.replicas))
    if args.only != "deploy":
        asyncio.run(live(args.live_merges, args.live_interval, args.environments, args.rounds))
