"""pull_request opened/synchronize/reopened/ready_for_review: a review of the new head is queued."""

from __future__ import annotations

from typing import Any

import pytest

from bot.context import Services
from bot.handlers import handles
from tests.handlers.conftest import FakeGH, deliver, jobs

REPO = "acme/churn"
BASE, HEAD, NEWER = "a" * 40, "b" * 40, "c" * 40


def pr_event(action: str, *, head: str = HEAD, installation: bool = True, draft: bool = False) -> dict[str, Any]:
    """The fields of a GitHub `pull_request` webhook the handler reads (the docs' shape, trimmed)."""
    payload: dict[str, Any] = {
        "action": action,
        "number": 4,
        "pull_request": {
            "number": 4,
            "state": "open",
            "draft": draft,
            "user": {"login": "alice", "type": "User"},
            "head": {"ref": "better-churn", "sha": head, "repo": {"full_name": REPO}},
            "base": {"ref": "main", "sha": BASE, "repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO, "default_branch": "main"},
        "sender": {"login": "alice", "type": "User"},
    }
    if installation:
        payload["installation"] = {"id": 42}
    return payload


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "ready_for_review"])
async def test_a_new_head_queues_one_review_and_calls_nobody(action: str, services: Services) -> None:
    gh = FakeGH()
    await deliver("pull_request", pr_event(action), gh, services)
    [(kind, key, state, payload)] = await jobs(services)
    assert (kind, key, state) == ("review", f"{REPO}#4:review", "queued")
    assert payload["head_sha"] == HEAD and payload["base_sha"] == BASE and payload["base_ref"] == "main"
    assert payload["installation_id"] == 42 and payload["trigger"] == "pull_request" and payload["actor"] == "alice"
    assert gh.calls == [], "the handler only enqueues: the review job does the GitHub work"


async def test_a_push_supersedes_the_review_of_the_older_head(services: Services) -> None:
    gh = FakeGH()
    await deliver("pull_request", pr_event("opened"), gh, services)
    await deliver("pull_request", pr_event("synchronize", head=NEWER), gh, services)
    states = [(state, payload["head_sha"]) for _, _, state, payload in await jobs(services)]
    assert states == [("cancelled", HEAD), ("queued", NEWER)]


async def test_a_delivery_without_an_installation_is_ignored(services: Services) -> None:
    await deliver("pull_request", pr_event("opened", installation=False), FakeGH(), services)
    await deliver("pull_request", pr_event("opened"), None, services)  # no installation client either
    assert await jobs(services) == []


@pytest.mark.parametrize("action", ["edited", "labeled", "assigned", "converted_to_draft", "review_requested"])
async def test_actions_that_do_not_move_the_head_are_not_routed(action: str, services: Services) -> None:
    gh = FakeGH()
    assert not handles("pull_request", pr_event(action))
    await deliver("pull_request", pr_event(action), gh, services)
    assert await jobs(services) == [] and gh.calls == []


async def test_a_pr_closed_without_merging_queues_nothing_and_calls_nobody(services: Services) -> None:
    payload = pr_event("closed")
    payload["pull_request"] |= {"state": "closed", "merged": False, "merge_commit_sha": None}
    gh = FakeGH()
    assert handles("pull_request", payload), "closed is routed (deploy, deploy repo), and both ignore this one"
    await deliver("pull_request", payload, gh, services)
    assert await jobs(services) == [] and gh.calls == []
