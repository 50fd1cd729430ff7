"""The `reviews` table's one reader and writer, and the typed record review hands to deploy.

The record is stored in the JSON column `reviews.summary`; ``record_to_json`` and
``record_from_json`` are the only two places that know its layout. Reading is lenient: rows written
by older versions (or by hand) become a record with what could be read, never an exception in deploy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.review_models import Review


@dataclass(frozen=True)
class ReviewedModel:
    """What a review established about one model's head: what deploy may ship and with which evidence."""

    status: str  # compared | new | head_failed | base_failed
    metrics: Mapping[str, float] = field(default_factory=dict)  # head values, flat
    gates_passed: bool = False
    model_path: str | None = None
    model_sha256: str | None = None
    variant: str = "original"  # the chosen variant (original, onnx_fp32, int8_dynamic, …)
    variant_sha256: str | None = None
    # variants/<model>/<file> under the artifacts directory of this head, when a variant was kept.
    variant_artifact: str | None = None
    # The kept variant published to MODELSHIP_REGISTRY: registry/repository@sha256:<manifest digest>.
    artifact: str | None = None
    # Why it was not published (the registry refused or was down); deploy publishes it then.
    artifact_error: str | None = None
    # The artifact's created annotation: a later push of the same bytes reuses it, so the digest is the same.
    artifact_created: str | None = None
    # Each failed gate as the review comment words it ("Δ f1 = -0.022, required ≥ -0.01"): what a deploy
    # held back by `requires: [review_passed]` names.
    failed_gates: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReviewRecord:
    """The outcome of one review of one head commit, as deploy reads it."""

    models: Mapping[str, ReviewedModel] = field(default_factory=dict)
    comment_id: int | None = None
    check_run_id: int | None = None
    config_error: tuple[str, ...] = ()  # the base branch's .modelship.yml problems, when it was invalid
    tree_refused: str | None = None  # the exported PR tree was refused (a link out of it, over a cap)
    # bot.review.integrity problems: the review failed and none of its hashes may ship.
    verification_failed: tuple[str, ...] = ()


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _metrics(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    # Older rows may nest {"head": x}; a number is taken as it is.
    flat = {str(k): v.get("head", v.get("value")) if isinstance(v, Mapping) else v for k, v in value.items()}
    return {k: float(v) for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _model(doc: Mapping[str, Any]) -> ReviewedModel:
    return ReviewedModel(
        status=str(doc.get("status") or "compared"),
        metrics=_metrics(doc.get("metrics")),
        gates_passed=doc.get("gates_passed") is True,
        model_path=_str(doc.get("model_path")),
        model_sha256=_str(doc.get("model_sha256")),
        variant=_str(doc.get("variant")) or "original",
        variant_sha256=_str(doc.get("variant_sha256")),
        variant_artifact=_str(doc.get("variant_artifact")),
        artifact=_str(doc.get("artifact")),
        artifact_error=_str(doc.get("artifact_error")),
        artifact_created=_str(doc.get("artifact_created")),
        failed_gates=_strings(doc.get("failed_gates")),
    )


def record_from_json(doc: Any) -> ReviewRecord:
    """The typed record of a stored `reviews.summary` document."""
    if not isinstance(doc, Mapping):
        return ReviewRecord()
    models = doc.get("models")
    return ReviewRecord(
        models={
            str(name): _model(entry)
            for name, entry in (models.items() if isinstance(models, Mapping) else ())
            if isinstance(entry, Mapping)
        },
        comment_id=_int(doc.get("comment_id")),
        check_run_id=_int(doc.get("check_run_id")),
        config_error=_strings(doc.get("config_error")),
        tree_refused=_str(doc.get("tree_refused")),
        verification_failed=_strings(doc.get("verification_failed")),
    )


def record_to_json(record: ReviewRecord) -> dict[str, Any]:
    """The `reviews.summary` document of a record (the layout rows have always had)."""
    doc: dict[str, Any] = {}
    if record.models or record.comment_id is not None or record.check_run_id is not None:
        doc["models"] = {name: _model_json(m) for name, m in record.models.items()}
        doc["comment_id"] = record.comment_id
        doc["check_run_id"] = record.check_run_id
    if record.config_error:
        doc["config_error"] = list(record.config_error)
    if record.tree_refused:
        doc["tree_refused"] = record.tree_refused
    if record.verification_failed:
        doc["verification_failed"] = list(record.verification_failed)
    return doc


def _model_json(model: ReviewedModel) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "status": model.status,
        "metrics": dict(model.metrics),
        "gates_passed": model.gates_passed,
        "model_path": model.model_path,
        "model_sha256": model.model_sha256,
        "variant": model.variant,
        "variant_sha256": model.variant_sha256,
    }
    for key in ("variant_artifact", "artifact", "artifact_error", "artifact_created"):
        if (value := getattr(model, key)) is not None:
            doc[key] = value
    if model.failed_gates:
        doc["failed_gates"] = list(model.failed_gates)
    return doc


async def save_review(
    engine: AsyncEngine,
    *,
    repo: str,
    number: int,
    head_sha: str,
    base_sha: str,
    conclusion: str,
    record: ReviewRecord,
    report: Mapping[str, Any] | None = None,
) -> None:
    """Record the outcome of reviewing ``head_sha``; a re-review of the same head replaces the row.
    ``report`` is the review's full comparison (bot.review.stored.report_to_json), kept as it is."""
    async with engine.begin() as conn:
        await conn.execute(
            delete(Review).where(Review.repo == repo, Review.number == number, Review.head_sha == head_sha)
        )
        await conn.execute(
            insert(Review).values(
                repo=repo,
                number=number,
                head_sha=head_sha,
                base_sha=base_sha,
                conclusion=conclusion,
                summary=record_to_json(record),
                report=dict(report) if report is not None else None,
            )
        )


async def reviewed_model(
    engine: AsyncEngine, repo: str, number: int, head_sha: str | None, model: str
) -> ReviewedModel | None:
    """What the review of ``head_sha`` (else the PR's newest review) recorded for ``model``."""
    found = await reviewed_model_at(engine, repo, number, head_sha, model)
    return found[1] if found is not None else None


async def reviewed_model_at(
    engine: AsyncEngine, repo: str, number: int, head_sha: str | None, model: str
) -> tuple[str, ReviewedModel] | None:
    """``reviewed_model`` with the head commit that review was of (where its kept files are)."""
    query = select(Review.head_sha, Review.summary).where(Review.repo == repo, Review.number == number)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(Review.id.desc()))).all()
    row = next((r for r in rows if r.head_sha == head_sha), rows[0] if rows else None)
    if row is None:
        return None
    reviewed = record_from_json(row.summary).models.get(model)
    return (str(row.head_sha), reviewed) if reviewed is not None else None


