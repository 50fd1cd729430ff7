"""pull_request events: acknowledge the PR in its sticky status comment.

The review feature replaces the body of this comment with the metric comparison.
"""

from __future__ import annotations

from gidgethub import routing
from gidgethub.abc import GitHubAPI
from gidgethub.sansio import Event

from bot.context import Services
from bot.services.sticky import marker, upsert_sticky

router = routing.Router()
REVIEW_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")
MARK = marker("review")


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
async def on_pull_request_updated(event: Event, gh: GitHubAPI | None, services: Services) -> None:
    if gh is None:
        return  # not delivered through an installation: nothing we may act on
    pr = event.data["pull_request"]
    repo = event.data["repository"]["full_name"]
    body = (
        f"{MARK}\n### Modelship\n\nSaw head `{pr['head']['sha'][:12]}` of #{pr['number']} "
        f"(base `{pr['base']['ref']}`). Evaluation is queued."
    )
    await upsert_sticky(gh, repo, pr["number"], MARK, body, bot_login=services.bot_login)
