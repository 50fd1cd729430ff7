"""Review results per PR head and deployments per environment: what deploy and guard build on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.base import Base, utcnow


class Review(Base):
    """The outcome of reviewing one head commit of a PR (the newest row per PR is current)."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("repo", "number", "head_sha", name="uq_reviews_head"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    repo: Mapped[str] = mapped_column(String(256))
    number: Mapped[int]
    head_sha: Mapped[str] = mapped_column(String(64))
    base_sha: Mapped[str] = mapped_column(String(64))
    # success | failure | error | skipped | waiting
    conclusion: Mapped[str] = mapped_column(String(16))
    # A bot.store.reviews.ReviewRecord, serialised by record_to_json / read by record_from_json there
    # (the one reader and writer of this table).
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The review's full comparison (bot.review.stored.report_to_json): metrics with intervals, gates and
    # the optimization report, what the PR comment is rendered from; None before it was kept, or when the
    # review ended without one (config error, waiting, refused tree).
    report: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Deployment(Base):
    """One model version written to one environment of the deploy repository (history, newest last)."""

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_env_model", "repo", "environment", "model", "id"),
        Index("ix_deployments_rollout", "rollout"),
        # the dashboard's matrix reads the rows changed since its last look (bot.store.deployments.matrix_look)
        Index("ix_deployments_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    repo: Mapped[str] = mapped_column(String(256))  # the model repository
    environment: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))  # the model repository commit (merge commit)
    source_pr: Mapped[int | None]
    deploy_repo: Mapped[str] = mapped_column(String(256))
    deploy_commit: Mapped[str | None] = mapped_column(String(64))
    deploy_pr: Mapped[int | None]  # protected environments: the deploy repository PR
    # The values file in the deploy repository (deploy.path_template of the config the row was written under):
    # with deploy_commit it names the file as committed (the dashboard's values diff). NULL: not known (older rows).
    values_path: Mapped[str | None] = mapped_column(String(512))
    variant: Mapped[str] = mapped_column(String(32), default="original")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    actor: Mapped[str] = mapped_column(String(256), default="")
    # pending | deployed | failed | skipped (pinned, stale, on hold) | rolled_back | superseded
    # | abandoned (its deploy PR closed unmerged: bot.deploy.merged_pr)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # healthy | degraded | inconclusive | unknown (written by the guard)
    health: Mapped[str] = mapped_column(String(16), default="unknown")
    pinned: Mapped[bool] = mapped_column(default=False)
    # What wrote the row (bot.store.deployments.KINDS): deploy | promote | rollback | unpin (the timeline's "what").
    kind: Mapped[str] = mapped_column(String(16), default="deploy", server_default="deploy")
    detail: Mapped[str | None] = mapped_column(Text)
    github_deployment_id: Mapped[int | None] = mapped_column(BigInteger)
    # Live tracking (bot.deploy.live) of a ``deployed`` row: committed | rolling_out | live | failed; NULL for
    # rows that never ran (and rows from before live tracking). ``rollout_told``: the phase GitHub, the PR's
    # dossier and the DeployListeners last heard of (behind ``rollout`` until the tracker has told them).
    rollout: Mapped[str | None] = mapped_column(String(16))
    rollout_told: Mapped[str | None] = mapped_column(String(16))
    rollout_detail: Mapped[str | None] = mapped_column(Text)  # what the bot saw last (failed: why)
    # The stuck cause GitHub and the dossier last heard of while the rollout was under way (its key,
    # bot.deploy.kube_rollout.RolloutStatus.cause_key): each distinct cause is told once, across restarts.
    rollout_cause: Mapped[str | None] = mapped_column(String(255))
    previous_sha256: Mapped[str | None] = mapped_column(String(64))  # the file the environment served before
    committed_at: Mapped[datetime | None]
    live_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
