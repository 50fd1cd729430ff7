"""A pipeline report is indexed by model name; a failed or unreadable run is every model's error."""

from __future__ import annotations

from typing import Any

import pytest

from bot.review.compare import compare_review
from bot.review.parse import parse_evaluation, results_by_model
from tests.review.evaluations import policy


def test_a_pipeline_report_is_indexed_by_model_name(cancer: dict[str, Any]) -> None:
    report = {"schema_version": 1, "models": [cancer["strong"]], "error": None}

    assert results_by_model(report, ["churn", "other"]) == {"churn": cancer["strong"]}


def test_a_failed_run_gives_every_model_its_error() -> None:
    report = {"schema_version": 1, "models": [], "error": {"kind": "internal_error", "message": "timed out after 5 s"}}

    review = compare_review([policy()], {}, results_by_model(report, ["churn"]))

    assert review.models[0].status == "head_failed"
    assert review.models[0].error == "internal_error: timed out after 5 s"


@pytest.mark.parametrize("report", [None, [], "x", {"schema_version": 2, "models": []}])
def test_an_unreadable_report_is_an_error_for_every_model(report: Any) -> None:
    results = results_by_model(report, ["churn"])

    assert "error" in results["churn"] and parse_evaluation(results["churn"]).error
