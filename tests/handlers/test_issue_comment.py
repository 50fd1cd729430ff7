"""issue_comment created on a pull request: chat-ops commands run (an evaluate queues a review). The bot's
own comments, comments on plain issues, edits and deletions, and deliveries without an installation run
nothing and call nobody."""

from __future__ import annotations

from typing import Any

import pytest

from bot.context import Services
from bot.handlers import handles
from tests.handlers.conftest import FakeGH, deliver, jobs

REPO = "acme/churn"
BASE, HEAD = "a" * 40, "b" * 40
PULL = {
    "number": 4,
    "state": "open",
    "user": {"login": "alice"},
    "head": {"ref": "better-churn", "sha": HEAD, "repo": {"full_name": REPO}},
    "base": {"ref": "main", "sha": BASE, "repo": {"full_name": REPO}},
}
WRITER = {"permission": "write", "user": {"login": "alice"}}


def comment_event(
    body: str,
    *,
    action: str = "created",
    sender: dict[str, str] | None = None,
    on_pr: bool = True,
    installation: bool = True,
) -> dict[str, Any]:
    """The fields of a GitHub `issue_comment` webhook the handler reads (the docs' shape, trimmed)."""
    issue: dict[str, Any] = {"number": 4, "state": "open", "user": {"login": "alice"}}
    if on_pr:  # GitHub marks an issue that is a pull request with this key
        issue["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/4"}
    payload: dict[str, Any] = {
        "action": action,
        "issue": issue,
        "comment": {"id": 901, "body": body, "created_at": "2026-12-06T10:00:00Z", "user": sender or ALICE},
        "repository": {"full_name": REPO, "default_branch": "main"},
        "sender": sender or ALICE,
    }
    if installation:
        payload["installation"] = {"id": 42}
    return payload


ALICE = {"login": "alice", "type": "User"}


def writer_gh() -> FakeGH:
    return FakeGH(
        {
            ("GET", f"/repos/{REPO}/collaborators/alice/permission"): WRITER,
            ("GET", f"/repos/{REPO}/pulls/4"): PULL,
        }
    )


async def test_evaluate_by_a_writer_queues_a_review_and_answers(services: Services) -> None:
    gh = writer_gh()
    await deliver("issue_comment", comment_event("/modelship evaluate"), gh, services)
    [(kind, key, state, payload)] = await jobs(services)
    assert (kind, key, state) == ("review", f"{REPO}#4:review", "queued")
    assert payload["trigger"] == "evaluate" and payload["head_sha"] == HEAD and payload["actor"] == "alice"
    posts = [(c.path, c.body) for c in gh.calls if c.method == "POST"]
    reactions = f"/repos/{REPO}/issues/comments/901/reactions"
    assert posts[0] == (reactions, {"content": "eyes"}) and posts[-1] == (reactions, {"content": "rocket"})
    [answer] = [body["body"] for path, body in posts if path == f"/repos/{REPO}/issues/4/comments"]
    assert "is queued" in answer and HEAD[:7] in answer


async def test_a_redelivered_comment_runs_its_commands_once(services: Services) -> None:
    await deliver("issue_comment", comment_event("/modelship evaluate"), writer_gh(), services)
    gh = writer_gh()
    await deliver("issue_comment", comment_event("/modelship evaluate"), gh, services)
    assert len(await jobs(services)) == 1 and gh.calls == [], "the audit log knows comment 901 was handled"


async def test_a_reader_may_not_evaluate(services: Services) -> None:
    gh = FakeGH({("GET", f"/repos/{REPO}/collaborators/alice/permission"): {"permission": "read"}})
    await deliver("issue_comment", comment_event("/modelship evaluate"), gh, services)
    assert await jobs(services) == []
    assert ("POST", f"/repos/{REPO}/issues/4/comments") in [(c.method, c.path) for c in gh.calls], "told why not"


@pytest.mark.parametrize(
    "bot", [{"login": "modelship[bot]", "type": "Bot"}, {"login": "dependabot[bot]", "type": "Bot"}]
)
async def test_comments_by_bots_our_own_included_are_ignored(bot: dict[str, str], services: Services) -> None:
    """Our answers quote the command they answer: reading them back would loop."""
    gh = writer_gh()
    await deliver("issue_comment", comment_event("/modelship evaluate", sender=bot), gh, services)
    assert await jobs(services) == [] and gh.calls == []


async def test_a_comment_on_an_issue_that_is_not_a_pr_is_ignored(services: Services) -> None:
    gh = writer_gh()
    await deliver("issue_comment", comment_event("/modelship evaluate", on_pr=False), gh, services)
    assert await jobs(services) == [] and gh.calls == []


async def test_a_comment_delivered_without_an_installation_is_ignored(services: Services) -> None:
    await deliver("issue_comment", comment_event("/modelship evaluate", installation=False), None, services)
    assert await jobs(services) == []


async def test_a_comment_without_commands_calls_nobody(services: Services) -> None:
    gh = writer_gh()
    await deliver("issue_comment", comment_event("Looks good to me, thanks!"), gh, services)
    assert await jobs(services) == [] and gh.calls == []


@pytest.mark.parametrize("action", ["edited", "deleted"])
async def test_an_edit_or_deletion_never_runs_a_command_again(action: str, services: Services) -> None:
    gh = writer_gh()
    payload = comment_event("/modelship evaluate", action=action)
    assert not handles("issue_comment", payload)
    await deliver("issue_comment", payload, gh, services)
    assert await jobs(services) == [] and gh.calls == []
