"""The ``deployments`` table's one reader and writer: every query of it, named by what it is for.

One row is one model version written (or proposed, refused, rolled back …) to one environment; the
newest ``deployed`` row of a (repo, environment, model) is what runs there. The deploy writes rows
(bot.deploy), a closed deploy-repository PR moves them (bot.deploy.merged_pr), and the guard reads
them and writes health and rollbacks (bot.guard). Functions take the caller's connection, so a caller
groups several of them in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import RowMapping, Table, and_, bindparam, case, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.base import utcnow
from bot.store.review_models import Deployment
from bot.store.reviews import newest_summary

DEPLOYMENTS = cast(Table, Deployment.__table__)
Row = RowMapping  # a whole row, by column name

# States of a row whose version really ran in the environment (a candidate to restore).
RAN_STATES = ("deployed", "superseded")
ABANDONED = "abandoned"  # a proposal whose deploy PR closed unmerged
# Live tracking (bot.deploy.live): the phases a ``deployed`` row goes through; the last two are final.
COMMITTED, ROLLING_OUT, LIVE, NOT_LIVE = "committed", "rolling_out", "live", "failed"
TRACKED = (COMMITTED, ROLLING_OUT)
# What wrote a row: a merge or ``/modelship deploy``, ``promote``, the guard's rollback (it pins), ``unpin``.
# A merged deploy-repository PR's row keeps its proposal's kind.
KINDS = ("deploy", "promote", "rollback", "unpin")


@dataclass(frozen=True)
class DeploymentView:
    """One ``deployments`` row, as plain values (what the guard works with)."""

    id: int
    repo: str
    environment: str
    model: str
    version: str
    source_pr: int | None
    deploy_repo: str
    variant: str
    sha256: str
    state: str
    health: str
    pinned: bool
    created_at: datetime | None
    kind: str = "deploy"  # KINDS: what wrote the row

    @property
    def short(self) -> str:
        return self.version[:7]


def _view(row: Any) -> DeploymentView:
    return DeploymentView(**{f: getattr(row, f) for f in DeploymentView.__dataclass_fields__})


_VIEW_COLUMNS = [getattr(Deployment, f) for f in DeploymentView.__dataclass_fields__]
_C = DEPLOYMENTS.c


# --------------------------------------------------------------------------- reads


async def current_deployments(conn: AsyncConnection, repo: str | None = None) -> list[DeploymentView]:
    """The newest ``deployed`` row per (repo, environment, model): what runs now."""
    newest = select(func.max(Deployment.id)).where(Deployment.state == "deployed")
    if repo is not None:
        newest = newest.where(Deployment.repo == repo)
    newest = newest.group_by(Deployment.repo, Deployment.environment, Deployment.model)
    rows = await conn.execute(select(*_VIEW_COLUMNS).where(Deployment.id.in_(newest)).order_by(Deployment.id))
    return [_view(r) for r in rows]


async def history(conn: AsyncConnection, repo: str, environment: str, model: str) -> list[DeploymentView]:
    """Every row of one (repo, environment, model), oldest first."""
    query = select(*_VIEW_COLUMNS).where(
        Deployment.repo == repo, Deployment.environment == environment, Deployment.model == model
    )
    return [_view(r) for r in await conn.execute(query.order_by(Deployment.id))]


async def deployment(conn: AsyncConnection, deployment_id: int) -> DeploymentView | None:
    row = (await conn.execute(select(*_VIEW_COLUMNS).where(Deployment.id == deployment_id))).first()
    return _view(row) if row is not None else None


async def latest(
    conn: AsyncConnection, repo: str, environment: str, model: str, *, version: str | None = None
) -> Row | None:
    """The newest row of one (repo, environment, model), of ``version`` when given."""
    query = select(DEPLOYMENTS).where(_C.repo == repo, _C.environment == environment, _C.model == model)
    if version is not None:
        query = query.where(_C.version == version)
    return (await conn.execute(query.order_by(_C.id.desc()).limit(1))).mappings().first()


async def of_repo(conn: AsyncConnection, repo: str) -> list[Row]:
    """Every row of a model repository, oldest first (``/modelship status``)."""
    query = select(DEPLOYMENTS).where(_C.repo == repo).order_by(_C.id)
    return list((await conn.execute(query)).mappings().all())


async def of_source_pr(conn: AsyncConnection, repo: str, number: int) -> list[Row]:
    """Every row of the versions a model-repository PR shipped, oldest first (its Deploy comment)."""
    query = select(DEPLOYMENTS).where(_C.repo == repo, _C.source_pr == number).order_by(_C.id)
    return list((await conn.execute(query)).mappings().all())


async def of_deploy_pr(conn: AsyncConnection, deploy_repo: str, number: int) -> list[Row]:
    """Every row recorded for one PR of a deploy repository, oldest first."""
    query = select(DEPLOYMENTS).where(_C.deploy_repo == deploy_repo, _C.deploy_pr == number).order_by(_C.id)
    return list((await conn.execute(query)).mappings().all())


async def rollouts(conn: AsyncConnection) -> list[Row]:
    """Rows the live tracker works on: deployed ones not live or failed yet, and any whose phase has not been
    told yet (GitHub, the dossier, the DeployListeners), oldest first."""
    query = select(DEPLOYMENTS).where(
        _C.rollout.is_not(None),
        or_(
            (_C.state == "deployed") & _C.rollout.in_(TRACKED),
            _C.rollout_told.is_(None),
            _C.rollout_told != _C.rollout,
        ),
    )
    return list((await conn.execute(query.order_by(_C.id))).mappings().all())


async def last_live(conn: AsyncConnection, repo: str, environment: str, model: str, before: int) -> Row | None:
    """The newest row before ``before`` whose version was seen live (what a failed deploy rolls back to)."""
    query = select(DEPLOYMENTS).where(
        _C.repo == repo, _C.environment == environment, _C.model == model, _C.id < before, _C.rollout == LIVE
    )
    return (await conn.execute(query.order_by(_C.id.desc()).limit(1))).mappings().first()


async def running(conn: AsyncConnection, repo: str, environment: str, model: str) -> Row | None:
    """The newest ``deployed`` row of one (repo, environment, model): what runs there now."""
    query = select(DEPLOYMENTS).where(
        _C.repo == repo, _C.environment == environment, _C.model == model, _C.state == "deployed"
    )
    return (await conn.execute(query.order_by(_C.id.desc()).limit(1))).mappings().first()


async def deployed_digests(conn: AsyncConnection) -> set[str]:
    """The sha256 of every model file ever written to an environment."""
    return set((await conn.execute(select(_C.sha256).distinct())).scalars())


# --------------------------------------------------------------------------- writes


async def insert(conn: AsyncConnection, *, track: bool = False, **values: Any) -> int:
    """A new row as given; see ``record`` for a version that replaces the running one. With ``track`` (the
    service runs live tracking: Prometheus is configured) a ``deployed`` row starts its rollout here
    (``committed``, with the file the environment served until now); without, it carries none. ``kind``
    (one of ``KINDS``) says what wrote the row; "deploy" when not given."""
    kind = values.setdefault("kind", "deploy")
    if kind not in KINDS:
        raise ValueError(f"deployments.kind {kind!r} is not one of {', '.join(KINDS)}")
    if track and values.get("state") == "deployed" and "rollout" not in values:
        values |= {"rollout": COMMITTED, "committed_at": utcnow()}
        values.setdefault("previous_sha256", await _served_before(conn, values))
    result = await conn.execute(DEPLOYMENTS.insert().values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def record(conn: AsyncConnection, *, track: bool = False, **values: Any) -> int:
    """A new row; a ``deployed`` one supersedes what ran in its (repo, environment, model) before."""
    if values.get("state") == "deployed":
        await supersede_running(conn, values["repo"], values["environment"], values["model"])
    return await insert(conn, track=track, **values)


# What an unpin row carries on from the row it replaces: the same file keeps running, so its guard verdict,
# GitHub Deployment and live-tracking phase are still true of it.
_CARRIED_ON = (
    "health",
    "github_deployment_id",
    "rollout",
    "rollout_told",
    "rollout_detail",
    "rollout_cause",
    "previous_sha256",
    "committed_at",
    "live_at",
)


async def record_unpin(conn: AsyncConnection, **values: Any) -> int:
    """An ``unpin`` row: the version that runs goes on running, no longer pinned (a history row, no new rollout:
    what it carries on comes from the running row when that is the same version)."""
    now = await running(conn, values["repo"], values["environment"], values["model"])
    carried = {k: now[k] for k in _CARRIED_ON} if now is not None and now["version"] == values["version"] else {}
    values = {"rollout": None} | carried | values | {"state": "deployed", "pinned": False, "kind": "unpin"}
    return await record(conn, **values)


async def _served_before(conn: AsyncConnection, values: dict[str, Any]) -> str | None:
    # Rows that ran have a deploy commit; a protected environment's proposals (superseded once merged) do not.
    query = select(_C.sha256).where(
        _C.repo == values["repo"],
        _C.environment == values["environment"],
        _C.model == values["model"],
        _C.state.in_((*RAN_STATES, "rolled_back")),
        _C.deploy_commit.is_not(None),
        _C.sha256 != "",
    )
    return (await conn.execute(query.order_by(_C.id.desc()).limit(1))).scalar()


async def move_rollout(
    conn: AsyncConnection, deployment_id: int, expected: str, phase: str, detail: str, *, live_at: datetime | None
) -> bool:
    """Move a row's rollout from ``expected`` to ``phase`` (False: another replica or round moved it first)."""
    values: dict[str, Any] = {"rollout": phase, "rollout_detail": detail[:2000] or None, "updated_at": utcnow()}
    if live_at is not None:
        values["live_at"] = live_at
    moved = await conn.execute(
        update(DEPLOYMENTS).where(_C.id == deployment_id, _C.rollout == expected).values(**values)
    )
    return bool(moved.rowcount)


