"""Tables of the service core: webhook deliveries, GitHub App installations and the job queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, utcnow


class Delivery(Base):
    """A webhook delivery, stored before it is acknowledged. (hook_id, guid) makes redeliveries idempotent."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("hook_id", "guid", name="uq_deliveries_hook_guid"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    hook_id: Mapped[str] = mapped_column(String(64), default="")
    guid: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    repository: Mapped[str | None] = mapped_column(String(256))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    sender: Mapped[str | None] = mapped_column(String(256))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # queued | ignored:<why> | recorded
    outcome: Mapped[str] = mapped_column(String(64))
    # The raw JSON body as received: cheaper than re-serialising, and exactly what GitHub signed.
    body: Mapped[str] = mapped_column(Text)


class Installation(Base):
    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account: Mapped[str] = mapped_column(String(256))
    repositories: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"all": bool, "names": [...]}
    suspended: Mapped[bool] = mapped_column(default=False)
    deleted: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Job(Base):
    """A unit of work. ``serial_key`` (e.g. ``owner/repo#12``) allows one running job per PR at a time."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "state", "run_after"),
        Index("ix_jobs_serial", "serial_key", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    serial_key: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # queued | running | done | parked | cancelled
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=5)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The first claim (a retry keeps it): queued -> claimed is the queue wait the scale bench reports.
    claimed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
