"""Does a deploy meet ``environments.<env>.requires: [review_passed]``? Pure: the review is looked up first.

``review_passed`` holds when the Modelship review of the exact head commit that is being shipped ran to
a verdict and every gate of the model passed. Anything else — no review of that head, a review still
waiting for ``ok-to-test``, one that errored, a tree or hash check that failed, a failed gate — holds the
deploy back with a sentence that names why and how to override it (``/modelship deploy <env> --force``
by an admin, or by someone in the environment's ``allowed`` list).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bot.store.reviews import HeadReview

REVIEW_PASSED = "review_passed"


@dataclass(frozen=True)
class Unmet:
    """Why ``review_passed`` does not hold for one model in one environment."""

    env: str
    model: str
    why: str  # "the review of abc1234 failed gate f1 min_delta: …"

    @property
    def override(self) -> str:
        return (
            f"to deploy it anyway, an admin of this repository (or someone in `environments.{self.env}.allowed`) "
            f"comments `/modelship deploy {self.env} --force`"
        )

    def __str__(self) -> str:
        return (
            f"not deployed: `environments.{self.env}.requires` has `{REVIEW_PASSED}`, and {self.why}; {self.override}"
        )

    def trailer(self, actor: str) -> str:
        """The deploy commit's ``Modelship-Override`` trailer when someone forced past this."""
        return f"{REVIEW_PASSED} by @{actor}"


def review_unmet(
    requires: Collection[str], review: HeadReview | None, *, env: str, model: str, head_sha: str
) -> Unmet | None:
    """None when the environment does not ask for ``review_passed`` or the review of ``head_sha`` passed
    for ``model``; otherwise why not."""
    if REVIEW_PASSED not in requires:
        return None
    head = head_sha[:7]
    why = _why(review, model, head)
    return None if why is None else Unmet(env, model, why)


def _why(review: HeadReview | None, model: str, head: str) -> str | None:
    if review is None:
        return f"there is no Modelship review of the head commit {head} (comment `/modelship evaluate` first)"
    if review.conclusion == "waiting":
        return f"the review of {head} is waiting for a maintainer's `/modelship ok-to-test`"
    record = review.record
    if record.config_error:
        return f"the review of {head} could not run: `.modelship.yml` on the base branch is invalid"
    if record.tree_refused:
        return f"the review of {head} refused the PR's tree ({record.tree_refused})"
    if record.verification_failed:
        return f"the review of {head} failed its hash check ({record.verification_failed[0]})"
    if not review.completed:
        return f"the review of {head} did not complete (`{review.conclusion}`)"
    reviewed = record.models.get(model)
    if reviewed is None:
        return f"the review of {head} did not evaluate model `{model}`"
    if reviewed.gates_passed:
        return None
    if reviewed.failed_gates:
        gates = "; ".join(reviewed.failed_gates)
        return f"the review of {head} failed the gate{'s' if len(reviewed.failed_gates) > 1 else ''} {gates}"
    if reviewed.status == "head_failed":
        return f"the review of {head} could not evaluate model `{model}` (the head model failed)"
    return f"the review of {head} did not pass the gates of model `{model}`"