@dataclass(frozen=True)
class HeadReview:
    """The review of one exact head commit: its conclusion (success | failure | error | skipped | waiting)
    and its record."""

    head_sha: str
    conclusion: str
    record: ReviewRecord

    @property
    def completed(self) -> bool:
        """The review ran to a verdict (passed or failed); waiting, skipped or errored ones did not."""
        return self.conclusion in ("success", "failure")


async def head_review(engine: AsyncEngine, repo: str, number: int, head_sha: str) -> HeadReview | None:
    """The review of exactly ``head_sha`` of PR ``number`` (None: that head was never reviewed). Unlike
    ``reviewed_model`` there is no fallback to an older head: a verdict is about the bytes it saw."""
    query = select(Review.conclusion, Review.summary).where(
        Review.repo == repo, Review.number == number, Review.head_sha == head_sha
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query.order_by(Review.id.desc()).limit(1))).first()
    if row is None:
        return None
    return HeadReview(head_sha, str(row.conclusion), record_from_json(row.summary))


async def review_records(engine: AsyncEngine, repo: str, head_sha: str) -> list[ReviewRecord]:
    """Every recorded review of ``head_sha`` in ``repo``, newest first."""
    query = select(Review.summary).where(Review.repo == repo, Review.head_sha == head_sha)
    async with engine.connect() as conn:
        return [record_from_json(s) for s in (await conn.execute(query.order_by(Review.id.desc()))).scalars()]


@dataclass(frozen=True)
class StoredReview:
    """One row of the reviews table as the dashboard shows it."""

    head_sha: str
    base_sha: str
    conclusion: str
    record: ReviewRecord
    created_at: Any
    report: Mapping[str, Any] | None = None  # bot.review.stored.report_to_json's document, when kept


async def reviews_of_pr(engine: AsyncEngine, repo: str, number: int) -> list[StoredReview]:
    """Every review of a PR, newest first (its dashboard page)."""
    query = select(
        Review.head_sha, Review.base_sha, Review.conclusion, Review.summary, Review.created_at, Review.report
    ).where(Review.repo == repo, Review.number == number)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(Review.id.desc()))).all()
    return [
        StoredReview(r.head_sha, r.base_sha, r.conclusion, record_from_json(r.summary), r.created_at, r.report)
        for r in rows
    ]


def newest_summary(repo: Any, number: Any) -> Any:
    """The ``summary`` of the newest review of the PR (``repo``, ``number``: column expressions of the
    enclosing query), as a correlated scalar subquery: the dashboard's matrix reads it beside each deployments
    row in the same statement (``bot.store.deployments.matrix_look``); ``artifacts_of`` reads it."""
    query = select(Review.summary).where(Review.repo == repo, Review.number == number)
    return query.order_by(Review.id.desc()).limit(1).scalar_subquery()


def artifacts_of(summary: Any) -> dict[str, str]:
    """The published artifact (``registry/repository@sha256:…``) per model of a stored review summary: what
    the dashboard's matrix shows next to a deployed version."""
    models = record_from_json(summary).models
    return {model: reviewed.artifact for model, reviewed in models.items() if reviewed.artifact}
