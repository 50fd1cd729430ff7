"""One watcher round for a deployment: render each check's template, query, analyse.

The caller (the watcher) owns scheduling, persistence of the returned states and acting on the
decision; this module only turns (deployment, checks, states, now) into verdicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.guard.analysis import CheckConfig, CheckState, Decision, Verdict, analyse, worst
from bot.guard.prometheus import MetricsProvider, QueryResult
from bot.guard.templates import QueryTemplate, TemplateError


@dataclass(frozen=True)
class Deployment:
    env: str
    model: str
    version: str


@dataclass(frozen=True)
class CheckOutcome:
    check: CheckConfig
    query: str  # the PromQL sent, for the evidence in a rollback PR
    result: QueryResult
    verdict: Verdict


@dataclass(frozen=True)
class Evaluation:
    deployment: Deployment
    outcomes: tuple[CheckOutcome, ...]

    @property
    def decision(self) -> Decision:
        return worst(o.verdict.decision for o in self.outcomes)

    @property
    def states(self) -> dict[str, CheckState]:
        return {o.check.key: o.verdict.state for o in self.outcomes}

    @property
    def failing(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.verdict.decision in (Decision.ROLLBACK, Decision.DEGRADED)]


def render(template: QueryTemplate | None, check: CheckConfig, deployment: Deployment) -> str:
    if template is None:
        raise TemplateError(f"no PromQL template named {check.template!r} on this server")
    return template.render(model=deployment.model, version=deployment.version, env=deployment.env, window=check.window)


async def evaluate(
    provider: MetricsProvider,
    templates: Mapping[str, QueryTemplate],
    deployment: Deployment,
    checks: Sequence[CheckConfig],
    states: Mapping[str, CheckState],
    now: float,
) -> Evaluation:
    async def one(check: CheckConfig) -> CheckOutcome:
        state = states.get(check.key, CheckState())
        try:
            query = render(templates.get(check.template), check, deployment)
        except TemplateError as exc:
            result = QueryResult.failed(str(exc))
            return CheckOutcome(check, "", result, analyse(check, state, result, now))
        if state.first_seen is not None and now - state.first_seen < check.initial_delay:
            # The verdict is inconclusive whatever Prometheus says: spare it the query.
            result = QueryResult.no_data()
        else:
            result = await provider.query(query)
        return CheckOutcome(check, query, result, analyse(check, state, result, now))

    outcomes = await asyncio.gather(*(one(c) for c in checks))
    return Evaluation(deployment, tuple(outcomes))


async def evaluate_many(
    provider: MetricsProvider,
    templates: Mapping[str, QueryTemplate],
    watched: Sequence[tuple[Deployment, Sequence[CheckConfig], Mapping[str, CheckState]]],
    now: float,
    *,
    concurrency: int = 16,
) -> list[Evaluation]:
    """A whole round; ``concurrency`` bounds the deployments in flight so Prometheus sees a steady trickle."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(
        deployment: Deployment, checks: Sequence[CheckConfig], states: Mapping[str, CheckState]
    ) -> Evaluation:
        async with gate:
            return await evaluate(provider, templates, deployment, checks, states, now)

    return list(await asyncio.gather(*(bounded(*w) for w in watched)))
