"""The composition root: builds the running service from settings — database, intake, workers, GitHub
App client, sandbox and every feature — and the same pieces for the CLI commands that need them.

Features are imported here, at top level, and never import this module (they get ``bot.context``).
The chat-ops command registry and the `/modelship status` sections are one literal each (``commands``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from gidgethub.sansio import Event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import handlers, logs, metrics
from bot.artifacts.registry import OciRegistry
from bot.chatops import service as chatops
from bot.chatops.ratelimit import RateLimiter
from bot.chatops.service import CommandService, StatusSection
from bot.chatops.store import SqlBuckets
from bot.context import Feature, GitHubAppPort, Services
from bot.deploy import commands as deploy_commands
from bot.deploy import feature as deploy_feature
from bot.deploy.chart import ChartError, ModelServerChart
from bot.doctor import Check, Checkup, Doctor, failed, skipped
from bot.github.retry import RetryPolicy
from bot.guard import service as guard_feature
from bot.intake import Delivery, Plan, plan_delivery
from bot.notify import service as notify_feature
from bot.review import service as review_feature
from bot.review.service import SandboxConfig, SandboxUnavailable, make_sandbox
from bot.settings import SOURCE_ROOT, Settings
from bot.store.db import make_engine, migrate
from bot.store.deliveries import DeliveryWriter
from bot.store.installations import active_installations
from bot.store.models import Delivery as DeliveryRow
from bot.store.queue import ClaimedJob, JobQueue
from bot.ui.app import Dashboard
from bot.ui.github import OAuthClient
from bot.ui.public import PublicRepos
from bot.ui.session import SessionStore
from bot.web.app import Health, Intake, create_web_app
from bot.web.limits import HttpLimits
from bot.web.server import start_http
from bot.worker import FinalFailureHook, JobRunner, WorkerPool

if TYPE_CHECKING:
    from bot.github.app import GitHubApp

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service cannot start with these settings; the message names what to fix (``setting``)."""

    def __init__(self, message: str, setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


def key_setting(settings: Settings) -> str:
    """The setting the App's private key came from (or should come from)."""
    return (
        "MODELSHIP_GITHUB_PRIVATE_KEY"
        if settings.github_private_key is not None
        else "MODELSHIP_GITHUB_PRIVATE_KEY_PATH"
    )


def make_github_app(
    settings: Settings, session: aiohttp.ClientSession, *, policy: RetryPolicy | None = None
) -> GitHubApp:
    """The GitHub App client from settings, or a StartupError naming the setting to fix."""
    from bot.github.app import GitHubApp

    key = settings.private_key_pem()
    if settings.github_app_id is None:
        raise StartupError(
            "MODELSHIP_GITHUB_APP_ID is required (the GitHub App's numeric id)", "MODELSHIP_GITHUB_APP_ID"
        )
    if key is None:
        raise StartupError(
            "MODELSHIP_GITHUB_PRIVATE_KEY_PATH (or MODELSHIP_GITHUB_PRIVATE_KEY) is required: the App's PEM key",
            key_setting(settings),
        )
    try:
        return GitHubApp(
            app_id=settings.github_app_id,
            private_key_pem=key,
            api_url=settings.github_api_url,
            session=session,
            policy=policy,
        )
    except ValueError as exc:
        raise StartupError(str(exc), key_setting(settings)) from None


@asynccontextmanager
async def operator_services(settings: Settings) -> AsyncIterator[Services]:
    """What `modelship deploy|promote|rollback` act through: the migrated database, the App client, the
    DeployService and the guard's rollbacks, built as `serve` builds them (no workers, web or sandbox).

    A StartupError names the setting to fix (e.g. the App's id or key) before anything is opened."""
    async with aiohttp.ClientSession() as session:
        github = make_github_app(settings, session)
        chart = load_chart(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.effective_database_url)
        try:
            await migrate(engine)
            services = core_services(settings, engine, github)
            services.deploy = deploy_feature.make_service(services, settings, chart, make_registry(settings))
            services.guard = guard_feature.Guard(guard_feature.make_rollbacks(services, settings, chart), watcher=None)
            yield services
        finally:
            await engine.dispose()


def core_services(settings: Settings, engine: AsyncEngine, github: GitHubAppPort) -> Services:
    """The collaborators every feature shares; the features fill in their fields."""
    return Services(
        engine=engine,
        queue=JobQueue(engine, lease_seconds=settings.job_lease_seconds),
        github=github,
        app_slug=settings.github_app_slug,
        data_dir=settings.data_dir,
        deploy_root=settings.deploy_root,
    )


def make_registry(settings: Settings) -> OciRegistry | None:
    """The one OCI registry client (MODELSHIP_REGISTRY), credentials from the environment or a file; None
    when unset: reviews publish nothing and deploys pin the model file's sha256 alone."""
    if settings.registry is None:
        return None
    host, _, prefix = settings.registry.partition("/")
    credentials = settings.registry_credentials()
    user, password = credentials if credentials is not None else (None, None)
    return OciRegistry(host, prefix=prefix, insecure=settings.registry_insecure, username=user, password=password)


def load_chart(settings: Settings) -> ModelServerChart:
    """The model-server chart, read once for deploy and the guard's rollbacks."""
    try:
        return ModelServerChart.load(settings.charts_dir)
    except ChartError as exc:
        raise StartupError(str(exc), "MODELSHIP_CHARTS_DIR") from None


def require_ui(settings: Settings) -> None:
    """MODELSHIP_UI=on needs the sign-in settings; say which one is missing before anything starts."""
    if settings.ui != "on":
        return
    for name, value in (
        ("MODELSHIP_UI_CLIENT_ID", settings.ui_client_id),
        ("MODELSHIP_UI_CLIENT_SECRET", settings.ui_client_secret),
        ("MODELSHIP_UI_SESSION_SECRET", settings.ui_session_secret),
    ):
        if not value:
            raise StartupError(f"MODELSHIP_UI=on needs {name} (sign-in with GitHub); or set MODELSHIP_UI=off", name)


def require_sandbox(settings: Settings) -> None:
    """Reviews need a sandbox: running without one must be a decision, not a surprise on the first PR."""
    if settings.sandbox == "on" and settings.sandbox_backend == "docker" and not settings.container_engine_url:
        raise StartupError(
            "no evaluation sandbox: set MODELSHIP_CONTAINER_ENGINE_URL to a Docker Engine API endpoint "
            "(e.g. unix:///run/podman/podman.sock), or set MODELSHIP_SANDBOX=off to run without reviews",
            "MODELSHIP_CONTAINER_ENGINE_URL",
        )


def sandbox_setting(settings: Settings) -> str:
    return "MODELSHIP_SANDBOX_BACKEND" if settings.sandbox_backend == "kubernetes" else "MODELSHIP_CONTAINER_ENGINE_URL"


def rollout_reader(settings: Settings) -> Any:
    """The Kubernetes rollout reader for live tracking when the bot has Kubernetes access (the sandbox
    backend's kubeconfig, or its in-cluster service account with MODELSHIP_SANDBOX_BACKEND=kubernetes);
    None otherwise, or when that configuration does not load (logged: live tracking goes on from Prometheus)."""
    if settings.sandbox_backend != "kubernetes" and settings.kubernetes_kubeconfig is None:
        return None
    from bot.deploy.kube_rollout import KubeRolloutReader
    from bot.sandbox.kube_runner import connect

    try:
        clients = connect(settings.kubernetes_kubeconfig)
    except Exception as exc:  # ConfigException, OSError, ValueError: said here, deploys are still tracked
        where = settings.kubernetes_kubeconfig or "the in-cluster service account"
        log.warning(
            "live tracking: no rollout status from Kubernetes: cannot load a configuration from %s (%s); "
            "set MODELSHIP_KUBERNETES_KUBECONFIG",
            where,
            exc,
        )
        return None
    return KubeRolloutReader(clients.api)


async def delete_orphans(sandbox: SandboxConfig) -> None:
    """A restarted bot deletes the sandbox Jobs its previous life left running (Kubernetes backend)."""
    sweep = getattr(sandbox.runner, "delete_orphans", None)
    if sweep is None:
        return
    try:
        await sweep()
    except Exception as exc:  # the API answering badly must not keep the service down; runs refuse on their own
        log.error("sandbox: could not sweep orphaned Jobs: %s", exc)


def webhook_runner(services: Services) -> JobRunner:
    """Run a stored delivery through the gidgethub router, authenticated as its installation."""

    async def run(job: ClaimedJob) -> None:
        async with services.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(DeliveryRow.event, DeliveryRow.guid, DeliveryRow.body, DeliveryRow.installation_id).where(
                        DeliveryRow.id == job.delivery_id
                    )
                )
            ).first()
        if row is None:
            raise LookupError(f"delivery {job.delivery_id} of job {job.id} is gone")
        logs.delivery_id.set(row.guid)
        event = Event(json.loads(row.body), event=row.event, delivery_id=row.guid)
        if isinstance(event.data, dict):  # every event names its repository's clone_url: git goes there
            services.github.remember_repository(event.data.get("repository"))
        gh = await services.github.for_installation(row.installation_id) if row.installation_id else None
        await handlers.router.dispatch(event, gh, services)

    return run


