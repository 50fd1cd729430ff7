"""`python -m devkit demo` (`make demo`): the whole flow on loopback — devhub, the bot, a sample model repo.

Prints each step, every webhook delivery with the bot's answer, the jobs the bot ran and the PR comments;
then merges the PR: the bot publishes the reviewed variant to the local OCI registry and commits its
digest to the deploy repository, and the GitOps sync (devkit.gitops_sync, in the role of Argo CD) runs
what the chart renders from that commit with `podman kube play`. Traffic goes to the pods, Prometheus
scrapes them; a second version rolls out, is broken, and the guard rolls it back through the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import inspect
import itertools
import logging
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import Service
from bot.context import need
from bot.deploy.manifest import current_ref
from bot.store.review_models import Deployment
from devkit.devhub import RunningDevHub
from devkit.devhub import start as start_devhub
from devkit.gitops_sync import GitOpsSync
from devkit.harness import WEBHOOK_SECRET, bot_running
from devkit.processes import Process, ProcessError, Prometheus, podman_url, product_image, registry_host
from devkit.traffic import traffic

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample-model-repo"
REPO = "acme/churn-model"
DEPLOY = "acme/deploy"
ENV = "staging"
VALUES = f"environments/{ENV}/churn/values.yaml"
ROLLBACK_BRANCH = f"modelship/rollback/{ENV}/churn"
INTERVAL, FAILURE_LIMIT = 1, 3
REPLICAS = 2


def environment_values(image: str) -> str:
    """What a platform team writes once into the deploy repository for the environment: where the image
    comes from, how many replicas, plain HTTP to the local registry, and (demo only) fault injection.
    Modelship adds and owns only the `model:` block; until then the chart renders no workload."""
    registry, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    return yaml.safe_dump(
        {
            "environment": ENV,
            "replicaCount": REPLICAS,
            "image": {"registry": registry, "repository": repository, "tag": tag},
            "modelSource": {"insecure": True},
            "server": {"extraArgs": ["--allow-fault-injection"]},
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        },
        sort_keys=False,
    )


# What the demo adds to the sample's .modelship.yml: where merged models go, and what guards them there.
DEPLOY_CONFIG = f"""
environments:
  {ENV}:
    auto: true                      # every merge that changes the model is deployed here
    guard:
      interval: {INTERVAL}s
      initial_delay: 0s
      failure_limit: {FAILURE_LIMIT}                # 3 bad analyses in a row -> rollback
      auto_merge: true              # merge the rollback PR at once
      checks:
        - {{template: error_rate, max: 0.02, window: 5s}}
  production:
    via: pull_request               # reached by `/modelship promote production` only
    upstream: {ENV}
deploy: {{repository: {DEPLOY}}}
"""


def sample_files(root: Path = SAMPLE) -> dict[str, bytes]:
    """A directory's files as devhub.create_repo takes them (the sample model repository by default)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _sample_rows(count: int = 4) -> list[list[float]]:
    """A few evaluation rows (features only), the traffic the model servers get."""
    with (SAMPLE / "data" / "eval.csv").open() as f:
        reader = csv.DictReader(f)
        return [[float(v) for k, v in row.items() if k != "label"] for row in itertools.islice(reader, count)]


