"""The guard's watcher: each interval, evaluate every current deployment's checks, persist, act.

A round reads everything it needs from the database (current deployments, stored check states,
open incidents), so a restarted bot continues with the same counts and the same incidents. With
several replicas on one database only the holder of the watcher lease runs rounds. The decision
itself is bot.guard.analysis (pure); this module is the loop around it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config.repo import Guard, RepoConfig
from bot.guard import metrics, store
from bot.guard.analysis import CheckConfig, CheckState, Decision, OnNoData
from bot.guard.checks import Deployment, Evaluation, evaluate_many
from bot.guard.evidence import render_evidence
from bot.guard.prometheus import MetricsProvider
from bot.guard.rollback import RollbackError, Rollbacks
from bot.guard.store import IncidentView
from bot.guard.templates import QueryTemplate
from bot.store import deployments
from bot.store.deployments import DeploymentView
from bot.store.leases import Lease

log = logging.getLogger(__name__)


def window(seconds: float) -> str:
    """Repository config durations are seconds; PromQL wants a duration literal."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def guard_checks(guard: Guard) -> list[CheckConfig]:
    """The analysis configs of an environment's ``guard`` section (names unique per check)."""
    checks: list[CheckConfig] = []
    seen: set[str] = set()
    for i, check in enumerate(guard.checks):
        name = check.template if check.template not in seen else f"{check.template}_{i}"
        seen.add(name)
        checks.append(
            CheckConfig(
                template=check.template,
                window=window(check.window),
                max=check.max,
                min=check.min,
                failure_limit=guard.failure_limit,
                initial_delay=guard.initial_delay,
                on_no_data=OnNoData(guard.on_no_data),
                consecutive_error_limit=guard.consecutive_error_limit,
                name=name,
            )
        )
    return checks


def _epoch(at: datetime | None) -> float | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def is_due(states: Mapping[str, CheckState], interval: float, now: float) -> bool:
    checked = [s.last_checked for s in states.values() if s.last_checked is not None]
    # A little slack, so a round that starts a few milliseconds early does not skip a whole interval.
    return not checked or now - max(checked) >= interval - min(0.25, interval / 10)


LEASE = "guard-watcher"


@dataclass
class Round:
    evaluations: list[Evaluation] = field(default_factory=list)
    incidents: list[IncidentView] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # repository -> why it was not watched
    next_in: float = 30.0  # seconds until the next deployment is due
    leading: bool = True  # False: another replica holds the watcher lease, this round did nothing


@dataclass(frozen=True)
class _Watched:
    deployment: DeploymentView
    config: RepoConfig
    guard: Guard
    checks: list[CheckConfig]
    states: dict[str, CheckState]


