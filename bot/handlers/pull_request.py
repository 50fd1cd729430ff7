"""pull_request events: queue a review of the new head (it supersedes any older review of the PR)."""

from __future__ import annotations

from gidgethub import routing
from gidgethub.abc import GitHubAPI
from gidgethub.sansio import Event

from bot.context import Services
from bot.review.jobs import ReviewRequest, enqueue_review

router = routing.Router()


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
@router.register("pull_request", action="ready_for_review")
async def on_pull_request_updated(event: Event, gh: GitHubAPI | None, services: Services) -> None:
    installation = event.data.get("installation", {}).get("id")
    if gh is None or installation is None:
        return  # not delivered through an installation: nothing we may act on
    pr = event.data["pull_request"]
    request = ReviewRequest(
        repo=event.data["repository"]["full_name"],
        number=pr["number"],
        installation_id=installation,
        head_sha=pr["head"]["sha"],
        base_sha=pr["base"]["sha"],
        base_ref=pr["base"]["ref"],
        trigger="pull_request",
        actor=event.data.get("sender", {}).get("login", ""),
    )
    async with services.engine.begin() as conn:
        await enqueue_review(conn, request)
