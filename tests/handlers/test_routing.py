"""bot.handlers: what the intake records as unhandled is exactly what the router would not dispatch."""

from __future__ import annotations

from typing import Any

import pytest

from bot.context import Services
from bot.handlers import handles
from tests.handlers.conftest import FakeGH, deliver, jobs

REPO = {"full_name": "acme/churn", "default_branch": "main"}


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("push", {"ref": "refs/heads/main", "after": "a" * 40, "repository": REPO, "installation": {"id": 42}}),
        ("check_run", {"action": "completed", "repository": REPO, "installation": {"id": 42}}),
        ("issues", {"action": "opened", "issue": {"number": 3}, "repository": REPO, "installation": {"id": 42}}),
        ("pull_request_review", {"action": "submitted", "repository": REPO, "installation": {"id": 42}}),
        ("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}),
    ],
)
async def test_events_no_handler_takes_are_unhandled_and_do_nothing(
    event: str, payload: dict[str, Any], services: Services
) -> None:
    gh = FakeGH()
    assert not handles(event, payload)
    await deliver(event, payload, gh, services)
    assert gh.calls == [] and await jobs(services) == []


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("pull_request", "opened"),
        ("pull_request", "synchronize"),
        ("pull_request", "reopened"),
        ("pull_request", "ready_for_review"),
        ("pull_request", "closed"),
        ("issue_comment", "created"),
        ("installation", "created"),
        ("installation", "deleted"),
        ("installation_repositories", "added"),
        ("installation_repositories", "removed"),
    ],
)
def test_the_events_the_handlers_register_are_handled(event: str, action: str) -> None:
    assert handles(event, {"action": action})
