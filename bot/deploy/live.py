"""Live tracking: follow every deploy from its commit until every ready replica serves the new file.

A background loop of the service (with several replicas only the holder of the ``deploy-live`` lease runs
it, bot.store.leases). Each round it reads the deployments still rolling out (bot.store.deployments:
the state is in the database, so a restarted bot carries on), asks Prometheus through the server-side
template ``MODELSHIP_PROMQL_DIR/live/serving.yml`` which file each ready replica serves, lets the pure
core (bot.deploy.rollout) decide the next phase, and records it. Then it tells people what changed:

- the DeployListeners (``Services.deploy_listeners``) hear each phase once, in the transaction that
  records it was told (a DeployTransition; notifications build on it);
- the GitHub Deployment turns ``success`` at live, ``failure`` with the reason when the deploy is not live
  by ``environments.<env>.progress_deadline`` (``in_progress`` is posted at the commit: bot.deploy.records);
- the source PR's dossier (its Deploy comment) shows committed at / live at / how long;
- a deploy that never went live is rolled back through the guard's rollback path (a pinned PR restoring the
  last live version, evidence "not live after …"), or only alerted with ``on_not_live: alert`` — and
  always only alerted when the bot could not see (Prometheus failing): never a rollback on blindness.

Without Prometheus (no MODELSHIP_PROMETHEUS_URL) nothing can be judged, so nothing is tracked: deployed rows
carry no rollout (bot.store.deployments.insert's ``track``) and GitHub says ``success`` at the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config.repo import Environment, RepoConfig, RepoConfigError
from bot.context import DeployListener, DeployTransition
from bot.deploy.kube_rollout import RolloutStatus, with_rollout
from bot.deploy.records import DeployRecords
from bot.deploy.rollout import Rollout, Serving, Step, cause_news, judge
from bot.guard import metrics as guard_metrics
from bot.guard.prometheus import VectorProvider
from bot.guard.rollback import RollbackError, Rollbacks
from bot.guard.store import IncidentView
from bot.guard.templates import QueryTemplate
from bot.store import deployments
from bot.store.deployments import LIVE, NOT_LIVE, TRACKED, Row
from bot.store.leases import Lease

log = logging.getLogger(__name__)

LEASE = "deploy-live"
DEFAULT = Environment()  # progress_deadline and on_not_live when a repository's config cannot be read


class ConfigSource(Protocol):
    """A model repository's `.modelship.yml` on its default branch (the guard's cached reader)."""

    async def read_config(self, repo: str) -> RepoConfig | RepoConfigError | None: ...


class RolloutReader(Protocol):
    """A Deployment's rollout from the Kubernetes API (bot.deploy.kube_rollout.KubeRolloutReader)."""

    async def status(self, namespace: str, deployment: str) -> RolloutStatus: ...


class GitHubFor(Protocol):
    """A client for a model repository (its installation), where Deployments and the dossier live."""

    async def __call__(self, repo: str) -> Any: ...


@dataclass
class TrackRound:
    leading: bool = True
    steps: dict[int, Step] = field(default_factory=dict)  # deployment id -> what this round decided
    told: list[DeployTransition] = field(default_factory=list)
    causes: dict[int, str] = field(default_factory=dict)  # deployment id -> the stuck cause told this round
    seconds: float = 0.0  # wall time of the round


def _epoch(at: datetime | None) -> float:
    if at is None:
        return 0.0
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def transition(row: Row, at: datetime) -> DeployTransition:
    return DeployTransition(
        deployment_id=int(row["id"]),
        phase=str(row["rollout"]),
        repo=row["repo"],
        environment=row["environment"],
        model=row["model"],
        version=row["version"],
        variant=row["variant"],
        sha256=row["sha256"],
        deploy_repo=row["deploy_repo"],
        deploy_commit=row["deploy_commit"],
        source_pr=row["source_pr"],
        at=at,
        committed_at=row["committed_at"],
        live_at=row["live_at"],
        reason=row["rollout_detail"] or "",
    )


