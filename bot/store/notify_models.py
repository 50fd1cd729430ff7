"""The notification outbox: one row per event, unique by its key (bot.store.notifications reads and writes it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, utcnow


class NotifyEvent(Base):
    """An event to tell people about (review finished, deploy committed / live / failed, rollback opened /
    merged, guard alert). The unique ``key`` makes one event one row, however often (and by however many
    replicas) it is emitted; ``delivered`` lists the sinks that have it, so a retry never sends twice."""

    __tablename__ = "notify_events"
    __table_args__ = (UniqueConstraint("key", name="uq_notify_events_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(64))  # review.finished, deploy.committed, … (bot.config.notify_events)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    delivered: Mapped[list[str]] = mapped_column(JSON, default=list)  # sink names: "slack", "webhook"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]  # when the last wanted sink got it