async def note_rollout(conn: AsyncConnection, deployment_id: int, detail: str) -> None:
    """What the tracker saw this round, without a change of phase (shown in the dossier)."""
    await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.id == deployment_id, _C.rollout_detail.is_distinct_from(detail or None))
        .values(rollout_detail=detail[:2000] or None)
    )


async def told_rollout(conn: AsyncConnection, deployment_id: int, phase: str) -> bool:
    """Record that ``phase`` was told (False: it was already, by another round or replica)."""
    moved = await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.id == deployment_id, or_(_C.rollout_told.is_(None), _C.rollout_told != phase))
        .values(rollout_told=phase)
    )
    return bool(moved.rowcount)


async def told_cause(conn: AsyncConnection, deployment_id: int, cause_key: str) -> bool:
    """Record that the stuck cause ``cause_key`` was told (False: it was already, by another round or replica)."""
    key = cause_key[:255]
    moved = await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.id == deployment_id, _C.rollout_cause.is_distinct_from(key))
        .values(rollout_cause=key, updated_at=utcnow())
    )
    return bool(moved.rowcount)


async def supersede_running(conn: AsyncConnection, repo: str, environment: str, model: str) -> None:
    await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.repo == repo, _C.environment == environment, _C.model == model, _C.state == "deployed")
        .values(state="superseded", updated_at=utcnow())
    )


