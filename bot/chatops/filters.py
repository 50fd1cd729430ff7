"""Which ``issue_comment`` deliveries chat-ops reads at all. Pure: the handler passes payload fields.

Only new comments on pull requests by humans count. Edits and deletions are ignored so that fixing a
typo cannot run a command twice; bots are ignored so that no two bots (or this bot and its own
replies) can drive each other in a loop.
"""

from __future__ import annotations


def ignore_reason(
    *, action: str, is_pull_request: bool, sender_login: str, sender_type: str, app_slug: str
) -> str | None:
    """Why the comment is ignored, for the log; None when its commands should be read."""
    if action != "created":
        return f"comment {action}: only new comments carry commands"
    if not is_pull_request:
        return "comment on an issue, not a pull request"
    if sender_login.lower() == f"{app_slug.lower()}[bot]":
        return "our own comment"
    if sender_type == "Bot" or sender_login.lower().endswith("[bot]"):
        return f"comment by the bot {sender_login}"
    return None