def commands() -> tuple[dict[str, CommandService], tuple[StatusSection, ...]]:
    """Every chat-ops command by name, and the sections `/modelship status` adds, in order.

    The parser's command table (bot.chatops.commands) names the same commands; a name missing here
    answers "not available yet"."""
    return (
        {
            "status": chatops.run_status,
            "evaluate": chatops.run_review,
            "optimize": chatops.run_review,
            "ok-to-test": chatops.run_ok_to_test,
            "hold": chatops.run_hold,
            "unhold": chatops.run_unhold,
            "cancel": chatops.run_cancel,
            "deploy": deploy_commands.run_deploy,
            "promote": deploy_commands.run_promote,
            "unpin": deploy_commands.run_unpin,
            "rollback": guard_feature.run_rollback,
        },
        (deploy_commands.status_section, guard_feature.status_section),
    )


@dataclass
class Service:
    services: Services
    writer: DeliveryWriter
    workers: WorkerPool
    web_app: web.Application
    _closers: list[Callable[[], Awaitable[None]]]
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # The doctor's checks behind /readyz; `serve` refreshes them in the background (tests call refresh()).
    checkup: Checkup | None = None

    async def start(self) -> None:
        self.writer.start()
        self.workers.start()
        self._tasks = [asyncio.create_task(loop()) for loop in self.background]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.workers.stop()
        await self.writer.stop()
        for close in reversed(self._closers):
            await close()


