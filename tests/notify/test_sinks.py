"""What Slack and the generic webhook receive for an event."""

from __future__ import annotations

import json
import re

import pytest

from bot.config.notify_events import KINDS, check_filters, wanted
from bot.notify.signing import verify
from bot.notify.sinks import Event, slack_text, webhook_request

LIVE = Event(
    "deploy:7:live",
    "deploy.live",
    "2026-12-06T19:00:00Z",
    {"repo": "acme/models", "environment": "staging", "model": "churn", "version": "a" * 40},
)


def test_the_webhook_body_is_signed_at_the_attempt_time_and_names_the_event() -> None:
    body, headers = webhook_request(LIVE, b"k", 1_800_000_000)

    doc = json.loads(body)
    assert doc == {
        "id": "deploy:7:live",
        "event": "deploy.live",
        "created_at": LIVE.created_at,
        "data": dict(LIVE.data),
    }
    assert headers["X-Modelship-Event"] == "deploy.live" and headers["X-Modelship-Delivery"] == "deploy:7:live"
    assert headers["X-Modelship-Timestamp"] == "1800000000"
    assert verify(b"k", body, headers["X-Modelship-Timestamp"], headers["X-Modelship-Signature-256"], now=1_800_000_001)


def test_slack_text_escapes_what_could_mention_or_link() -> None:
    event = Event("k", "deploy.failed", "", {**LIVE.data, "model": "<!channel>", "reason": "a & <b>"})

    text = slack_text(event)

    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "a &amp; &lt;b&gt;" in text


def test_every_event_has_a_slack_line() -> None:
    for kind in KINDS:
        assert slack_text(Event("k", kind, "", LIVE.data)).strip()


def test_filters_take_names_and_globs_and_name_the_events_on_a_typo() -> None:
    assert wanted([], "guard.alert") and wanted(["deploy.*"], "deploy.live") and not wanted(["deploy.*"], "guard.alert")
    assert check_filters(["deploy.*", "review.finished"]) == ["deploy.*", "review.finished"]
    with pytest.raises(ValueError, match=re.escape("'deploy.liv' matches no event; events: review.finished")):
        check_filters(["deploy.liv"])
