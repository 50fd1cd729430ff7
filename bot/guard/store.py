"""The guard's own tables: persisted check states, incidents, the watcher lease (deployments: bot.store.deployments).

Every write is idempotent or keyed by a unique constraint, so a round redone after a crash changes
nothing that the first attempt already wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.guard.analysis import CheckState
from bot.store.base import utcnow
from bot.store.deployments import DeploymentView
from bot.store.guard_models import GuardCheckState, GuardIncident
from bot.store.installations import installation_for as installation_for  # re-exported for the guard
from bot.store.leases import drop_lease as drop_lease  # re-exported: the watcher's lease
from bot.store.leases import take_lease as take_lease

OPEN_INCIDENT_STATES = ("opening", "open")


@dataclass(frozen=True)
class StoredCheck:
    check_key: str
    deployment_id: int
    decision: str
    reason: str
    state: CheckState
    updated_at: datetime | None


@dataclass(frozen=True)
class IncidentView:
    id: int
    key: str
    repo: str
    environment: str
    model: str
    bad_version: str
    bad_deployment_id: int
    target_version: str
    target_deployment_id: int
    deploy_repo: str
    values_path: str
    branch: str
    trigger: str
    actor: str
    reason: str
    evidence: str
    auto_merge: bool
    state: str
    pr_number: int | None
    pr_url: str | None
    merge_sha: str | None
    commented: bool
    last_error: str | None
    created_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_INCIDENT_STATES


def _incident(row: Any) -> IncidentView:
    return IncidentView(**{f: getattr(row, f) for f in IncidentView.__dataclass_fields__})


_INCIDENT_COLUMNS = [getattr(GuardIncident, f) for f in IncidentView.__dataclass_fields__]


# --------------------------------------------------------------------------- check states


async def load_states(
    conn: AsyncConnection, deployments: Sequence[DeploymentView]
) -> dict[int, dict[str, StoredCheck]]:
    """Stored states by deployment id, then check key; states of an earlier deploy of the version are left out."""
    by_id = {d.id: d for d in deployments}
    if not by_id:
        return {}
    rows = await conn.execute(
        select(
            GuardCheckState.deployment_id,
            GuardCheckState.check_key,
            GuardCheckState.decision,
            GuardCheckState.reason,
            GuardCheckState.state,
            GuardCheckState.updated_at,
        ).where(GuardCheckState.deployment_id.in_(by_id))
    )
    out: dict[int, dict[str, StoredCheck]] = {i: {} for i in by_id}
    for r in rows:
        out[r.deployment_id][r.check_key] = StoredCheck(
            r.check_key, r.deployment_id, r.decision, r.reason, CheckState.from_dict(r.state), r.updated_at
        )
    return out


async def save_states(
    conn: AsyncConnection, deployment: DeploymentView, checks: Iterable[tuple[str, str, str, CheckState]]
) -> None:
    """Upsert (check key, decision, reason, state) rows of one deployment."""
    table = cast(Table, GuardCheckState.__table__)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for key, decision, reason, state in checks:
        values = {
            "deployment_id": deployment.id,
            "decision": decision,
            "reason": reason[:2000],
            "state": state.to_dict(),
            "updated_at": utcnow(),
        }
        stmt = dialect.insert(table).values(
            repo=deployment.repo,
            environment=deployment.environment,
            model=deployment.model,
            version=deployment.version,
            check_key=key,
            **values,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["repo", "environment", "model", "version", "check_key"], set_=values
        )
        await conn.execute(stmt)


# --------------------------------------------------------------------------- leadership: bot.store.leases

# --------------------------------------------------------------------------- incidents


async def create_incident(conn: AsyncConnection, values: Mapping[str, Any]) -> bool:
    """Insert the incident unless its key exists; True when this call created it."""
    table = cast(Table, GuardIncident.__table__)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=["key"])
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def incident_by_key(conn: AsyncConnection, key: str) -> IncidentView | None:
    row = (await conn.execute(select(*_INCIDENT_COLUMNS).where(GuardIncident.key == key))).first()
    return _incident(row) if row is not None else None


async def incidents(
    conn: AsyncConnection, *, repo: str | None = None, open_only: bool = False, limit: int = 200
) -> list[IncidentView]:
    query = select(*_INCIDENT_COLUMNS).order_by(GuardIncident.id.desc()).limit(limit)
    if repo is not None:
        query = query.where(GuardIncident.repo == repo)
    if open_only:
        query = query.where(GuardIncident.state.in_(OPEN_INCIDENT_STATES))
    return [_incident(r) for r in await conn.execute(query)]


async def update_incident(conn: AsyncConnection, incident_id: int, **values: Any) -> None:
    await conn.execute(
        update(GuardIncident).where(GuardIncident.id == incident_id).values(updated_at=utcnow(), **values)
    )


async def incident(conn: AsyncConnection, incident_id: int) -> IncidentView | None:
    row = (await conn.execute(select(*_INCIDENT_COLUMNS).where(GuardIncident.id == incident_id))).first()
    return _incident(row) if row is not None else None


async def incidents_of(conn: AsyncConnection, repos: Sequence[str], limit: int = 200) -> list[IncidentView]:
    """The newest incidents of ``repos`` (the dashboard shows a user only what they can read)."""
    if not repos:
        return []
    query = select(*_INCIDENT_COLUMNS).where(GuardIncident.repo.in_(list(repos)))
    return [_incident(r) for r in await conn.execute(query.order_by(GuardIncident.id.desc()).limit(limit))]