async def build_service(
    settings: Settings, *, github: GitHubAppPort | None = None, extra_runners: dict[str, JobRunner] | None = None
) -> Service:
    require_sandbox(settings)
    require_ui(settings)
    chart = load_chart(settings)
    closers: list[Callable[[], Awaitable[None]]] = []
    if github is None:  # missing credentials are refused before the data directory or database is touched
        session = aiohttp.ClientSession()
        try:
            github = make_github_app(settings, session)
        except StartupError:
            await session.close()
            raise
        closers.append(session.close)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    closers.append(engine.dispose)
    try:
        await migrate(engine)
    except BaseException:
        for close in reversed(closers):
            await close()
        raise
    try:
        sandbox = make_sandbox(settings, SOURCE_ROOT, make_registry(settings))
        await delete_orphans(sandbox)
    except SandboxUnavailable as exc:
        for close in reversed(closers):
            await close()
        raise StartupError(str(exc), sandbox_setting(settings)) from None
    services = core_services(settings, engine, github)
    queue = services.queue
    notifier = notify_feature.make_notifier(engine, settings)  # None: no sink configured
    services.notify = notifier
    if notifier is not None:  # deploy.committed / live / failed as live tracking records them
        services.deploy_listeners.append(notifier.on_deploy_transition)
    services.commands, services.status_sections = commands()
    services.limiter = RateLimiter(SqlBuckets(engine))
    services.sandbox = sandbox
    registry = make_registry(settings)
    services.deploy = deploy_feature.make_service(services, settings, chart, registry)
    services.guard, guard = guard_feature.setup(services, settings, chart)
    _, live = deploy_feature.live_feature(services, settings, reader=rollout_reader(settings))
    features: list[Feature] = [
        review_feature.feature(services, sandbox, registry),
        deploy_feature.feature(services.deploy),
        guard,
        live,
        *([notify_feature.feature(notifier)] if notifier is not None else []),
    ]
    runners: dict[str, JobRunner] = {"webhook": webhook_runner(services)}
    background: list[Callable[[], Coroutine[Any, Any, None]]] = []
    hooks: dict[str, FinalFailureHook] = {}
    for feature in features:
        runners.update(feature.runners)
        hooks.update(feature.on_final_failure)
        background.extend(feature.background)
        closers.extend(feature.closers)
    checkup = Checkup(service_doctor(settings, services))
    runners.update(extra_runners or {})
    workers = WorkerPool(queue, runners, concurrency=settings.workers, on_final_failure=hooks)
    writer = DeliveryWriter(engine, max_attempts=settings.max_attempts, on_jobs=workers.wake)

    def plan(delivery: Delivery) -> Plan:
        return plan_delivery(
            delivery,
            app_slug=settings.github_app_slug,
            repo_allowed=settings.repo_allowed,
            handled=lambda d: handlers.handles(d.event, d.payload),
        )

    async def refresh_metrics() -> None:
        for state, count in (await queue.depth()).items():
            metrics.QUEUE_DEPTH.labels(state).set(count)

    web_app = create_web_app(
        Intake(
            secret=settings.webhook_secret.get_secret_value().encode(),
            writer=writer,
            plan=plan,
            limits=http_limits(settings),
        ),
        # With workers = 0 this process only takes deliveries in; another process runs the jobs.
        Health(
            engine=engine,
            workers_alive=lambda: workers.alive if settings.workers else 1,
            refresh_metrics=refresh_metrics,
            checks=checkup.report,
        ),
    )
    if settings.ui == "on":
        web_app.add_subapp("/ui/", dashboard(settings, services, checkup, closers).app())
    return Service(services, writer, workers, web_app, closers, background, checkup=checkup)


