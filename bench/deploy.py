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
Run: `.venv/bin/python bench/deploy.py [--merges 50] [--replicas 3]`.
Targets (issue 6): p95 <= 2 s per deploy and >= 60 serialised deploys per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from bot.deploy.gitops import CommitResult, DeployRepo, RepoLocks, RetryPolicy
from bot.deploy.manifest import ModelRef, commit_message, load_values, plan_deploy, values_path
from bot.devhub import RunningDevHub, start

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "charts/model-server/values.schema.json").read_text())
DEFAULTS = load_values((ROOT / "charts/model-server/values.yaml").read_text())


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
    started = time.perf_counter()
    result = await repo.commit_file(
        values_path("staging", ref.name),
        lambda text: plan_deploy(text, ref, SCHEMA, DEFAULTS).text,
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
        running: RunningDevHub = await start(work / "devhub")
        try:
            hub = running.hub
            await hub.create_app()
            await hub.create_repo("acme/deploy", {"README.md": "# deploy repository\n"})
            token = hub.issue_token(await hub.install("acme", ["acme/deploy"])).value
            url = f"{running.base_url}/acme/deploy.git"

            async def provider() -> str:
                return token

            def repo(name: str, locks: RepoLocks | None = None) -> DeployRepo:
                return DeployRepo(
                    url,
                    work / name,
                    token=provider,
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
    print("targets: p95 <= 2 s for a single deploy (sequential row); >= 60 serialised deploys/min (burst row)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merges", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.merges, args.replicas))
