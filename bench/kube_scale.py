"""Scale benchmark: N PRs opened at once against two bot replicas on one PostgreSQL, per sandbox backend.

Run: `.venv/bin/python bench/kube_scale.py [--prs 20] [--replicas 2] [--workers 2]
[--backends kubernetes,docker] [--profile]`.

Starts devhub (GitHub simulator, real git), one PostgreSQL cluster, the shared podman service, registry and
product image, and for the Kubernetes backend the dev kit's API stand-in (devkit.kubeapi, whose kubelet
runs pods on the same podman). For each backend, in the same run, on a fresh database: the replicas start
(the same GitHub App, as pods of one Deployment are), the sample repository gets N branches (a data change
each: reviewed like a model change, with base and head evaluated and the head optimized), the N PRs are
opened at once, and the replicas work until the queue is empty. Rows, from the queue's own timestamps
(``jobs.created_at`` -> ``claimed_at`` -> ``finished_at``) of the N review jobs:
  - throughput: reviews per minute, first PR opened -> last review job finished;
  - queue wait p50/p95: queued -> first claimed by a worker;
  - end to end p50/p95: queued -> finished (the comment and check run are written before it finishes);
  - sandbox runs: containers started per replica, and base sides answered from a finished identical run
    (bot.sandbox.reuse) instead.
The Docker backend (on the product image too: the same bytes in the container) is the baseline;
``--no-reuse`` measures both with every side run (no bot.sandbox.reuse). ``--profile`` adds where each
review's time goes (summed over reviews and as p50/max per call): git checkout, the inputs image (pack +
push), the stand-in kubelet's image pull, container create and start, the wait for exit, the log
read-back, the Job's deletion.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bot.review.service import ReviewService  # noqa: E402
from bot.sandbox.reuse import ReusingRunner  # noqa: E402
from bot.store.models import Job  # noqa: E402
from bot.store.review_models import Review  # noqa: E402
from devkit.demo import sample_files  # noqa: E402
from devkit.devhub import start  # noqa: E402
from devkit.harness import WEBHOOK_SECRET, bot_running  # noqa: E402
from devkit.processes import PostgresCluster, podman_url, product_image, registry_host  # noqa: E402


class Phases:
    """Durations of wrapped calls, by phase name (``--profile``): nothing in the product changes."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = defaultdict(list)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, phase: str) -> None:
        original = getattr(owner, attribute)
        calls = self.calls[phase]
        if asyncio.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    calls.append(time.perf_counter() - began)

            setattr(owner, attribute, timed_async)
        else:

            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    calls.append(time.perf_counter() - began)

            setattr(owner, attribute, timed)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def install(self) -> None:
        import bot.review.service as review_service
        from bot.sandbox.docker_engine import DockerEngineRunner
        from bot.sandbox.kube_runner import KubernetesJobRunner
        from devkit.kubeapi.kubelet import Kubelet

        self.wrap(review_service, "fetch_pull_request", "bot: git checkout (fetch + export)")
        self.wrap(KubernetesJobRunner, "run", "sandbox run (runner, whole)")
        self.wrap(DockerEngineRunner, "run", "sandbox run (runner, whole)")
        self.wrap(KubernetesJobRunner, "_push_inputs", "bot: inputs image (pack + push)")
        self.wrap(KubernetesJobRunner, "_log", "bot: log read-back")
        self.wrap(KubernetesJobRunner, "_cleanup", "bot: delete Job (Foreground)")
        self.wrap(Kubelet, "_image", "kubelet: image present/pull")
        self.wrap(Kubelet, "_create", "kubelet: create (+ image)")
        self.wrap(Kubelet, "_start", "kubelet: container start")
        self.wrap(Kubelet, "_wait", "kubelet: wait for exit (the run)")
        self.wrap(Kubelet, "terminate", "kubelet: pod deletion")

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def rows(self) -> list[str]:
        lines = [f"{'phase (--profile)':<40} {'calls':>5} {'sum s':>8} {'p50 s':>7} {'max s':>7}"]
        for phase, values in self.calls.items():
            if values:
                lines.append(
                    f"{phase:<40} {len(values):>5} {sum(values):8.1f} {statistics.median(values):7.2f} "
                    f"{max(values):7.2f}"
                )
        for values in self.calls.values():
            values.clear()  # in place: the wrappers hold these lists
        return lines