def dashboard(
    settings: Settings, services: Services, checkup: Checkup, closers: list[Callable[[], Awaitable[None]]]
) -> Dashboard:
    """The /ui dashboard (MODELSHIP_UI=on; ``require_ui`` checked its settings before anything started)."""
    assert settings.ui_client_id and settings.ui_client_secret and settings.ui_session_secret
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    closers.append(session.close)
    oauth = OAuthClient(
        settings.ui_client_id,
        settings.ui_client_secret.get_secret_value(),
        settings.github_web_url,
        settings.github_api_url,
        session,
    )
    sessions = SessionStore(
        services.engine, settings.ui_session_secret.get_secret_value().encode(), settings.ui_session_hours * 3600
    )
    return Dashboard(
        engine=services.engine,
        queue=services.queue,
        github=services.github,
        oauth=oauth,
        sessions=sessions,
        allowed=settings.ui_allowed,
        public_url=settings.ui_public_url,
        health=checkup.report,
        services=services,
        public=PublicRepos(lambda: active_installations(services.engine), services.github),
    )


def service_doctor(settings: Settings, services: Services) -> Doctor:
    """The doctor over the running service's own collaborators (its App client, engine, sandbox, Prometheus)."""
    from bot.github.app import GitHubApp

    github: GitHubApp | Check = (
        services.github
        if isinstance(services.github, GitHubApp)
        else skipped("github_app", "not checked: the service runs with a custom GitHub client")
    )
    sandbox = services.sandbox or skipped("sandbox", "not checked: no review feature")
    guard = services.guard
    return Doctor(
        engine=services.engine,
        github=github,
        sandbox=sandbox,
        prometheus=guard.watcher.provider if guard is not None and guard.watcher is not None else None,
        key_setting=key_setting(settings),
        prometheus_url=settings.prometheus_url,
        registry=services.deploy.pins.registry if services.deploy is not None else None,
    )


async def run_doctor(settings: Settings) -> list[Check]:
    """`modelship doctor`: the checks over collaborators built from settings, without starting anything.

    Unlike serve it neither migrates the database nor waits long for GitHub: a short retry policy
    turns an unreachable API into a failed check within seconds.
    """
    from bot.guard.prometheus import PrometheusHTTP

    engine = make_engine(settings.effective_database_url)
    async with aiohttp.ClientSession() as session:
        github: GitHubApp | Check
        try:
            github = make_github_app(
                settings,
                session,
                policy=RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, max_wait=5.0, request_timeout=10.0),
            )
        except StartupError as exc:
            github = failed("github_app", str(exc), exc.setting)
        sandbox: SandboxConfig | Check
        try:
            sandbox = await asyncio.to_thread(make_sandbox, settings, SOURCE_ROOT, make_registry(settings))
        except SandboxUnavailable as exc:
            sandbox = failed("sandbox", str(exc), sandbox_setting(settings))
        prometheus = PrometheusHTTP(settings.prometheus_url, session, timeout=5.0) if settings.prometheus_url else None
        try:
            return await Doctor(
                engine=engine,
                github=github,
                sandbox=sandbox,
                prometheus=prometheus,
                key_setting=key_setting(settings),
                prometheus_url=settings.prometheus_url,
                registry=make_registry(settings),
            ).run()
        finally:
            await engine.dispose()


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_connections=settings.http_max_connections,
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        body_bytes_in_flight=settings.http_body_bytes_in_flight,
    )


async def serve(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT): drain workers, then close."""
    import signal

    service = await build_service(settings)
    if service.checkup is not None:
        # Start-up checks run beside the listener: a slow GitHub never delays taking webhooks in.
        service.background.append(service.checkup.run)
    await service.start()
    http = await start_http(service.web_app, settings.host, settings.port, http_limits(settings))
    log.info("modelship listening on http://%s:%s/webhooks/github", settings.host, settings.port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down: draining workers")
    http.server.close()  # no new connections while the workers drain
    await service.stop()
    await http.stop()
