"""Scenarios for the sticky PR comment and the check run rendered from a comparison."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config.repo import ModelSpec, RepoConfigError, parse_repo_config
from bot.review import report
from bot.review.checkout import LFS_HINT
from bot.review.compare import ReviewComparison, compare_model
from bot.review.parse import parse_evaluation
from bot.review.report import (
    COMMENT_LIMIT,
    REVIEW_MARKER,
    SUMMARY_LIMIT,
    fit,
    render_check_run,
    render_config_error,
    render_config_error_check_run,
    render_in_progress,
    render_review_comment,
    render_waiting_for_approval,
    text,
)

HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"


def doc(
    y_true: list[str],
    y_pred: list[str],
    *,
    accuracy: float,
    f1_macro: float,
    labels: list[str] | None = None,
    dataset_sha: str = "d" * 64,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = labels or sorted(set(y_true) | set(y_pred))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[index[t]][index[p]] += 1
    return {
        "name": "churn",
        "task": "classification",
        "model": {"path": "models/churn.onnx", "format": "onnx", "sha256": "a" * 64, "size_bytes": 2_500_000},
        "dataset": {
            "path": "data/eval.csv",
            "sha256": dataset_sha,
            "rows": len(y_true),
            "n_features": 8,
            "class_balance": {label: y_true.count(label) for label in labels},
        },
        "metrics": {"accuracy": accuracy, "f1_macro": f1_macro},
        "per_class": [{"label": label, "precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 10} for label in labels],
        "confusion_matrix": {"labels": labels, "matrix": matrix},
        "latency": {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0, "batch_rows_per_s": 50_000, "repetitions": 20},
        "predictions": {"y_true": y_true, "y_pred": y_pred, "y_score": None},
        "error": error,
    }


def spec(name: str = "churn", gates: dict[str, Any] | None = None) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": name,
            "path": f"models/{name}.onnx",
            "task": "classification",
            "dataset": {"path": "data/eval.csv", "target": "label"},
            "metrics": ["accuracy", "f1_macro"],
            "gates": gates if gates is not None else {"accuracy": {"min": 0.5}, "f1_macro": {"min_delta": -0.05}},
        }
    )


Y = ["yes", "no"] * 60
BASE = doc(Y, ["yes"] * 120, accuracy=0.5, f1_macro=0.3333)
HEAD = doc(Y, Y[:100] + ["no"] * 20, accuracy=0.9167, f1_macro=0.9161)


def review_of(*models: tuple[ModelSpec, dict[str, Any] | None, dict[str, Any] | None]) -> ReviewComparison:
    return ReviewComparison(
        tuple(
            compare_model(
                policy,
                None if base is None else parse_evaluation(base),
                None if head is None else parse_evaluation(head),
                resamples=100,
            )
            for policy, base, head in models
        )
    )


@pytest.fixture(scope="module")
def improved() -> ReviewComparison:
    return review_of((spec(), BASE, HEAD))


# --------------------------------------------------------------------------- the sticky comment


def test_the_comment_carries_the_marker_once_and_opens_with_the_verdict(improved: ReviewComparison) -> None:
    body = render_review_comment(improved, head_sha=HEAD_SHA, base_sha="f" * 40)

    assert body.count(REVIEW_MARKER) == 1 and body.startswith(REVIEW_MARKER + "\n")
    assert body.splitlines()[2].startswith("✅ **Modelship review: all gates pass**")
    assert "`0123456789ab`" in body and "`ffffffffffff`" in body


def test_each_metric_has_base_head_delta_interval_and_verdict(improved: ReviewComparison) -> None:
    body = render_review_comment(improved)

    row = next(line for line in body.splitlines() if line.startswith("| accuracy ↑"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["0.5000", "0.9167", "+0.4167"]
    assert re.fullmatch(r"\[\+0\.\d{4}, \+0\.\d{4}\]", cells[4])
    assert cells[5] == "🟢 better"
    assert "| latency_p95_ms ↓ |" in body and "| size_mb ↓ |" in body
    assert "McNemar's test on accuracy: 10 rows only the base got right, 60 only the head" in body


def test_gates_are_listed_with_their_rule_and_result(improved: ReviewComparison) -> None:
    body = render_review_comment(improved)

    assert "| accuracy | ≥ 0.5 | 0.9167 | ✅ pass |" in body
    assert "| f1_macro | Δ ≥ -0.05 | +0.5828 | ✅ pass |" in body


def test_a_failed_gate_turns_the_verdict_red_and_says_why() -> None:
    review = review_of((spec(gates={"accuracy": {"min": 0.95}}), BASE, HEAD))

    body = render_review_comment(review)

    assert "❌ **Modelship review: 1 gate failed**" in body
    assert "❌ fail — accuracy = 0.9167, required ≥ 0.95" in body


def test_details_fold_per_class_metrics_confusion_matrices_and_fingerprints(improved: ReviewComparison) -> None:
    body = render_review_comment(improved)

    details = body[body.index("<details>") : body.index("</details>")]
    assert "| yes | 0.8000 → 0.8000 |" in details
    assert "**Confusion matrix — head** (rows: true, columns: predicted)" in details
    assert "| no | 60 | 0 |" in details  # base predicts "yes" for everything
    assert "`dddddddddddddddd`" in details and "| 120 | 8 | no: 60 (50.0%), yes: 60 (50.0%) |" in details


def test_a_mermaid_bar_chart_compares_base_and_head(improved: ReviewComparison) -> None:
    body = render_review_comment(improved)

    chart = body[body.index("```mermaid") :].split("```", 2)[1]
    assert "xychart-beta" in chart
    assert 'x-axis ["accuracy", "f1_macro"]' in chart
    assert "bar [0.5, 0.3333]" in chart and "bar [0.9167, 0.9161]" in chart


def test_the_footer_tells_how_to_rerun(improved: ReviewComparison) -> None:
    assert "/modelship evaluate" in render_review_comment(improved).splitlines()[-1]


def test_optional_sections_are_included(improved: ReviewComparison) -> None:
    body = render_review_comment(improved, optimization="| variant |\n|---|\n| int8 |", deploy="Deployed to staging.")

    assert "## Optimization\n\n| variant |" in body and "## Deploy\n\nDeployed to staging." in body
    assert body.index("## Optimization") < body.index("## Deploy") < body.index("/modelship evaluate")


def test_a_changed_dataset_is_announced_loudly() -> None:
    review = review_of((spec(), BASE, dict(HEAD, dataset=dict(HEAD["dataset"], sha256="e" * 64))))

    body = render_review_comment(review)

    assert "> [!WARNING]\n> **Dataset changed.**" in body
    assert "Intervals are unpaired" in body


def test_a_head_that_failed_shows_the_reason() -> None:
    broken = {"error": {"kind": "missing_column", "message": "target column 'label' is absent"}}
    review = review_of((spec(), BASE, broken))

    body = render_review_comment(review)

    assert "❌ **Modelship review: failed to evaluate `churn`**" in body
    assert "The head model failed to evaluate:** missing\\_column: target column 'label' is absent" in body


def test_a_new_model_is_labelled_and_its_delta_gates_skipped() -> None:
    body = render_review_comment(review_of((spec(), None, HEAD)))

    assert "new model (no base to compare)" in body and "⏭️ skipped" in body


def test_untrusted_labels_cannot_inject_html_break_tables_or_mention_people() -> None:
    evil = "<img src=x onerror=alert(1)>|@octocat"
    y = [evil, "ok"] * 5
    review = review_of((spec(), doc(y, y, accuracy=1, f1_macro=1), doc(y, y, accuracy=1, f1_macro=1)))

    body = render_review_comment(review)

    assert "<img" not in body and "@octocat" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;\\|@\u200boctocat" in body
    row = next(line for line in body.splitlines() if line.startswith("| &lt;img") and "→" in line)
    assert len(re.findall(r"(?<!\\)\|", row)) == 6  # 5 cells: the label's pipe is escaped


def test_text_escaping_makes_markdown_inert() -> None:
    assert (
        text("**bold** _x_ [link](http://a) `code`\nnext")
        == "\\*\\*bold\\*\\* \\_x\\_ \\[link\\](http://a) 'code' next"
    )
    assert text("") == "—"
    assert len(text("x" * 1000, limit=50)) == 50


# --------------------------------------------------------------------------- size limits


def many_classes(n: int) -> dict[str, Any]:
    labels = [f"class-{i:04d}" for i in range(n)]
    y = labels * 2
    return doc(y, y, accuracy=1.0, f1_macro=1.0, labels=labels)


def test_a_huge_review_folds_the_details_first() -> None:
    big = many_classes(220)  # a 220 × 220 confusion matrix alone is far over the limit
    review = review_of((spec(), big, big))

    body = render_review_comment(review)

    assert len(body) <= COMMENT_LIMIT
    assert "<details>" not in body and "are folded away to fit GitHub's size limit" in body
    assert "| accuracy ↑ | 1.0000 | 1.0000 | +0.0000 |" in body
    assert body.count(REVIEW_MARKER) == 1


def test_a_review_too_big_even_folded_is_cut_in_the_middle_and_says_so() -> None:
    models = [(spec(f"model-{i:03d}"), BASE, HEAD) for i in range(60)]
    review = review_of(*models)

    body = render_review_comment(review, optimization="x" * 30_000)

    assert len(body) <= COMMENT_LIMIT
    assert body.startswith(REVIEW_MARKER) and body.count(REVIEW_MARKER) == 1
    assert "characters were cut here" in body
    assert "/modelship evaluate" in body.splitlines()[-1]
    assert body.count("```") % 2 == 0


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=3000), st.integers(200, 2000))
def test_fit_always_respects_the_limit(body: str, limit: int) -> None:
    result = fit(body, limit)

    assert len(result) <= limit
    if len(body) <= limit:
        assert result == body


# --------------------------------------------------------------------------- check run


def test_the_check_run_succeeds_when_every_gate_passes(improved: ReviewComparison) -> None:
    output = render_check_run(improved, head_sha=HEAD_SHA)

    assert output["conclusion"] == "success"
    assert output["title"] == "All gates pass (1 model)"
    assert REVIEW_MARKER not in output["summary"] and "| accuracy ↑ |" in output["summary"]
    assert "Confusion matrix — head" in output["text"]


def test_the_check_run_fails_on_a_failed_gate_or_evaluation() -> None:
    failed_gate = render_check_run(review_of((spec(gates={"accuracy": {"min": 0.99}}), BASE, HEAD)))
    failed_eval = render_check_run(review_of((spec(), BASE, {"error": "timeout after 600 s"})))

    assert (failed_gate["conclusion"], failed_gate["title"]) == ("failure", "1 gate failed")
    assert (failed_eval["conclusion"], failed_eval["title"]) == ("failure", "Failed to evaluate churn")


def test_the_check_run_output_stays_within_limits_for_a_huge_review() -> None:
    big = many_classes(220)
    review = review_of(*[(spec(f"m{i}"), big, big) for i in range(3)])

    output = render_check_run(review)

    assert len(output["summary"]) <= SUMMARY_LIMIT and len(output["text"]) <= SUMMARY_LIMIT
    assert "characters were cut here" in output["text"]


# --------------------------------------------------------------------------- other states


def config_error(text_: str) -> RepoConfigError:
    with pytest.raises(RepoConfigError) as caught:
        parse_repo_config(text_)
    return caught.value


def test_an_invalid_config_comment_names_key_and_line() -> None:
    error = config_error("version: 1\nmodels:\n  - name: churn\n    path: m.pkl\n    task: classification\n")

    body = render_config_error(error.problems, ref="main")

    assert body.count(REVIEW_MARKER) == 1
    assert "`.modelship.yml` on `main` is invalid" in body
    assert "| 3 | `models[0].dataset` | 'dataset' is required here: add it |" in body


def test_an_invalid_config_fails_the_check_run_naming_the_first_line() -> None:
    error = config_error("version: 1\nmodels: []\n")

    output = render_config_error_check_run(error.problems)

    assert output["conclusion"] == "failure"
    assert output["title"] == "Invalid .modelship.yml: line 2, models"
    assert REVIEW_MARKER not in output["summary"]


def test_a_fork_pr_waits_for_approval_of_its_exact_head() -> None:
    body = render_waiting_for_approval(head_sha=HEAD_SHA, author="mallory`<b>")

    assert body.count(REVIEW_MARKER) == 1
    assert "`/modelship ok-to-test`" in body and "`0123456789ab`" in body
    assert "a new push needs a new approval" in body
    assert "<b>" in body and "`mallory'<b>`" in body  # inside code spans HTML is shown, not rendered


def test_the_in_progress_comment_is_sticky_too() -> None:
    body = render_in_progress(head_sha=HEAD_SHA, models=["churn"])

    assert body.startswith(REVIEW_MARKER) and "evaluating `churn`" in body


def test_a_metric_missing_on_one_side_says_which() -> None:
    head = dict(HEAD, metrics={"accuracy": 0.9167})

    body = render_review_comment(review_of((spec(gates={}), BASE, head)))

    assert "| f1_macro ↑ | 0.3333 | — | — | — | ➖ n/a (not reported for the head) |" in body


def test_the_deploy_section_shows_the_published_reference_or_why_it_was_not_published() -> None:
    from bot.review.report import render_published

    ok = "registry.example/acme/churn@sha256:" + "a" * 64
    text = render_published(
        {"churn": ("onnx_optimized", ok, None), "iris": ("int8_dynamic", None, "registry x unreachable")},
        "registry.example",
    )
    assert text is not None
    assert f"`churn` (`onnx_optimized`) published as `{ok}`" in text
    assert "`iris` (`int8_dynamic`) was **not published** to `registry.example`: `registry x unreachable`" in text
    assert render_published({}, "registry.example") is None


def test_a_refused_tree_says_what_to_do_about_it_and_a_missing_lfs_object_asks_for_a_push() -> None:
    link, _ = report.render_tree_refused("`a` links out of the tree", head_sha="f" * 40)
    lfs, check = report.render_tree_refused(
        "`models/m.onnx`: Git LFS object 0123456789ab… could not be fetched: 404 Object does not exist",
        head_sha="f" * 40,
        hint=LFS_HINT,
    )

    assert "symbolic links must stay inside the repository" in link
    assert "`git lfs push --all origin <branch>`" in lfs and "symbolic links" not in lfs
    assert check["conclusion"] == "failure" and "models/m.onnx" in check["summary"]
