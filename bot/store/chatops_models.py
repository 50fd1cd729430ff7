"""Tables of chat-ops: the command audit log, ok-to-test approvals and deploy holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, utcnow


class ChatopsAudit(Base):
    """One row per command read from a comment, whatever became of it (run, denied, rate limited…)."""

    __tablename__ = "chatops_audit"
    __table_args__ = (Index("ix_chatops_audit_pr", "repo", "pr", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    repo: Mapped[str] = mapped_column(String(256))
    pr: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(256))
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    command: Mapped[str] = mapped_column(String(64))  # the command name, or "(parse error)"
    line: Mapped[str] = mapped_column(Text)  # the command line as written (clipped by the parser)
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {"args": {...}, "flags": {...}}
    decision: Mapped[str] = mapped_column(Text)  # why: "allowed", "denied: …", "rate limited"
    result: Mapped[str] = mapped_column(Text)  # what happened: "queued review", "held", "error: …"
    ok: Mapped[bool] = mapped_column(default=False)


class ChatopsApproval(Base):
    """``ok-to-test``: a write+ user approved sandbox runs of exactly this head commit."""

    __tablename__ = "chatops_approvals"
    __table_args__ = (UniqueConstraint("repo", "pr", "sha", name="uq_chatops_approvals_repo_pr_sha"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    repo: Mapped[str] = mapped_column(String(256))
    pr: Mapped[int] = mapped_column(Integer)
    sha: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatopsHold(Base):
    """``hold``: deploys of this PR are blocked until ``unhold``."""

    __tablename__ = "chatops_holds"
    __table_args__ = (UniqueConstraint("repo", "pr", name="uq_chatops_holds_repo_pr"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    repo: Mapped[str] = mapped_column(String(256))
    pr: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatopsRateBucket(Base):
    """A user's chat-ops token bucket (bot.chatops.ratelimit.Bucket), shared by restarts and replicas.
    A bucket untouched for capacity / rate seconds is full again, so such rows are deleted."""

    __tablename__ = "chatops_rate_buckets"

    login: Mapped[str] = mapped_column(String(256), primary_key=True)  # lower-cased
    tokens: Mapped[float]
    updated: Mapped[float] = mapped_column(index=True)  # Unix seconds
    notified: Mapped[bool] = mapped_column(default=False)