class Demo:
    def __init__(self, workdir: Path, echo: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.echo = echo
        self.shown = 0
        self.processes: list[Process] = []
        self.shown_so_far: list[str] = []
        self.forced = False  # a merge held back by review_passed was deployed with `--force`
        self.registry = ""  # host:port of the local OCI registry
        self.image = ""  # the product image the chart runs

    def step(self, text: str) -> None:
        self.echo(click.style(f"\n==> {text}", fg="cyan", bold=True))
        self.shown_so_far.append(text)

    def quote(self, text: str) -> None:
        for line in text.rstrip().splitlines():
            self.echo(f"    | {line}")

    def show_deliveries(self, devhub: RunningDevHub) -> None:
        for d in devhub.hub.deliveries[self.shown :]:
            event = f"{d.event}.{d.action}" if d.action else d.event
            answers = " then ".join(str(a.status) for a in d.attempts)
            again = "  (redelivered)" if len(d.attempts) > 1 else ""
            self.echo(f"    webhook {event:<28} {d.guid[:8]}  -> bot answered {answers}{again}")
        self.shown = len(devhub.hub.deliveries)

    async def settle(self, devhub: RunningDevHub, service: Service, limit: float = 120) -> None:
        """Wait for the bot's jobs, then print the new deliveries; one the bot failed to take (5xx) is
        redelivered once, as GitHub's "Redeliver" button would (the bot deduplicates by GUID)."""
        await self.wait_idle(service, limit)
        failed = [d for d in devhub.hub.deliveries[self.shown :] if d.status is None or d.status >= 500]
        for delivery in failed:
            await devhub.hub.redeliver(delivery.guid)
        if failed:
            await self.wait_idle(service, limit)
        self.show_deliveries(devhub)

    async def wait_idle(self, service: Service, limit: float = 120) -> None:
        await asyncio.sleep(0.5)  # a delivery reaches the bot's queue asynchronously
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            depth = await service.services.queue.depth()
            if not depth.get("queued") and not depth.get("running"):
                return
            await asyncio.sleep(0.1)
        raise click.ClickException(f"the bot did not finish its jobs within {limit:.0f}s: {depth}")

    async def run(self) -> None:
        self.step("Starting the local OCI registry and building the product image (the first build takes minutes)")
        self.registry = await asyncio.to_thread(registry_host)
        self.image = await asyncio.to_thread(product_image)
        self.echo(f"    registry at {self.registry}; model-server image {self.image}")
        self.step("Starting Prometheus (1 s scrapes; pods discovered by their prometheus.io annotations)")
        prometheus = Prometheus(self.workdir / "prometheus")
        self.processes.append(prometheus.process)
        try:
            await asyncio.to_thread(prometheus.start)
            self.echo(f"    Prometheus at {prometheus.url}")
            await self.with_devhub(prometheus)
        finally:
            for process in reversed(self.processes):
                await asyncio.to_thread(process.stop)

    async def with_devhub(self, prometheus: Prometheus) -> None:
        self.step("Starting devhub, the local GitHub simulator")
        devhub = await start_devhub(self.workdir / "devhub", webhook_secret=WEBHOOK_SECRET)
        hub = devhub.hub
        app_id, key = await hub.create_app(slug="modelship")
        self.echo(f"    devhub at {devhub.base_url}; GitHub App 'modelship' registered (id {app_id})")

        self.step("Starting the bot (SQLite, 2 workers, podman sandbox, the registry, guard every second)")
        client_id, client_secret = hub.oauth_client(app_id)
        try:
            engine_url = await asyncio.to_thread(podman_url)
            async with bot_running(
                devhub,
                self.workdir,
                app=(app_id, key),
                container_engine_url=engine_url,
                sandbox_mount_runtime=True,
                prometheus_url=prometheus.url,
                guard_interval_seconds=INTERVAL,
                # the dashboard, signed in through devhub's authorize page
                ui="on",
                ui_client_id=client_id,
                ui_client_secret=SecretStr(client_secret),
                ui_session_secret=SecretStr(secrets.token_hex(32)),
                github_web_url=devhub.base_url,
                registry=self.registry,
                registry_insecure=True,
            ) as bot:
                self.echo(f"    bot listening on {hub.sender.url}")
                self.echo(f"    dashboard at {bot.url}/ui/ (sign in on devhub's page as alice, who can read {REPO})")
                await self.flow(devhub, bot.service, prometheus)
        finally:
            await devhub.stop()

    def show_comments(
        self, devhub: RunningDevHub, number: int, *, since: int = 0, only: Callable[[str], bool] | None = None
    ) -> int:
        """Print the PR's comments with an id above ``since``; returns the newest id."""
        newest = since
        for comment in sorted(devhub.hub.comments.values(), key=lambda c: c.id):
            if comment.repo != REPO or comment.issue_number != number or comment.id <= since:
                continue
            newest = comment.id
            if only is not None and not only(comment.body):
                continue
            self.echo(click.style(f"    @{comment.user.login} (comment {comment.id}):", bold=True))
            self.quote(comment.body)
        return newest

    def show_check_runs(self, devhub: RunningDevHub, head_sha: str) -> None:
        for run in devhub.hub.check_runs.values():
            if run.head_sha == head_sha:
                self.echo(f"    check run {run.name}: {run.status} / {run.conclusion} — {run.output.get('title', '')}")

    async def open_reviewed_pr(
        self, devhub: RunningDevHub, service: Service, branch: str, trees: int, depth: int, title: str
    ) -> int:
        self.step(f"Retraining the model with {trees} trees of depth {depth} (train.py, in a subprocess)")
        retrained = await asyncio.to_thread(retrain_sample, self.workdir / "retrain", trees, depth)
        await devhub.hub.push(REPO, branch, {"models/churn.skops": retrained}, message=title)
        self.step("Opening the pull request; the bot evaluates base and head in the sandbox")
        number = await devhub.hub.open_pr(REPO, branch, title=title, user="alice")
        with click.progressbar(length=1, label="    reviewing", show_eta=False) as bar:
            await self.settle(devhub, service, limit=600)
            bar.update(1)
        return number

    async def flow(self, devhub: RunningDevHub, service: Service, prometheus: Prometheus) -> None:
        hub = devhub.hub
        self.step(f"Creating {REPO} from examples/sample-model-repo and installing the app")
        await hub.create_repo(REPO, sample_files())
        hub.set_permission(REPO, "alice", "write")
        await hub.install("acme", [REPO])
        await hub.ping()
        await self.settle(devhub, service)

        self.step(f"GitOps: creating the deploy repository {DEPLOY} and adding environments to .modelship.yml")
        seeded = environment_values(self.image)
        readme = "# Deploy repository\n\nHelm values for charts/model-server; Modelship writes the `model:` blocks.\n"
        await hub.create_repo(DEPLOY, {"README.md": readme, VALUES: seeded})
        installation = await hub.install("acme", [DEPLOY])
        self.echo(f"    {VALUES} as the platform team wrote it (no model yet: the chart renders no workload):")
        self.quote(seeded)
        sync = GitOpsSync(
            f"{devhub.base_url}/{DEPLOY}.git",
            self.workdir / "gitops-sync",
            token=lambda: hub.issue_token(installation).value,
            prometheus=prometheus,
        )
        sync.start()
        self.echo(
            f"    GitOps sync following {DEPLOY}@main (renders charts/model-server, runs it with podman kube play)"
        )
        try:
            await self.deploy_flow(devhub, service, prometheus, sync)
        finally:
            await asyncio.to_thread(sync.stop)
            await asyncio.to_thread(sync.down)

    async def deploy_flow(
        self, devhub: RunningDevHub, service: Service, prometheus: Prometheus, sync: GitOpsSync
    ) -> None:
        hub = devhub.hub
        config = (SAMPLE / ".modelship.yml").read_text() + DEPLOY_CONFIG
        await hub.push(REPO, "main", {".modelship.yml": config}, message="Deploy merged models to staging")
        self.echo("    pushed to main, .modelship.yml now ends with:")
        self.quote(DEPLOY_CONFIG.strip("\n"))
        await self.settle(devhub, service)

        number = await self.open_reviewed_pr(devhub, service, "retrain", 20, 3, "Retrain the churn model")
        self.step(f"The bot's review comment on {REPO}#{number}")
        seen = self.show_comments(devhub, number)
        head1 = hub.pull(REPO, number).head_sha
        self.show_check_runs(devhub, head1)

        self.step("Chat-ops: alice asks for help, then for a re-evaluation")
        await hub.comment(REPO, number, "/modelship help", user="alice")
        await hub.comment(REPO, number, "/modelship evaluate", user="alice")
        await self.settle(devhub, service, limit=600)
        self.show_comments(devhub, number, since=seen)

        v1 = await self.merge_and_show_deploy(devhub, service, number, full=True)
        await self.show_rollout(devhub, sync, f"v1 ({v1[:7]})")
        await self.show_live(devhub, v1)

        self.step("Traffic starts: steady predictions to the pods; Prometheus scrapes them")
        servers: list[str] = []
        follower = asyncio.create_task(follow_pods(sync, servers))
        try:
            async with traffic(servers, _sample_rows()) as client:
                healthy = await self.wait_health(service, v1, "healthy", 45)
                self.echo(f"    guard verdict for v1 in {ENV}: {healthy}")

                number2 = await self.open_reviewed_pr(devhub, service, "retrain-v2", 40, 4, "Retrain with 40 trees")
                head2 = hub.pull(REPO, number2).head_sha
                self.show_check_runs(devhub, head2)
                self.show_chosen_variant(devhub, number2)
                v2 = await self.merge_and_show_deploy(devhub, service, number2, full=False)
                await self.show_rollout(devhub, sync, f"v2 ({v2[:7]})")
                await self.show_live(devhub, v2)
                healthy = await self.wait_health(service, v2, "healthy", 45)
                self.echo(f"    guard verdict for v2 in {ENV}: {healthy}")

                self.step("Breaking v2: half of its requests now fail (POST /admin/faults on each pod)")
                for pod in sync.pods(ENV, "churn"):
                    async with client.post(f"{pod.url}/admin/faults", json={"error_rate": 0.5}) as response:
                        self.echo(f"    {pod.name}: {response.status} {await response.text()}")
                loop = asyncio.get_running_loop()
                started = loop.time()
                pull = await wait_for(lambda: _rollback_pull(devhub), 60, "the guard's rollback PR")
                self.echo(
                    f"    rollback PR {DEPLOY}#{pull.number} opened {loop.time() - started:.1f}s after the breach"
                )
                await wait_for(lambda: pull.merged, 30, "the rollback PR to be merged (auto_merge: true)")
                self.echo("    merged by the bot (auto_merge: true)")
                await self.show_rollback(devhub, service, pull, number2, v1, sync)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

        self.step("Jobs the bot ran")
        for job in await service.services.queue.list(("done", "parked", "queued", "running", "cancelled")):
            self.echo(f"    job {job['id']:>3} {job['kind']:8} {job['serial_key']:30} {job['state']}")

        self.step("Demo finished: what you saw")
        for line in (
            f"{REPO}#{number}: reviewed in the podman sandbox (base/head metrics, gates, ONNX variants); "
            "chat-ops /modelship help and /modelship evaluate",
            (
                f"its review failed a gate, so merging it deployed nothing (requires: review_passed); root's "
                f"`/modelship deploy {ENV} --force` deployed {v1[:7]} with a Modelship-Override trailer"
                if self.forced
                else f"merging it deployed {v1[:7]} to {ENV} through GitOps"
            )
            + f": the reviewed variant published to the registry, a commit pinning it by digest in {DEPLOY}, "
            "a GitHub Deployment, the bot's deploy comment",
            f"the GitOps sync rendered charts/model-server from that commit and ran {REPLICAS} pods with podman kube "
            "play; each fetched and verified the artifact; Prometheus scraped them, the guard judged them healthy",
            f"{REPO}#{number2} deployed {v2[:7]} the same way: the sync rolled the pods over to it",
            f"50% errors injected into {v2[:7]}: after {FAILURE_LIMIT} failed checks the guard opened and merged "
            f"{DEPLOY}#{pull.number} (evidence, PromQL, Mermaid chart), restored {v1[:7]} pinned "
            f"and told {REPO}#{number2}; the sync rolled the pods back to {v1[:7]}",
        ):
            self.echo(f"    - {line}")

    def show_chosen_variant(self, devhub: RunningDevHub, number: int) -> None:
        for comment in devhub.hub.comments.values():
            if comment.repo == REPO and comment.issue_number == number:
                for line in comment.body.splitlines():
                    if line.startswith("Chosen:"):
                        self.echo(f"    review: {line}")

    async def merge_and_show_deploy(self, devhub: RunningDevHub, service: Service, number: int, *, full: bool) -> str:
        hub = devhub.hub
        self.step(f"Merging {REPO}#{number}: the bot deploys the model to {ENV} in {DEPLOY}")
        merge_sha = await hub.merge_pr(REPO, number, user="alice")
        await self.settle(devhub, service)
        bare = hub.git.path(DEPLOY)
        self.echo(click.style("    deploy commit in acme/deploy:", bold=True))
        self.quote(await asyncio.to_thread(_git, bare, "show", "--stat", *(["-p"] if full else []), "main"))
        deployments = [d for d in hub.deployments.values() if d.repo == REPO and d.sha == merge_sha]
        for d in deployments:
            states = " -> ".join(s.state for s in d.statuses)
            self.echo(f"    GitHub Deployment {d.id} to {d.environment}: {states}  {d.statuses[-1].log_url}")
        self.echo("    the bot's deploy comment on the PR:")
        seen = self.show_comments(devhub, number, only=lambda body: "<!-- modelship:deploy -->" in body)
        # Committed is `in_progress` while the bot tracks the rollout (success once live, see show_rollout).
        if any(d.statuses and d.statuses[-1].state in ("in_progress", "success") for d in deployments):
            return merge_sha
        comment = [c.body for c in hub.comments.values() if c.repo == REPO and "<!-- modelship:deploy -->" in c.body]
        if not any(f"`environments.{ENV}.requires` has `review_passed`" in body for body in comment):
            raise click.ClickException(f"the bot did not deploy {REPO}#{number} to {ENV}; its comment says why")
        return await self.force_deploy(devhub, service, number, seen)

    async def force_deploy(self, devhub: RunningDevHub, service: Service, number: int, seen: int) -> str:
        """The review failed a gate, so the merge stayed out of the environment; an admin overrides it."""
        hub = devhub.hub
        self.step(
            f"The review of {REPO}#{number} failed a gate, so the merge was not deployed (requires: "
            "review_passed, the default of auto environments); an admin overrides it"
        )
        self.forced = True
        hub.set_permission(REPO, "root", "admin")
        await hub.comment(REPO, number, f"/modelship deploy {ENV} --force", user="root")
        await self.settle(devhub, service)
        self.show_comments(devhub, number, since=seen, only=lambda body: "--force" in body)
        bare = hub.git.path(DEPLOY)
        self.echo(click.style("    deploy commit in acme/deploy (note its Modelship-Override trailer):", bold=True))
        self.quote(await asyncio.to_thread(_git, bare, "log", "-1", "--format=%B", "main"))
        ref = current_ref(await asyncio.to_thread(_git, bare, "show", f"main:{VALUES}"))
        if ref is None or ref.source_pr != number:
            raise click.ClickException(f"the forced deploy of {REPO}#{number} to {ENV} did not land; see its reply")
        return ref.revision  # the PR's head: `deploy <env>` ships the head the review judged

    async def show_live(self, devhub: RunningDevHub, merge_sha: str) -> None:
        """The GitHub Deployment turns success once every replica serves the new sha256 (live tracking)."""
        deployments = [d for d in devhub.hub.deployments.values() if d.repo == REPO and d.sha == merge_sha]

        def live() -> bool:
            return any(d.statuses and d.statuses[-1].state == "success" for d in deployments)

        await wait_for(live, 90, f"the GitHub Deployment of {merge_sha[:7]} to turn success (live)")
        for d in deployments:
            states = " -> ".join(s.state for s in d.statuses)
            self.echo(f"    GitHub Deployment {d.id} to {d.environment}: {states} (live: every replica serves it)")

    async def show_rollout(self, devhub: RunningDevHub, sync: GitOpsSync, what: str) -> None:
        """Wait until the sync has rolled the deploy repository's head out, and show the pods."""
        head = await asyncio.to_thread(devhub.hub.git.resolve, DEPLOY, "refs/heads/main")
        self.step(f"The GitOps sync rolls {what} out from {DEPLOY}@{(head or '')[:7]}")
        sync.trigger()
        applied = await asyncio.to_thread(sync.wait_rolled_out, ENV, "churn", commit=head, timeout=240)
        took = (applied.rolled_out_at or 0) - applied.seen_at
        for at, env, model, what in list(sync.events):
            if at >= applied.seen_at and (env, model) == (ENV, "churn"):
                self.echo(f"    +{at - applied.seen_at:5.1f}s {what}")
        self.echo(f"    rolled out in {took:.1f}s (sha256 {applied.sha256[:12]})")
        for pod in sync.pods(ENV, "churn"):
            self.echo(f"    pod {pod.name} at {pod.url}: ready, revision {pod.revision[:7]}, sha256 {pod.sha256[:12]}")
            for line in sync.logs(pod, tail=20).splitlines():
                if "verified" in line:
                    self.echo(f"      {line.strip()}")

    async def wait_health(self, service: Service, version: str, wanted: str, limit: float) -> str:
        async def health() -> str:
            async with service.services.engine.connect() as conn:
                query = select(Deployment.health).where(Deployment.repo == REPO, Deployment.version == version)
                return str((await conn.execute(query.order_by(Deployment.id.desc()))).scalars().first())

        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: _equals(health(), wanted), limit, f"{version[:7]} to be {wanted}")
        return await health()

    async def show_rollback(
        self, devhub: RunningDevHub, service: Service, pull: Any, source: int, restored: str, sync: GitOpsSync
    ) -> None:
        hub = devhub.hub
        self.step(f"The rollback PR {DEPLOY}#{pull.number}: {pull.title}")
        self.quote(pull.body or "")
        self.step(f"The guard's comment on the source PR {REPO}#{source}")
        await wait_for(lambda: _rolled_back_note(devhub, source), 30, "the guard's comment on the source PR")
        self.show_comments(devhub, source, only=lambda body: body.startswith("**Modelship rolled back"))
        self.step(f"{VALUES} in {DEPLOY} now: v1 again, pinned")
        values = await asyncio.to_thread(hub.git.read, DEPLOY, "refs/heads/main", VALUES)
        self.quote((values or b"").decode())
        await self.show_rollout(devhub, sync, f"{restored[:7]} back")
        self.step("`modelship status` (the guard watches the restored version)")
        await self.wait_health(service, restored, "healthy", 20)
        self.quote(await need(service.services.guard, "guard").status(REPO))