class Watcher:
    def __init__(
        self,
        engine: AsyncEngine,
        provider: MetricsProvider,
        rollbacks: Rollbacks,
        *,
        templates: Mapping[str, QueryTemplate],
        default_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
        holder: str | None = None,
        lease_ttl: float | None = None,
        on_verdict: Callable[[DeploymentView], Awaitable[None]] | None = None,
    ) -> None:
        self.engine = engine
        self.provider = provider
        self.rollbacks = rollbacks
        self.templates = templates
        self.default_interval = default_interval
        self.clock = clock
        self.rounds = 0
        # Renewed every round (at most default_interval apart): a dead leader is replaced within ~3 rounds.
        self.lease = Lease(
            engine, LEASE, ttl=lease_ttl if lease_ttl is not None else 3 * default_interval, holder=holder
        )
        self.holder = self.lease.holder
        # Told when a deployment's health changes (the shipping PR's dossier shows the guard's verdict).
        self.on_verdict = on_verdict

    async def run(self) -> None:
        """Forever: a round, then sleep until the next deployment is due (a failed round is logged)."""
        log.info("guard watcher started (default interval %.3gs, as %s)", self.default_interval, self.holder)
        try:
            while True:
                started = time.monotonic()
                wait = self.default_interval
                try:
                    with metrics.ROUND_SECONDS.time():
                        done = await self.round()
                    wait = done.next_in
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("guard: watcher round failed; next round in %.3gs", wait)
                await asyncio.sleep(max(0.05, wait - (time.monotonic() - started)))
        finally:  # cancelled at shutdown
            await asyncio.shield(self._resign())

    async def _resign(self) -> None:
        """On shutdown, hand the lease back so another replica watches from its next round."""
        await self.lease.resign()
        metrics.LEADING.set(0)

    async def round(self) -> Round:
        now = self.clock()
        report = Round(next_in=self.default_interval)
        report.leading = await self.lease.take()
        metrics.LEADING.set(1 if report.leading else 0)
        if not report.leading:
            return report  # another replica watches; look again in an interval, in case it died
        async with self.engine.connect() as conn:
            current = await deployments.current_deployments(conn)
            stored = await store.load_states(conn, current)
        configs = await self._configs({d.repo for d in current}, report)
        watched: list[_Watched] = []
        for d in current:
            config = configs.get(d.repo)
            env = config.environments.get(d.environment) if config is not None else None
            if config is None or env is None or env.guard is None or not env.guard.checks:
                continue
            checks = guard_checks(env.guard)
            fresh = CheckState(first_seen=_epoch(d.created_at))
            states = {c.key: stored[d.id][c.key].state if c.key in stored[d.id] else fresh for c in checks}
            interval = env.guard.interval
            if is_due(states, interval, now):
                watched.append(_Watched(d, config, env.guard, checks, states))
                report.next_in = min(report.next_in, interval)
            else:
                last = max(s.last_checked or now for s in states.values())
                report.next_in = min(report.next_in, max(0.05, last + interval - now))
        sent = getattr(self.provider, "queries", 0)
        report.evaluations = await evaluate_many(
            self.provider,
            self.templates,
            [
                (Deployment(w.deployment.environment, w.deployment.model, w.deployment.version), w.checks, w.states)
                for w in watched
            ],
            now,
        )
        metrics.QUERIES.inc(max(0, getattr(self.provider, "queries", 0) - sent))
        for w, evaluation in zip(watched, report.evaluations, strict=True):
            await self._record(w, evaluation)
        report.incidents = await self.rollbacks.advance_open()
        metrics.OPEN_INCIDENTS.set(sum(i.is_open for i in report.incidents))
        self.rounds += 1
        return report

    async def _configs(self, repos: set[str], report: Round) -> dict[str, RepoConfig]:
        configs: dict[str, RepoConfig] = {}
        for repo in sorted(repos):
            try:
                config = await self.rollbacks.github.read_config(repo)
            except Exception as exc:
                report.problems[repo] = f"cannot read .modelship.yml: {type(exc).__name__}: {exc}"
                log.warning("guard: %s not watched this round: %s", repo, report.problems[repo])
                continue
            if isinstance(config, RepoConfig):
                configs[repo] = config
            else:
                report.problems[repo] = "no .modelship.yml" if config is None else f"invalid .modelship.yml: {config}"
        return configs

    async def _record(self, w: _Watched, evaluation: Evaluation) -> None:
        d, decision = w.deployment, evaluation.decision
        labels = (d.repo, d.environment, d.model)
        metrics.HEALTH.labels(*labels).set(metrics.HEALTH_VALUES[decision.health])
        for o in evaluation.outcomes:
            state = o.verdict.state
            if state.last_value is not None:
                metrics.CHECK_VALUE.labels(*labels, o.check.key).set(state.last_value)
            metrics.CHECK_FAILURES.labels(*labels, o.check.key).set(state.consecutive_failures)
            metrics.ALERT_OPEN.labels(*labels, o.check.key).set(1 if state.alert_open else 0)
            if o.verdict.decision is Decision.ERROR_ALERT:
                metrics.ALERTS.labels(*labels, o.check.key).inc()
                log.error(
                    "guard ALERT: %s %s in %s (%s): %s; no rollback is made on query errors",
                    d.model,
                    d.short,
                    d.environment,
                    d.repo,
                    o.verdict.reason,
                )
        async with self.engine.begin() as conn:
            await store.save_states(
                conn,
                d,
                [
                    (o.check.key, o.verdict.decision.value, o.verdict.reason, o.verdict.state)
                    for o in evaluation.outcomes
                ],
            )
            changed = await deployments.set_health(conn, d.id, decision.health)
            for o in evaluation.outcomes:
                if o.verdict.decision is Decision.ERROR_ALERT:
                    # Raised once per streak of errors (alert_open is saved in this transaction): one event.
                    key = f"guard.alert:{d.id}:{o.check.key}:{int(time.time())}"
                    await self._alert(conn, d, key, o.verdict.reason)
            if decision is Decision.ROLLBACK:
                await self._open_incident(conn, w, evaluation)
        if changed and self.on_verdict is not None:
            try:
                await self.on_verdict(d)
            except Exception as exc:  # the verdict is recorded; the dossier catches up at the next change
                log.warning("guard: could not show the verdict on %s's PR: %s", d.repo, exc)

    async def _alert(self, conn: AsyncConnection, d: DeploymentView, key: str, reason: str) -> None:
        if self.rollbacks.emit is not None:
            data = {"repo": d.repo, "environment": d.environment, "model": d.model, "version": d.version}
            await self.rollbacks.emit(conn, "guard.alert", key, {**data, "reason": reason})

    async def _open_incident(self, conn: AsyncConnection, w: _Watched, evaluation: Evaluation) -> None:
        d = w.deployment
        reason = "; ".join(o.verdict.reason for o in evaluation.failing)
        try:
            await self.rollbacks.open_incident(
                conn, d, w.config, trigger="guard", reason=reason, evidence=render_evidence(evaluation)
            )
        except RollbackError as exc:
            # Nothing to restore: say so where people look (status, log, metric) instead of failing silently.
            log.error("guard: %s %s in %s must be rolled back but cannot: %s", d.model, d.short, d.environment, exc)
            metrics.ALERTS.labels(d.repo, d.environment, d.model, "rollback").inc()
            await store.create_incident(
                conn,
                {
                    "key": f"guard:{d.repo}:{d.environment}:{d.model}:{d.id}",
                    "repo": d.repo,
                    "environment": d.environment,
                    "model": d.model,
                    "bad_version": d.version,
                    "bad_deployment_id": d.id,
                    "target_version": "",
                    "target_deployment_id": 0,
                    "deploy_repo": d.deploy_repo,
                    "values_path": "",
                    "branch": "",
                    "trigger": "guard",
                    "reason": reason[:2000],
                    "evidence": render_evidence(evaluation),
                    "state": "failed",
                    "last_error": str(exc),
                },
            )
            why = f"must be rolled back but cannot: {exc}"
            await self._alert(conn, d, f"guard.alert:guard:{d.repo}:{d.environment}:{d.model}:{d.id}", why)
