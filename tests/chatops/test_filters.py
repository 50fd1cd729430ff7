"""Only new PR comments by humans are read: no loops, no double runs from edits."""

from __future__ import annotations

from bot.chatops.filters import ignore_reason


def reason(**overrides: object) -> str | None:
    fields: dict[str, object] = {
        "action": "created",
        "is_pull_request": True,
        "sender_login": "alice",
        "sender_type": "User",
        "app_slug": "modelship",
    }
    fields.update(overrides)
    return ignore_reason(**fields)  # type: ignore[arg-type]


def test_a_new_comment_by_a_person_on_a_pull_request_is_read() -> None:
    assert reason() is None


def test_edited_and_deleted_comments_are_ignored() -> None:
    assert reason(action="edited") == "comment edited: only new comments carry commands"
    assert reason(action="deleted") is not None


def test_issue_comments_are_ignored() -> None:
    assert reason(is_pull_request=False) == "comment on an issue, not a pull request"


def test_our_own_comments_are_ignored_whatever_the_case() -> None:
    assert reason(sender_login="ModelShip[bot]", sender_type="Bot") == "our own comment"


def test_other_bots_are_ignored() -> None:
    assert reason(sender_login="dependabot[bot]", sender_type="Bot") == "comment by the bot dependabot[bot]"
    assert reason(sender_login="ci-helper", sender_type="Bot") is not None