async def follow_pods(sync: GitOpsSync, servers: list[str]) -> None:
    """Keep ``servers`` (what the traffic generator sends to) equal to the ready pods, as a Service would."""
    while True:
        servers[:] = [p.url for p in sync.pods(ENV, "churn") if p.ready]
        await asyncio.sleep(0.5)


async def wait_for(check: Callable[[], Any], limit: float, what: str) -> Any:
    """Await ``check()`` (sync or async) until it returns something truthy, which is returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.2)
    raise TimeoutError(f"waited {limit:g}s for {what}")


async def _equals(value: Any, wanted: str) -> bool:
    return bool(await value == wanted)


def _rollback_pull(devhub: RunningDevHub) -> Any:
    return next((p for p in devhub.hub.pulls.get(DEPLOY, {}).values() if p.head_ref == ROLLBACK_BRANCH), None)


def _rolled_back_note(devhub: RunningDevHub, number: int) -> bool:
    return any(
        c.repo == REPO and c.issue_number == number and c.body.startswith("**Modelship rolled back")
        for c in devhub.hub.comments.values()
    )


def _git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, check=True, capture_output=True, text=True).stdout


def retrain_sample(work: Path, trees: int, depth: int) -> bytes:
    """Train the sample model with other flags in a copy at ``work`` (a subprocess: this process never
    imports scikit-learn); returns the deterministic model bytes."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(SAMPLE, work)
    subprocess.run(
        [sys.executable, "train.py", "--trees", str(trees), "--depth", str(depth)],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return (work / "models" / "churn.skops").read_bytes()


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path(".modelship/demo"),
    show_default=True,
    help="Where devhub's repositories and the bot's database are kept (wiped first).",
)
def demo(workdir: Path) -> None:
    """Run the whole loop locally: review, chat-ops, deploy and a guard rollback (see docs/demo.md)."""
    from bot import logs

    logs.configure("WARNING")
    # The guard logs each rollback as a warning; the demo prints the rollback itself, more readably.
    logging.getLogger("bot.guard.rollback").setLevel(logging.ERROR)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    try:
        asyncio.run(Demo(workdir.resolve(), click.echo).run())
    except (ProcessError, TimeoutError) as exc:
        raise click.ClickException(f"{exc} (logs under {workdir})") from exc