def reusing(running: Any) -> ReusingRunner:
    """The replica's sandbox runner: its ``reused`` counts the runs answered without a container (with
    ``--no-reuse`` one that never reuses is put in its place, to count the same way)."""
    review = running.service.workers.runners["review"].__self__
    assert isinstance(review, ReviewService) and review.sandbox.runner is not None
    if not isinstance(review.sandbox.runner, ReusingRunner):
        review.sandbox = replace(review.sandbox, runner=ReusingRunner(review.sandbox.runner, ttl_s=0))
    assert isinstance(review.sandbox.runner, ReusingRunner)
    return review.sandbox.runner


class Counting:
    """Counts the runs that reached the backend (a container, or a Job, started)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.runs = inner, 0
        self.timings: list[tuple[float, float]] = []  # (start, start to result) of each run, seconds

    async def run(self, spec: Any) -> Any:
        self.runs += 1
        result = await self.inner.run(spec)
        self.timings.append((result.container_start_s, result.duration_s))
        return result

    async def image_identity(self, image: str) -> str | None:  # for the reuse key
        identity: str | None = await self.inner.image_identity(image)
        return identity


def counted(runner: ReusingRunner) -> Counting:
    runner.inner = Counting(runner.inner)
    return runner.inner


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def one_backend(
    backend: str, settings: dict[str, Any], work: Path, cluster: PostgresCluster, prs: int, replicas: int
) -> dict[str, Any]:
    from tests.fixtures.postgres import _create_database

    db_url = await _create_database(cluster.url)
    devhub = await start(work / f"devhub-{backend}", webhook_secret=WEBHOOK_SECRET)
    repo = f"acme/churn-{backend}"
    files = sample_files()
    try:
        async with contextlib.AsyncExitStack() as stack:
            first = await stack.enter_async_context(
                bot_running(devhub, work, db_url, data_dir=work / f"{backend}-0", **settings(0))
            )
            hub = devhub.hub
            await hub.create_repo(repo, files)
            await hub.install("acme", [repo])
            hub.set_permission(repo, "alice", "write")
            key = first.settings.github_private_key
            assert key is not None
            bots = [first]
            for i in range(1, replicas):
                bots.append(
                    await stack.enter_async_context(
                        bot_running(
                            devhub,
                            work,
                            db_url,
                            app=(first.app_id, key.get_secret_value()),
                            data_dir=work / f"{backend}-{i}",
                            **settings(i),
                        )
                    )
                )
            reusers = [reusing(b) for b in bots]
            counts = [counted(r) for r in reusers]
            eval_csv = files["data/eval.csv"]
            for i in range(prs):
                extra = eval_csv.splitlines(keepends=True)[1] * (i + 1)
                await hub.push(repo, f"pr-{i}", {"data/eval.csv": eval_csv + extra}, message=f"More data {i}")
            opened = time.time()
            numbers = await asyncio.gather(*(hub.open_pr(repo, f"pr-{i}", title=f"Data {i}") for i in range(prs)))
            await asyncio.gather(*(b.idle(timeout=1800) for b in bots))
            async with first.service.services.engine.connect() as conn:
                jobs = (
                    await conn.execute(
                        select(Job.created_at, Job.claimed_at, Job.finished_at, Job.state).where(Job.kind == "review")
                    )
                ).all()
                reviews = (await conn.execute(select(Review.head_sha, Review.conclusion))).all()
            comments = sum(
                1
                for c in hub.comments.values()
                if c.repo == repo and c.issue_number in numbers and "<!-- modelship:review -->" in c.body
            )
            reused = sum(r.reused for r in reusers)
    finally:
        await devhub.stop()
    states = sorted(j.state for j in jobs)
    assert len(jobs) == prs and set(states) == {"done"}, f"review jobs: {states} (see the log above)"
    waits = [(j.claimed_at - j.created_at).total_seconds() for j in jobs]
    ends = [(j.finished_at - j.created_at).total_seconds() for j in jobs]
    last = max(j.finished_at for j in jobs).timestamp()
    return {
        "backend": backend,
        "reviews": len(reviews),
        "comments": comments,
        "failed": sum(1 for r in reviews if r.conclusion not in ("success", "failure")),
        "wall": last - opened,
        "throughput": len(jobs) / (last - opened) * 60,
        "wait": (statistics.median(waits), quantile(waits, 0.95)),
        "e2e": (statistics.median(ends), quantile(ends, 0.95)),
        "runs": [c.runs for c in counts],
        "reused": reused,
        "timings": [t for c in counts for t in c.timings],
    }


@contextlib.contextmanager
def kubernetes_settings(work: Path) -> Iterator[Callable[[int], dict[str, Any]]]:
    import docker
    import kubernetes

    from devkit.kubeapi import running_in_thread

    image, registry = product_image(), registry_host()
    client = docker.DockerClient(base_url=podman_url())
    with running_in_thread(docker_client=client, workdir=work / "kubeapi") as api:
        kubeconfig = api.write_kubeconfig(work / "kubeconfig")
        core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(kubeconfig)))
        core.create_namespace({"metadata": {"name": "bench-scale"}})

        def settings(i: int) -> dict[str, Any]:
            return {
                "sandbox": "on",
                "sandbox_backend": "kubernetes",
                "kubernetes_kubeconfig": kubeconfig,
                "kubernetes_namespace": "bench-scale",
                "kubernetes_instance": f"bench-scale-{i}",
                "registry": registry,
                "registry_insecure": True,
                "sandbox_image": image,
                "kubernetes_inputs_image": image,
            }

        yield settings


def docker_settings() -> Callable[[int], dict[str, Any]]:
    # The product image, as the Kubernetes backend runs: the same bytes in the container on both backends.
    url, image = podman_url(), product_image()
    return lambda _i: {"container_engine_url": url, "sandbox_image": image}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prs", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="job workers per replica (MODELSHIP_WORKERS)")
    parser.add_argument("--backends", default="kubernetes,docker", help="comma-separated, measured in this order")
    parser.add_argument("--profile", action="store_true", help="also print where the time goes, per phase")
    parser.add_argument("--no-reuse", action="store_true", help="MODELSHIP_SANDBOX_REUSE_SECONDS=0: run every side")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    phases = Phases()
    if args.profile:
        phases.install()
    results, profiles = [], {}
    cluster = PostgresCluster()
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-kube-scale-") as tmp:
            work = Path(tmp)
            for backend in args.backends.split(","):
                print(f"{backend}: {args.prs} PRs at once, {args.replicas} replicas ...", file=sys.stderr, flush=True)
                with contextlib.ExitStack() as stack:
                    if backend == "kubernetes":
                        base = stack.enter_context(kubernetes_settings(work))
                    else:
                        base = docker_settings()

                    def settings(i: int, base: Callable[[int], dict[str, Any]] = base) -> dict[str, Any]:
                        reuse = {"sandbox_reuse_seconds": 0} if args.no_reuse else {}
                        return {**base(i), "workers": args.workers, **reuse}

                    results.append(asyncio.run(one_backend(backend, settings, work, cluster, args.prs, args.replicas)))
                profiles[backend] = phases.rows()
    finally:
        phases.uninstall()
        cluster.stop()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{args.prs} PRs opened at once, {args.replicas} replicas x {args.workers} workers, one PostgreSQL "
        f"({os.cpu_count()} CPUs; load average after the runs {load})"
    )
    print(
        f"{'backend':<12} {'reviews':>7} {'wall s':>7} {'rev/min':>8} {'wait p50':>8} {'p95':>6} "
        f"{'e2e p50':>8} {'p95':>6} {'runs/replica':>13} {'reused':>6}"
    )
    for r in results:
        print(
            f"{r['backend']:<12} {r['reviews']:>7} {r['wall']:7.1f} {r['throughput']:8.2f} {r['wait'][0]:8.1f} "
            f"{r['wait'][1]:6.1f} {r['e2e'][0]:8.1f} {r['e2e'][1]:6.1f} {'/'.join(map(str, r['runs'])):>13} "
            f"{r['reused']:>6}"
        )
        assert r["reviews"] == args.prs and r["comments"] == args.prs, r
    print(
        f"\n{'sandbox runs under that load':<28} {'runs':>5} {'start p50':>9} {'p95':>6} {'result p50':>10} {'p95':>6}"
        "   (start: create -> container running; result: the whole run)"
    )
    for r in results:
        starts, totals = [t[0] for t in r["timings"]], [t[1] for t in r["timings"]]
        print(
            f"{r['backend']:<28} {len(totals):>5} {statistics.median(starts):9.1f} {quantile(starts, 0.95):6.1f} "
            f"{statistics.median(totals):10.1f} {quantile(totals, 0.95):6.1f}"
        )
    print(
        "(one run at a time, and the stand-in's own cost for a bare Job: bench/sandbox.py --kubernetes, "
        "bench/kubeapi.py)"
    )
    if len(results) == 2:
        a, b = results
        print(
            f"\n{a['backend']} vs {b['backend']} (baseline): throughput x{a['throughput'] / b['throughput']:.2f}, "
            f"queue wait p95 {a['wait'][1] - b['wait'][1]:+.1f} s, end to end p95 {a['e2e'][1] - b['e2e'][1]:+.1f} s"
        )
    for backend, lines in profiles.items():
        if args.profile and len(lines) > 1:
            print(f"\n{backend}:")
            print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
