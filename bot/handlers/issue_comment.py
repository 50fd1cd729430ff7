"""issue_comment events: chat-ops commands in pull request comments (bot.chatops)."""

from __future__ import annotations

import logging

from gidgethub import routing
from gidgethub.abc import GitHubAPI
from gidgethub.sansio import Event

from bot.chatops.filters import ignore_reason
from bot.chatops.service import handle_comment
from bot.context import Services

log = logging.getLogger(__name__)
router = routing.Router()


# Only "created": an edit or a deletion must never run a command a second time.
@router.register("issue_comment", action="created")
async def on_comment_created(event: Event, gh: GitHubAPI | None, services: Services) -> None:
    if gh is None:
        return  # not delivered through an installation: nothing we may act on
    data = event.data
    sender = data.get("sender") or {}
    reason = ignore_reason(
        action=data.get("action", ""),
        is_pull_request=bool((data.get("issue") or {}).get("pull_request")),
        sender_login=sender.get("login", ""),
        sender_type=sender.get("type", ""),
        app_slug=services.app_slug,
    )
    if reason is not None:
        log.info("comment ignored: %s", reason)
        return
    await handle_comment(data, gh, services)
