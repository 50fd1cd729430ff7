"""`requires: [review_passed]`: which reviews let a deploy through, and what a held-back deploy says."""

from __future__ import annotations

from bot.deploy.gating import review_unmet
from bot.deploy.manifest import ModelRef, commit_message, parse_trailers
from bot.store.reviews import HeadReview, ReviewedModel, ReviewRecord

HEAD = "abcdef1234567890abcdef1234567890abcdef12"
REQUIRES = ("review_passed",)
F1 = "f1 min_delta: Δ f1 = -0.022, required ≥ -0.01"


def review(conclusion: str = "success", **models: ReviewedModel) -> HeadReview:
    return HeadReview(HEAD, conclusion, ReviewRecord(models=models))


def unmet(head: HeadReview | None, requires: tuple[str, ...] = REQUIRES) -> str | None:
    found = review_unmet(requires, head, env="staging", model="churn", head_sha=HEAD)
    return None if found is None else str(found)


def test_a_passed_review_of_the_head_lets_the_deploy_through() -> None:
    assert unmet(review(churn=ReviewedModel("compared", gates_passed=True))) is None


def test_a_failed_gate_is_named_with_the_override() -> None:
    why = unmet(review("failure", churn=ReviewedModel("compared", gates_passed=False, failed_gates=(F1,))))

    assert why is not None
    assert "environments.staging.requires" in why and "review_passed" in why
    assert F1 in why and "abcdef1" in why
    assert "`/modelship deploy staging --force`" in why and "environments.staging.allowed" in why


def test_no_review_of_that_exact_head_holds_the_deploy_back() -> None:
    why = unmet(None)

    assert why is not None and "no Modelship review of the head commit abcdef1" in why


def test_reviews_that_did_not_reach_a_verdict_hold_the_deploy_back() -> None:
    waiting = unmet(review("waiting"))
    errored = unmet(review("error", churn=ReviewedModel("compared", gates_passed=True)))
    refused = unmet(HeadReview(HEAD, "failure", ReviewRecord(tree_refused="a link leaves the tree")))
    tampered = unmet(
        HeadReview(
            HEAD,
            "failure",
            ReviewRecord(
                models={"churn": ReviewedModel("compared", gates_passed=True)},
                verification_failed=("sha256 mismatch",),
            ),
        )
    )
    other_model = unmet(review(iris=ReviewedModel("compared", gates_passed=True)))
    crashed = unmet(review("failure", churn=ReviewedModel("head_failed")))

    assert waiting and "ok-to-test" in waiting
    assert errored and "did not complete (`error`)" in errored
    assert refused and "a link leaves the tree" in refused
    assert tampered and "hash check" in tampered
    assert other_model and "did not evaluate model `churn`" in other_model
    assert crashed and "head model failed" in crashed


def test_environments_that_do_not_require_it_ignore_the_review() -> None:
    assert unmet(None, requires=()) is None
    assert unmet(None, requires=("approved",)) is None


def test_an_override_is_a_trailer_of_the_deploy_commit() -> None:
    found = review_unmet(REQUIRES, None, env="staging", model="churn", head_sha=HEAD)
    assert found is not None
    ref = ModelRef("churn", "acme/models", HEAD, "models/churn.onnx", "0" * 64, "original", 1, 7)

    message = commit_message(ref, "staging", actor="root", override=found.trailer("root"))

    assert parse_trailers(message)["Modelship-Override"] == "review_passed by @root"
    assert "Modelship-Override" not in commit_message(ref, "staging", actor="root")
