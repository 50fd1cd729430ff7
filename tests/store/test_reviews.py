"""The typed review record: what review writes is what deploy reads, through the one reader/writer."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.review_models import Review
from bot.store.reviews import (
    ReviewedModel,
    ReviewRecord,
    head_review,
    record_from_json,
    record_to_json,
    review_records,
    reviewed_model,
    save_review,
)

CHURN = ReviewedModel(
    status="compared",
    metrics={"accuracy": 0.93, "f1": 0.91},
    gates_passed=True,
    model_path="models/churn.skops",
    model_sha256="a" * 64,
    variant="int8_dynamic",
    variant_sha256="b" * 64,
    variant_artifact="churn/int8_dynamic.onnx",
)
RECORD = ReviewRecord(models={"churn": CHURN}, comment_id=7, check_run_id=9)


def test_a_record_survives_its_json_column() -> None:
    doc = record_to_json(RECORD)

    assert doc["models"]["churn"]["variant_artifact"] == "churn/int8_dynamic.onnx"
    assert record_from_json(doc) == RECORD


def test_a_config_error_and_a_waiting_review_keep_their_stored_shapes() -> None:
    assert record_to_json(ReviewRecord(config_error=("models[0].task: bad",))) == {
        "config_error": ["models[0].task: bad"]
    }
    assert record_to_json(ReviewRecord()) == {}
    assert record_from_json({"config_error": ["x"]}).config_error == ("x",)
    assert record_to_json(ReviewRecord(tree_refused="a link leaves the tree")) == {
        "tree_refused": "a link leaves the tree"
    }


def test_a_review_whose_hashes_failed_verification_says_so_next_to_its_models() -> None:
    void = ReviewRecord(
        models={"churn": ReviewedModel(status="compared")},
        comment_id=1,
        check_run_id=2,
        verification_failed=("churn: model sha256 differs from git",),
    )

    doc = record_to_json(void)

    assert doc["verification_failed"] == ["churn: model sha256 differs from git"]
    assert doc["models"]["churn"]["model_sha256"] is None
    assert record_from_json(doc) == void


def test_rows_written_by_older_versions_read_leniently() -> None:
    old = {
        "models": {
            "churn": {"metrics": {"f1": {"base": 0.8, "head": 0.91}, "accuracy": 0.93, "ok": True, "n": 120}},
            "broken": "not an object",
        },
        "comment_id": "7",
    }

    record = record_from_json(old)

    assert set(record.models) == {"churn"}
    churn = record.models["churn"]
    assert churn.metrics == {"f1": 0.91, "accuracy": 0.93, "n": 120.0}
    assert (churn.variant, churn.variant_sha256, churn.gates_passed) == ("original", None, False)
    assert record.comment_id is None
    assert record_from_json(None) == ReviewRecord() == record_from_json([1, 2])


async def test_deploy_reads_the_review_of_the_head_it_ships(engine: AsyncEngine) -> None:
    older = ReviewRecord(models={"churn": ReviewedModel(status="compared", model_sha256="c" * 64)})
    await save_review(engine, repo="o/r", number=1, head_sha="h1", base_sha="b", conclusion="success", record=older)
    await save_review(engine, repo="o/r", number=1, head_sha="h2", base_sha="b", conclusion="success", record=RECORD)

    assert await reviewed_model(engine, "o/r", 1, "h1", "churn") == older.models["churn"]
    assert await reviewed_model(engine, "o/r", 1, "h2", "churn") == CHURN
    assert await reviewed_model(engine, "o/r", 1, None, "churn") == CHURN  # no head named: the newest review
    assert await reviewed_model(engine, "o/r", 1, "h2", "other") is None
    assert await reviewed_model(engine, "o/r", 2, "h2", "churn") is None
    assert await review_records(engine, "o/r", "h2") == [RECORD]


async def test_a_re_review_of_the_same_head_replaces_its_row(engine: AsyncEngine) -> None:
    failed = ReviewRecord(models={"churn": ReviewedModel(status="head_failed")})
    await save_review(engine, repo="o/r", number=1, head_sha="h", base_sha="b", conclusion="failure", record=failed)
    await save_review(engine, repo="o/r", number=1, head_sha="h", base_sha="b", conclusion="success", record=RECORD)

    async with engine.connect() as conn:
        rows = (await conn.execute(select(Review.conclusion, Review.summary).where(Review.head_sha == "h"))).all()
    assert [(r.conclusion, record_from_json(r.summary)) for r in rows] == [("success", RECORD)]


async def test_head_review_is_the_review_of_exactly_that_head(engine: AsyncEngine) -> None:
    failed = ReviewRecord(models={"churn": ReviewedModel("compared", failed_gates=("f1 min_delta: Δ f1 = -0.02",))})
    await save_review(engine, repo="o/r", number=1, head_sha="h1", base_sha="b", conclusion="failure", record=failed)

    found = await head_review(engine, "o/r", 1, "h1")

    assert found is not None and found.conclusion == "failure" and found.completed
    assert found.record.models["churn"].failed_gates == ("f1 min_delta: Δ f1 = -0.02",)
    assert await head_review(engine, "o/r", 1, "h2") is None  # no fallback to another head