async def set_health(conn: AsyncConnection, deployment_id: int, health: str) -> bool:
    """True when the verdict changed (the PR's dossier shows it)."""
    changed = await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.id == deployment_id, _C.health != health)
        .values(health=health, updated_at=utcnow())
    )
    return bool(changed.rowcount)


async def set_github_deployment(conn: AsyncConnection, deployment_id: int, github_deployment_id: int) -> None:
    await conn.execute(
        update(DEPLOYMENTS).where(_C.id == deployment_id).values(github_deployment_id=github_deployment_id)
    )


async def mark_rolled_back(conn: AsyncConnection, deployment_id: int) -> None:
    """A rollback replaced this version: it is degraded and no longer runs."""
    await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.id == deployment_id)
        .values(state="rolled_back", health="degraded", updated_at=utcnow())
    )


async def abandon_proposal(conn: AsyncConnection, deployment_id: int, why: str) -> None:
    """A pending proposal that will never run (its PR closed, or a newer proposal replaced it)."""
    await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.id == deployment_id, _C.state == "pending")
        .values(state=ABANDONED, detail=why, updated_at=utcnow())
    )


async def retire_proposal(conn: AsyncConnection, deployment_id: int) -> bool:
    """Close a proposal (pending or abandoned) before its merge is recorded as a new row; False when another
    worker closed it first."""
    moved = await conn.execute(
        update(DEPLOYMENTS)
        .where(_C.id == deployment_id, _C.state.in_(("pending", ABANDONED)))
        .values(state="superseded", updated_at=utcnow())
    )
    return bool(moved.rowcount)


# --------------------------------------------------------------------------- the dashboard's reads


@dataclass(frozen=True)
class MatrixStamp:
    """What the dashboard's matrix compares between two looks: when a row last changed, the newest id, how
    many rows there are, and how many of them are newer than the id of the previous look (``since_id``).
    Rows never disappear in the bot's own writes; a deleted row shows as ``rows`` short of the last look's
    count plus ``newer``."""

    last: datetime | None
    max_id: int
    rows: int
    newer: int


