"""pull_request closed in a deploy repository: record the bot's deploy or rollback PR (bot.deploy.merged_pr)."""

from __future__ import annotations

from gidgethub import routing
from gidgethub.abc import GitHubAPI
from gidgethub.sansio import Event

from bot.context import Services
from bot.deploy.merged_pr import ClosedPull, on_closed

router = routing.Router()


@router.register("pull_request", action="closed")
async def on_deploy_pr_closed(event: Event, gh: GitHubAPI | None, services: Services) -> None:
    if gh is None:
        return  # not delivered through an installation: nothing we may act on
    pull = ClosedPull.from_event(event.data)
    if pull is not None:
        await on_closed(services, pull)