def environment_of(config: RepoConfig | RepoConfigError | None, env: str) -> Environment:
    if isinstance(config, RepoConfig):
        return config.environments.get(env) or DEFAULT
    return DEFAULT


class LiveTracker:
    def __init__(
        self,
        engine: AsyncEngine,
        records: DeployRecords,
        *,
        configs: ConfigSource,
        github_for: GitHubFor,
        provider: VectorProvider | None,
        template: QueryTemplate | None,
        rollbacks: Rollbacks | None = None,
        listeners: Sequence[DeployListener] = (),
        interval: float = 10.0,
        clock: Callable[[], float] = time.time,
        holder: str | None = None,
        lease_ttl: float | None = None,
        concurrency: int = 16,
        reader: RolloutReader | None = None,
    ) -> None:
        self.engine = engine
        self.records = records
        self.configs = configs
        self.github_for = github_for
        self.provider = provider if template is not None else None
        self.template = template
        self.rollbacks = rollbacks
        self.listeners = listeners
        self.interval = interval
        self.clock = clock
        self.lease = Lease(engine, LEASE, ttl=lease_ttl if lease_ttl is not None else 3 * interval, holder=holder)
        self._gate = asyncio.Semaphore(concurrency)
        self.reader = reader  # None: the bot has no Kubernetes access; Prometheus alone judges
        self._unreadable: set[tuple[str, str]] = set()  # (namespace, deployment) whose failure was logged
        self._opened: list[IncidentView] = []
        self._wake = asyncio.Event()
        self.rounds = 0

    async def run(self) -> None:
        """Forever: a round, then sleep out the interval (a failed round is logged and tried again)."""
        log.info("live tracking started (every %.3gs, as %s)", self.interval, self.lease.holder)
        try:
            while True:
                started = time.monotonic()
                try:
                    await self.round()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("live tracking: round failed; next round in %.3gs", self.interval)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.05, self.interval - (time.monotonic() - started)))
                self._wake.clear()
        finally:  # cancelled at shutdown
            await asyncio.shield(self.lease.resign())

    def wake(self) -> None:
        """A deploy was just committed: run a round now, so `committed` is told at once (this process only;
        another replica's leader sees it at its next round)."""
        self._wake.set()

    async def round(self) -> TrackRound:
        started = time.perf_counter()
        report = TrackRound()
        report.leading = await self.lease.take()
        if not report.leading:
            return report  # another replica tracks; look again next interval in case it died
        async with self.engine.connect() as conn:
            rows = await deployments.rollouts(conn)
        # `committed` is told before anything is judged (a deploy can be live at the first look): listeners
        # hear every deployment start; one whose start cannot be told yet is not judged this round.
        fresh = {int(r["id"]) for r in rows if r["rollout_told"] is None}
        for row in (r for r in rows if int(r["id"]) in fresh):
            event = await self._tell(row)
            if event is not None:
                report.told.append(event)
                fresh.discard(event.deployment_id)
        tracked = [
            r for r in rows if r["state"] == "deployed" and r["rollout"] in TRACKED and int(r["id"]) not in fresh
        ]
        if self.provider is not None and tracked:
            configs = await self._configs({r["repo"] for r in tracked})
            now = self.clock()
            looks = await asyncio.gather(*(self._look(r, configs, now) for r in tracked))
            for row, step in zip(tracked, looks, strict=True):
                report.steps[int(row["id"])] = step
                await self._record(row, step, now)
        async with self.engine.connect() as conn:
            current = await deployments.rollouts(conn)
        for row in (r for r in current if r["rollout"] != r["rollout_told"]):
            event = await self._tell(row)
            if event is not None:
                report.told.append(event)
        # A stuck cause GitHub has not heard (after the phase: a deploy that just failed says its own reason).
        for row in current:
            looked = report.steps.get(int(row["id"]))
            news = looked is not None and row["rollout"] == looked.phase and cause_news(looked, row["rollout_cause"])
            if news and looked is not None and await self._tell_stuck(row, looked):
                report.causes[int(row["id"])] = looked.cause
        self.rounds += 1
        report.seconds = time.perf_counter() - started
        return report

    async def _configs(self, repos: set[str]) -> dict[str, RepoConfig | RepoConfigError | None]:
        out: dict[str, RepoConfig | RepoConfigError | None] = {}
        for repo in sorted(repos):
            try:
                out[repo] = await self.configs.read_config(repo)
            except Exception as exc:  # the defaults apply; the guard's round logs the same problem
                log.warning("live tracking: cannot read .modelship.yml of %s (%s); default deadline", repo, exc)
                out[repo] = None
        return out

    async def _look(self, row: Row, configs: Mapping[str, Any], now: float) -> Step:
        assert self.provider is not None and self.template is not None
        env = environment_of(configs.get(row["repo"]), row["environment"])
        promql = self.template.render(model=row["model"], version=row["version"], env=row["environment"], window="1m")
        async with self._gate:
            answer = await self.provider.vector(promql)
        if answer.error is not None:
            serving = Serving.failed(answer.error)
        else:
            counts: dict[str, int] = {}
            for series in answer.series:
                sha = str(series.labels.get("sha256", ""))
                counts[sha] = counts.get(sha, 0) + int(series.value)
            serving = Serving(counts)
        rollout = Rollout(
            phase=row["rollout"],
            sha256=row["sha256"],
            previous_sha256=row["previous_sha256"],
            committed_at=_epoch(row["committed_at"]),
            deadline=env.progress_deadline,
        )
        step = judge(rollout, serving, now)
        if self.reader is not None and env.kubernetes is not None:
            step = await self._with_cluster(step, env.kubernetes.namespace, env.kubernetes.deployment)
        return step

    async def _with_cluster(self, step: Step, namespace: str, deployment: str) -> Step:
        """The step with the Deployment's rollout status; a reader failure (403, API down) is said in the detail
        and logged once per Deployment until it reads again: it never stops tracking."""
        assert self.reader is not None
        key = (namespace, deployment)
        try:
            async with self._gate:
                status = await self.reader.status(namespace, deployment)
        except Exception as exc:
            why = getattr(exc, "reason", None) or type(exc).__name__
            code = getattr(exc, "status", None)
            said = f"rollout status of {namespace}/{deployment} unreadable ({f'{code} ' if code else ''}{why})"
            if key not in self._unreadable:
                self._unreadable.add(key)
                log.warning("live tracking: %s: %s", said, exc)
            return Step(step.phase, f"{step.detail} · {said}", step.certain)
        if key in self._unreadable:
            self._unreadable.discard(key)
            log.info("live tracking: rollout status of %s/%s readable again", namespace, deployment)
        return with_rollout(step, status)

    async def _record(self, row: Row, step: Step, now: float) -> None:
        if step.phase == row["rollout"] and (step.detail or None) == row["rollout_detail"]:
            return  # the steady state of a long rollout: nothing to write, no transaction
        async with self.engine.begin() as conn:
            if step.phase == row["rollout"]:
                await deployments.note_rollout(conn, row["id"], step.detail)
                return
            live_at = datetime.fromtimestamp(now, UTC) if step.phase == LIVE else None
            if not await deployments.move_rollout(
                conn, row["id"], row["rollout"], step.phase, step.detail, live_at=live_at
            ):
                return  # moved by another round meanwhile
            if step.phase == NOT_LIVE:
                await self._not_live(conn, row, step)
        if self._opened and self.rollbacks is not None:
            opened, self._opened = self._opened, []
            for incident in opened:
                await self.rollbacks.advance(incident)
        log.info(
            "live tracking: %s %s in %s (%s): %s -> %s: %s",
            row["model"],
            row["version"][:7],
            row["environment"],
            row["repo"],
            row["rollout"],
            step.phase,
            step.detail,
        )

    async def _not_live(self, conn: AsyncConnection, row: Row, step: Step) -> None:
        """Roll back (the guard's path: one incident per row, so a redone round opens no second PR) or alert."""
        config = await self.configs.read_config(row["repo"])
        env = environment_of(config, row["environment"])
        labels = (row["repo"], row["environment"], row["model"], "live")
        why_not = ""
        if not step.certain:
            why_not = "the bot could not see the replicas, and a rollback is never made on blindness"
        elif env.on_not_live == "alert":
            why_not = f"environments.{row['environment']}.on_not_live is alert"
        elif not isinstance(config, RepoConfig) or self.rollbacks is None:
            why_not = "the repository's .modelship.yml cannot be read" if self.rollbacks else "no rollback path"
        if not why_not:
            assert isinstance(config, RepoConfig) and self.rollbacks is not None
            current = await deployments.deployment(conn, row["id"])
            target = await deployments.last_live(conn, row["repo"], row["environment"], row["model"], row["id"])
            try:
                assert current is not None
                incident, _ = await self.rollbacks.open_incident(
                    conn,
                    current,
                    config,
                    trigger="live",
                    reason=step.detail,
                    evidence=self._evidence(row, step),
                    to=target["version"] if target is not None else None,
                )
                self._opened.append(incident)  # advanced (the PR opened) once this transaction commits
                return
            except RollbackError as exc:
                why_not = f"nothing to roll back to: {exc}"
        guard_metrics.ALERTS.labels(*labels).inc()
        guard_metrics.ALERT_OPEN.labels(*labels).set(1)
        log.error(
            "deploy ALERT: %s %s in %s (%s) %s; no rollback (%s)",
            row["model"],
            row["version"][:7],
            row["environment"],
            row["repo"],
            step.detail,
            why_not,
        )

    def _evidence(self, row: Row, step: Step) -> str:
        assert self.template is not None
        promql = self.template.render(model=row["model"], version=row["version"], env=row["environment"], window="1m")
        return "\n".join(
            [
                f"The deploy of `{row['version'][:7]}` (file `{row['sha256'][:12]}`) to {row['environment']} was "
                f"committed as {row['deploy_repo']}@{(row['deploy_commit'] or '')[:7]} and never went live.",
                "",
                f"- What the bot saw: {step.detail}",
                f"- Live means every ready replica serves sha256 `{row['sha256']}`, asked of Prometheus with:",
                "",
                "```promql",
                promql,
                "```",
            ]
        )

    async def _tell_stuck(self, row: Row, step: Step) -> bool:
        """GitHub (a new ``in_progress`` Deployment status leading with the cause) and the dossier, then mark the
        cause told: a crash before the mark tells again (GitHub's side skips a status it has), never twice."""
        try:
            gh = await self.github_for(row["repo"])
            await self.records.tell_stuck(gh, row, step.detail)
            if row["source_pr"]:
                await self.records.update_sticky(gh, row["repo"], int(row["source_pr"]))
        except Exception as exc:  # GitHub down: the cause is still there next round, told then
            log.warning("live tracking: cannot tell GitHub why deployment %s is stuck yet: %s", row["id"], exc)
            return False
        async with self.engine.begin() as conn:
            told = await deployments.told_cause(conn, row["id"], step.cause_key)
        if told:
            log.info("live tracking: deployment %s is stuck: %s", row["id"], step.cause)
        return told

    async def _tell(self, row: Row) -> DeployTransition | None:
        """GitHub and the dossier first (each idempotent), then mark the phase told and let the listeners
        write what they keep in the same transaction: a crash before that point tells again, never twice."""
        phase = row["rollout"]
        try:
            gh = await self.github_for(row["repo"])
            await self.records.tell_rollout(gh, row)
            if row["source_pr"]:
                await self.records.update_sticky(gh, row["repo"], int(row["source_pr"]))
        except Exception as exc:  # GitHub down: told next round
            log.warning("live tracking: cannot tell GitHub %s of deployment %s yet: %s", phase, row["id"], exc)
            return None
        event = transition(row, datetime.now(UTC))
        try:
            async with self.engine.begin() as conn:
                if not await deployments.told_rollout(conn, row["id"], phase):
                    return None
                for listener in self.listeners:
                    await listener(conn, event)
        except Exception:  # rolled back with the told mark: heard again next round, other rows go on
            log.exception("live tracking: a listener failed on %s; told again next round", event.key)
            return None
        return event
