"""Tables of the guard: analysis state per check, and rollback incidents.

The watcher is stateless between rounds: everything it must remember across a restart (breach
counts, open incidents, the rollback PR of an incident) lives here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, utcnow


class GuardCheckState(Base):
    """bot.guard.analysis.CheckState as JSON, one row per (environment, model, version, check)."""

    __tablename__ = "guard_check_states"
    __table_args__ = (
        UniqueConstraint("repo", "environment", "model", "version", "check_key", name="uq_guard_check_states_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    repo: Mapped[str] = mapped_column(String(256))
    environment: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    check_key: Mapped[str] = mapped_column(String(128))
    # The deployments row the state belongs to: a version deployed again starts from a fresh state.
    deployment_id: Mapped[int] = mapped_column(BigInteger)
    decision: Mapped[str] = mapped_column(String(16), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GuardIncident(Base):
    """One rollback: at most one row (hence one PR) per ``key``, whatever restarts happen meanwhile.

    ``state``: opening (row written, PR not yet recorded) -> open -> merged | closed | failed.
    """

    __tablename__ = "guard_incidents"
    __table_args__ = (
        UniqueConstraint("key", name="uq_guard_incidents_key"),
        Index("ix_guard_incidents_env", "repo", "environment", "model", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(512))
    repo: Mapped[str] = mapped_column(String(256))
    environment: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    bad_version: Mapped[str] = mapped_column(String(64))
    bad_deployment_id: Mapped[int] = mapped_column(BigInteger)
    target_version: Mapped[str] = mapped_column(String(64))
    target_deployment_id: Mapped[int] = mapped_column(BigInteger)
    deploy_repo: Mapped[str] = mapped_column(String(256))
    values_path: Mapped[str] = mapped_column(String(512))
    branch: Mapped[str] = mapped_column(String(256))
    trigger: Mapped[str] = mapped_column(String(16))  # guard | manual
    actor: Mapped[str] = mapped_column(String(256), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    auto_merge: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(16), default="opening")
    pr_number: Mapped[int | None]
    pr_url: Mapped[str | None] = mapped_column(String(512))
    merge_sha: Mapped[str | None] = mapped_column(String(64))
    commented: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GuardLease(Base):
    """Which bot process runs the watcher: with several replicas on one database exactly one leads, so
    breaches are counted once and Prometheus is asked once. The holder renews every round; a lease
    left to expire (the leader died) is taken by the next replica that looks."""

    __tablename__ = "guard_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime]
