"""The rollback path (the watcher, chat-ops and the CLI share it): real devhub, real git, real database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import Service
from bot.config.deploy_allowlist import DeployAllowlist
from bot.config.repo import RepoConfig
from bot.deploy.manifest import current_ref, plan_deploy, render_values
from bot.guard import store
from bot.guard.rollback import RollbackError, RollbackRequest, Rollbacks, choose_target
from bot.guard.service import Guard
from bot.store.deployments import DeploymentView, current_deployments
from devkit.devhub import DevHub, RunningDevHub
from devkit.guard_world import (
    BRANCH,
    DEPLOY,
    MODELS,
    REF1,
    REF2,
    TABLE,
    V1,
    V2,
    VALUES,
    World,
    build_world,
    config,
    create_app,
    rows,
    running_bot,
)


def row(id: int, version: str, state: str = "superseded", health: str = "unknown") -> DeploymentView:
    return DeploymentView(
        id, "o/r", "prod", "m", version, None, "o/d", "onnx", "", state, health, False, datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_the_target_is_the_newest_earlier_version_that_ran_healthy() -> None:
    history = [row(1, "a" * 40, health="healthy"), row(2, "b" * 40, health="healthy"), row(3, "c" * 40, "deployed")]
    assert choose_target(history, history[-1]).version == "b" * 40


def test_versions_seen_degraded_or_rolled_back_are_never_restored() -> None:
    history = [
        row(1, "a" * 40, health="inconclusive"),
        row(2, "b" * 40, "rolled_back", "degraded"),
        row(3, "d" * 40, health="degraded"),
        row(4, "c" * 40, "deployed"),
    ]
    assert choose_target(history, history[-1]).version == "a" * 40


def test_without_any_earlier_version_the_error_says_to_name_one() -> None:
    only = row(1, "a" * 40, "deployed")
    with pytest.raises(RollbackError, match="rollback prod to <version>"):
        choose_target([only], only)


def test_an_explicit_version_accepts_a_short_sha_and_names_the_known_ones_when_unknown() -> None:
    history = [row(1, "a" * 40), row(2, "b" * 40), row(3, "c" * 40, "deployed")]
    assert choose_target(history, history[-1], "aaaaaaa").id == 1
    with pytest.raises(RollbackError, match="known versions: bbbbbbb, aaaaaaa"):
        choose_target(history, history[-1], "1234567")
    with pytest.raises(RollbackError, match="already runs ccccccc"):
        choose_target(history, history[-1], "c" * 40)


@pytest.fixture
async def bot(devhub: RunningDevHub, tmp_path: Path) -> AsyncIterator[tuple[Service, World]]:
    app = await create_app(devhub.hub)
    async with running_bot(devhub, tmp_path / "bot", app) as service:
        world = await build_world(devhub.hub, service.services.engine, app, guard_config=config(auto_merge=False))
        yield service, world


def guard_of(service: Service) -> Guard:
    guard = service.services.guard
    assert isinstance(guard, Guard)
    return guard


async def test_a_manual_rollback_opens_one_pinned_pr_and_records_the_merge(bot: tuple[Service, World]) -> None:
    service, world = bot
    guard = guard_of(service)
    [first] = await guard.rollbacks.request(RollbackRequest(MODELS, "production", actor="alice", reason="bad answers"))
    assert first.created and first.incident is not None and first.incident.state == "open"
    [pull] = world.rollback_pulls()
    assert pull.state == "open" and "pinned" in pull.title and "bad answers" in (pull.body or "")
    proposed = current_ref((world.hub.git.read(DEPLOY, f"refs/heads/{BRANCH}", VALUES) or b"").decode())
    assert proposed is not None and proposed.revision == V1 and proposed.pinned and "bad answers" in proposed.pin_reason
    assert proposed.sequence == 1000  # the values V1 was deployed with, from the deploy repository's history
    [comment] = world.rollback_notes(2)  # the PR that shipped V2
    assert "rolled back iris" in comment and first.incident.pr_url and first.incident.pr_url in comment

    [again] = await guard.rollbacks.request(RollbackRequest(MODELS, "production", actor="bob"))
    assert not again.created and again.incident is not None and again.incident.id == first.incident.id
    assert len(world.rollback_pulls()) == 1 and len(world.rollback_notes(2)) == 1

    await world.hub.merge_pr(DEPLOY, pull.number)
    [merged] = await guard.rollbacks.advance_open()
    assert merged.state == "merged"
    by_version = {(r.version, r.state): r for r in await rows(service.services.engine)}
    assert by_version[(V2, "rolled_back")].health == "degraded"
    restored = by_version[(V1, "deployed")]
    assert restored.pinned and restored.deploy_pr == pull.number and restored.values_path == VALUES
    assert (restored.kind, by_version[(V2, "rolled_back")].kind) == ("rollback", "deploy")  # the timeline's "what"
    assert await guard.rollbacks.advance_open() == []  # nothing left to do, nothing done twice

    # Auto-deploy never rolls forward over the pin, even for a newer sequence.
    main = (world.hub.git.read(DEPLOY, "refs/heads/main", VALUES) or b"").decode()
    plan = plan_deploy(main, REF2)
    assert not plan.changed and plan.reason.startswith("pinned")
    status = await guard.status(MODELS)
    assert f"`{V1[:7]}` | unknown | yes" in status


async def test_a_dry_run_shows_the_diff_and_writes_nothing(bot: tuple[Service, World]) -> None:
    service, world = bot
    [result] = await guard_of(service).rollbacks.request(RollbackRequest(MODELS, "production", dry_run=True))
    assert result.incident is None
    assert f"-  revision: {V2}" in result.preview and f"+  revision: {V1}" in result.preview
    assert "+  pinned: true" in result.preview
    assert world.rollback_pulls() == [] and world.rollback_notes(2) == []
    assert [r.state for r in await rows(service.services.engine)] == ["superseded", "deployed"]


async def test_rolling_back_an_unknown_environment_or_version_says_what_exists(bot: tuple[Service, World]) -> None:
    service, _ = bot
    rollbacks = guard_of(service).rollbacks
    with pytest.raises(RollbackError, match=r"'staging' is not in .modelship.yml \(environments: production\)"):
        await rollbacks.request(RollbackRequest(MODELS, "staging"))
    with pytest.raises(RollbackError, match=f"known versions: {V1[:7]}"):
        await rollbacks.request(RollbackRequest(MODELS, "production", to="0000000"))


async def test_an_incident_recorded_before_a_crash_is_opened_once_by_the_next_process(
    bot: tuple[Service, World],
) -> None:
    service, world = bot
    crashed = guard_of(service).rollbacks
    config = await crashed.github.read_config(MODELS)
    assert isinstance(config, RepoConfig)
    async with service.services.engine.begin() as conn:
        [current] = await current_deployments(conn, MODELS)
        incident, created = await crashed.open_incident(conn, current, config, trigger="guard", reason="error_rate")
    assert created and incident.state == "opening" and world.rollback_pulls() == []

    # The process died here. A new one (new objects, same database) picks the incident up once.
    restarted = Rollbacks(service.services.engine, crashed.github, crashed.workdir.parent / "restarted")
    [opened] = await restarted.advance_open()
    [again] = await restarted.advance_open()
    assert opened.state == again.state == "open" and opened.pr_number == again.pr_number
    assert len(world.rollback_pulls()) == 1 and len(world.rollback_notes(2)) == 1
    async with service.services.engine.begin() as conn:
        _, created_again = await crashed.open_incident(conn, current, config, trigger="guard", reason="error_rate")
    assert not created_again


# --------------------------------------------------------------------------- tenancy

EVE, VICTIM = "eve/models", "victim/deploy"


@pytest.fixture
async def stolen(devhub: RunningDevHub, tmp_path: Path) -> AsyncIterator[tuple[Service, DevHub]]:
    """eve's deployments rows name victim's deploy repository (as a cross-tenant deploy before the fix left them)."""
    hub = devhub.hub
    app = await create_app(hub)
    async with running_bot(devhub, tmp_path / "bot", app) as service:
        await hub.create_repo(
            EVE, {".modelship.yml": config().replace(f"repository: {DEPLOY}", f"repository: {VICTIM}")}
        )
        await hub.create_repo(VICTIM, {VALUES: VICTIM_VALUES})
        assert await hub.install("eve", [EVE], app[0]) != await hub.install("victim", [VICTIM], app[0])
        async with service.services.engine.begin() as conn:
            for version, state, health in ((V1, "superseded", "healthy"), (V2, "deployed", "unknown")):
                await conn.execute(
                    TABLE.insert().values(
                        repo=EVE,
                        environment="production",
                        model="iris",
                        version=version,
                        deploy_repo=VICTIM,
                        variant="onnx",
                        sha256="0" * 64,
                        actor="eve",
                        state=state,
                        health=health,
                    )
                )
        yield service, hub


VICTIM_VALUES = render_values(render_values(None, REF1, "production"), REF2)


def untouched(hub: DevHub) -> bool:
    refs = hub.git.refs(VICTIM)
    values = (hub.git.read(VICTIM, "refs/heads/main", VALUES) or b"").decode()
    return list(refs) == ["refs/heads/main"] and values == VICTIM_VALUES and not hub.pulls.get(VICTIM)


async def test_a_rollback_never_reads_or_writes_another_tenants_deploy_repository(
    stolen: tuple[Service, DevHub], caplog: pytest.LogCaptureFixture
) -> None:
    service, hub = stolen
    rollbacks = guard_of(service).rollbacks

    # chat-ops and the CLI: refused before an incident is recorded, the dry run before any read.
    for dry_run in (False, True):
        with pytest.raises(RollbackError, match="refused by MODELSHIP_DEPLOY_ALLOWLIST") as refused:
            await rollbacks.request(RollbackRequest(EVE, "production", actor="eve", dry_run=dry_run))
        assert f"`{VICTIM}`" in str(refused.value)
    assert untouched(hub)
    async with service.services.engine.connect() as conn:
        assert await store.incidents(conn) == []

    # The watcher's path (open the incident, then advance it), with an operator allow-list far too broad.
    rollbacks.allowlist = DeployAllowlist.parse(["*/*=*/*"])
    config_ = await rollbacks.github.read_config(EVE)
    assert isinstance(config_, RepoConfig)
    async with service.services.engine.begin() as conn:
        [current] = await current_deployments(conn, EVE)
        incident, _ = await rollbacks.open_incident(conn, current, config_, trigger="guard", reason="error rate 9%")
    with caplog.at_level(logging.WARNING, logger="bot.guard.rollback"):
        stalled = await rollbacks.advance(incident)

    assert stalled.state == "opening" and "refused by the same-installation rule" in (stalled.last_error or "")
    assert any("same installation" in r.getMessage() and VICTIM in r.getMessage() for r in caplog.records)
    assert untouched(hub)
    status = await guard_of(service).status(EVE)
    assert "same-installation rule" in status


async def test_a_rollback_helm_refuses_proposes_nothing_and_says_what_helm_said(bot: tuple[Service, World]) -> None:
    """A person typed a quantity Kubernetes does not understand into the environment's file: Helm (not a
    Python schema) judges the rollback's values, so no branch and no PR propose them."""
    service, world = bot
    main = (world.hub.git.read(DEPLOY, "refs/heads/main", VALUES) or b"").decode()
    await world.hub.push(DEPLOY, "main", {VALUES: main + "resources:\n  limits:\n    memory: 1Gib-oops\n"})

    [result] = await guard_of(service).rollbacks.request(RollbackRequest(MODELS, "production", actor="alice"))

    assert world.rollback_pulls() == []
    assert world.hub.git.read(DEPLOY, f"refs/heads/{BRANCH}", VALUES) is None
    assert result.incident is not None and result.incident.state == "opening"  # retried next round
    error = result.incident.last_error or ""
    assert "at '/resources/limits/memory': '1Gib-oops' does not match pattern" in error, error
