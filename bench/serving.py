"""Serving benchmark: merge -> deploy commit -> pods ready serving the new sha256, through the GitOps sync.

Everything real: devhub (the GitHub simulator), the bot (reviews in the podman sandbox, publishing the
kept variant to the local OCI registry, deploy commits pinning it by digest), and devkit.gitops_sync in
the role of Argo CD: it follows the deploy repository (1 s polls), renders charts/model-server with
Helm's SDK and runs the pods with `podman kube play` (2 replicas, rolled one at a time). Each round
retrains the sample model, opens a PR, lets the bot review it (not timed), merges it and times:

  merge -> commit     the bot: webhook, deploy job (artifact presence checked in the registry, pushed
                      again only if missing), Helm render, commit and push to the deploy repository;
  commit -> seen      the sync's next poll fetches it and Helm renders it;
  seen -> played      the first new pod is played (podman kube play);
  played -> ready     that pod pulls the artifact by digest, verifies it and answers its readiness
                      probe: the new sha256 is served;
  ready -> rolled out the second replica, and the old pods removed.

Prints p50/p95 per step over the merges and each step's share of merge -> rolled out. The artifact is
pushed when the review keeps the variant (MODELSHIP_REGISTRY), before the merge: on the merge path the
deploy only checks by digest that the registry has it (inside merge -> commit); bench/artifacts.py times
the push itself. The pods' start dominates; on a machine shared with other work, podman's lock
contention shows in the p95 (a round of the sync waits for `podman ps`).
Run: `.venv/bin/python bench/serving.py [--merges 10]`. First run on a machine
builds the product image (minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devkit.demo import (
    DEPLOY,
    ENV,
    REPO,
    SAMPLE,
    VALUES,
    environment_values,
    retrain_sample,
    sample_files,
)
from devkit.devhub import start
from devkit.gitops_sync import GitOpsSync
from devkit.harness import WEBHOOK_SECRET, bot_running
from devkit.processes import podman_url, product_image, registry_host

CONFIG = f"""
environments:
  {ENV}: {{auto: true}}
deploy: {{repository: {DEPLOY}}}
"""
STEPS = ("merge -> commit", "commit -> seen", "seen -> played", "played -> ready", "ready -> rolled out")


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def idle(service: object, limit: float = 900) -> None:
    queue = service.services.queue  # type: ignore[attr-defined]
    await asyncio.sleep(0.3)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        depth = await queue.depth()
        if not depth.get("queued") and not depth.get("running"):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the bot's jobs did not finish within {limit:g}s")


async def main(merges: int) -> None:
    registry = await asyncio.to_thread(registry_host)
    image = await asyncio.to_thread(product_image)
    engine = await asyncio.to_thread(podman_url)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    devhub = await start(work / "devhub", webhook_secret=WEBHOOK_SECRET)
    hub = devhub.hub
    rows: list[dict[str, float]] = []
    try:
        app_id, key = await hub.create_app(slug="modelship")
        async with bot_running(
            devhub,
            work,
            app=(app_id, key),
            container_engine_url=engine,
            sandbox_mount_runtime=True,
            registry=registry,
            registry_insecure=True,
        ) as bot:
            service = bot.service
            config = (SAMPLE / ".modelship.yml").read_text() + CONFIG
            await hub.create_repo(REPO, {**sample_files(), ".modelship.yml": config.encode()})
            hub.set_permission(REPO, "alice", "write")
            await hub.create_repo(DEPLOY, {"README.md": "# deploy\n", VALUES: environment_values(image)})
            installation = await hub.install("acme", [REPO, DEPLOY])
            sync = GitOpsSync(
                f"{devhub.base_url}/{DEPLOY}.git", work / "sync", token=lambda: hub.issue_token(installation).value
            )
            sync.start()
            try:
                for i in range(merges + 1):  # the first merge only brings the first version up: not timed
                    model = await asyncio.to_thread(retrain_sample, work / "retrain", 10 + i, 3)
                    await hub.push(REPO, f"retrain-{i}", {"models/churn.skops": model}, message=f"retrain {i}")
                    number = await hub.open_pr(REPO, f"retrain-{i}", title=f"Retrain {i}", user="alice")
                    await idle(service)  # the review (sandbox, publish): not what this measures
                    before = await asyncio.to_thread(hub.git.resolve, DEPLOY, "refs/heads/main")
                    merged = time.time()
                    await hub.merge_pr(REPO, number, user="alice")
                    head = before
                    while head == before:
                        await asyncio.sleep(0.01)
                        head = await asyncio.to_thread(hub.git.resolve, DEPLOY, "refs/heads/main")
                    committed = time.time()
                    applied = await asyncio.to_thread(sync.wait_rolled_out, ENV, "churn", commit=head, timeout=300)
                    new = [p for p in sync.pods(ENV, "churn") if p.sha256 == applied.sha256]
                    ready = min(p.ready_at or 0 for p in new)
                    row = {
                        STEPS[0]: committed - merged,
                        STEPS[1]: applied.seen_at - committed,
                        STEPS[2]: (applied.applied_at or applied.seen_at) - applied.seen_at,
                        STEPS[3]: ready - (applied.applied_at or applied.seen_at),
                        STEPS[4]: (applied.rolled_out_at or ready) - ready,
                    }
                    print(f"merge {i}: " + ", ".join(f"{k} {v:.2f}s" for k, v in row.items()), file=sys.stderr)
                    if i:
                        rows.append(row)
                    await idle(service)
            finally:
                await asyncio.to_thread(sync.stop)
                await asyncio.to_thread(sync.down)
    finally:
        await devhub.stop()

    totals = [sum(r.values()) for r in rows]
    to_ready = [sum(r[s] for s in STEPS[:4]) for r in rows]
    print(f"\nmerge -> pods serving the new sha256 through the GitOps sync ({len(rows)} merges, 2 replicas)\n")
    print("| step | p50 (s) | p95 (s) | share of merge -> rolled out |")
    print("|---|---:|---:|---:|")
    for step in STEPS:
        values = [r[step] for r in rows]
        share = sum(values) / sum(totals)
        print(f"| {step} | {statistics.median(values):.2f} | {percentile(values, 95):.2f} | {share:.0%} |")
    print(f"| **merge -> first pod ready** | {statistics.median(to_ready):.2f} | {percentile(to_ready, 95):.2f} | |")
    print(f"| **merge -> rolled out** | {statistics.median(totals):.2f} | {percentile(totals, 95):.2f} | 100% |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merges", type=int, default=10)
    asyncio.run(main(parser.parse_args().merges))