def _matrix_look(changed_only: bool) -> Any:
    newer = func.coalesce(func.sum(case((_C.id > bindparam("since_id"), 1), else_=0)), 0)
    stamp = select(
        func.max(_C.updated_at).label("stamp_last"),
        func.coalesce(func.max(_C.id), 0).label("stamp_max_id"),
        func.count().label("stamp_rows"),
        newer.label("stamp_newer"),
    ).subquery("stamp")
    keys = (_C.repo, _C.environment, _C.model)
    recent: Any = DEPLOYMENTS
    if changed_only:
        # materialized first: SQLite's planner, without statistics, would rather walk the grouping index
        # over the whole table than the updated_at index over the few rows that changed
        recent = (
            select(*keys, _C.updated_at)
            .where(_C.updated_at > bindparam("since", type_=_C.updated_at.type))
            .cte("recent")
            .prefix_with("MATERIALIZED")
        )
    r = recent.c
    targets = (
        select(r.repo, r.environment, r.model, func.max(r.updated_at).label("changed_at"))
        .group_by(r.repo, r.environment, r.model)
        .subquery("changed")
    )
    x = DEPLOYMENTS.alias("x")
    same = and_(x.c.repo == targets.c.repo, x.c.environment == targets.c.environment, x.c.model == targets.c.model)
    newest = select(func.max(x.c.id)).where(same).scalar_subquery()
    running = select(func.max(x.c.id)).where(same, x.c.state == "deployed").scalar_subquery()
    summary = newest_summary(_C.repo, _C.source_pr).label("review_summary")
    # the stamp's one row, joined to the rows (none: the stamp alone): one statement, one snapshot
    rows = targets.join(DEPLOYMENTS, _C.id.in_([newest, running]))
    return (
        select(stamp, DEPLOYMENTS, targets.c.changed_at, summary)
        .select_from(stamp.outerjoin(rows, true()))
        .order_by(_C.id)
    )


# Built once: the matrix looks every second, and building the statement costs more than running it here.
_LOOK_ALL, _LOOK_CHANGED = _matrix_look(False), _matrix_look(True)
_STAMP_KEYS = ("stamp_last", "stamp_max_id", "stamp_rows", "stamp_newer")


async def matrix_look(
    conn: AsyncConnection, since: datetime | None = None, since_id: int = 0
) -> tuple[MatrixStamp, list[dict[str, Any]]]:
    """The dashboard matrix's look, in one statement: the table's stamp (``since_id``: the newest id of the
    previous look), and the newest row (any state) and the newest ``deployed`` row of each (repo, environment,
    model) with a row changed after ``since`` (every target, with None), oldest first. Each row carries
    ``changed_at`` (the target's last change) and ``review_summary`` (the newest review of its ``source_pr``:
    the published artifact, ``bot.store.reviews.artifacts_of``). The changed targets come from the
    ``updated_at`` index, each one's two rows from the (repo, environment, model, id) index, so a deploy costs
    its own rows, not the table."""
    query, params = (
        (_LOOK_ALL, {"since_id": since_id})
        if since is None
        else (_LOOK_CHANGED, {"since_id": since_id, "since": since})
    )
    found = (await conn.execute(query, params)).mappings().all()
    last, max_id, rows, newer = (found[0][k] for k in _STAMP_KEYS)
    stamp = MatrixStamp(last, int(max_id), int(rows), int(newer))
    return stamp, [{k: v for k, v in r.items() if k not in _STAMP_KEYS} for r in found if r["id"] is not None]


async def last_change(conn: AsyncConnection) -> datetime | None:
    """When any row last changed (the dashboard's live cursor)."""
    return cast(datetime | None, await conn.scalar(select(func.max(_C.updated_at))))


async def of_model(conn: AsyncConnection, repo: str, model: str) -> list[Row]:
    """Every row of one model of a repository, in every environment, oldest first (its timeline)."""
    query = select(DEPLOYMENTS).where(_C.repo == repo, _C.model == model).order_by(_C.id)
    return list((await conn.execute(query)).mappings().all())


async def rows_by_id(conn: AsyncConnection, ids: Sequence[int]) -> list[Row]:
    query = select(DEPLOYMENTS).where(_C.id.in_(list(ids))).order_by(_C.id)
    return list((await conn.execute(query)).mappings().all())
