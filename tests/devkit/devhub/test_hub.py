"""Scripted actions: what users do on github.com, with the webhooks GitHub would send."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from devkit.devhub import DevHubError, RunningDevHub
from tests.devkit.devhub.helpers import REPO, install_app
from tests.fixtures.devhub import WebhookSink


async def test_fork_pull_request_head_is_fetchable_from_the_base_repository(
    devhub: RunningDevHub, webhook_sink: WebhookSink
) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
    await hub.fork(REPO, "eve")
    head = await hub.push("eve/models", "evil", {"model/params.json": '{"c": 99}\n'}, author="eve")
    number = await hub.open_pr(REPO, "evil", user="eve", from_fork=True)

    opened = webhook_sink.received[-1].payload
    assert hub.git.resolve(REPO, f"refs/pull/{number}/head") == head
    assert opened["pull_request"]["head"]["repo"]["full_name"] == "eve/models"
    assert opened["pull_request"]["author_association"] == "NONE"


async def test_comment_lifecycle_sends_created_edited_deleted(devhub: RunningDevHub, webhook_sink: WebhookSink) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
    await hub.push(REPO, "tune", {"a.txt": "a"})
    number = await hub.open_pr(REPO, "tune", user="bob")
    hub.set_permission(REPO, "bob", "write")
    comment_id = await hub.comment(REPO, number, "/modelship evaluate", "bob")
    await hub.edit_comment(comment_id, "/modelship optimize")
    await hub.delete_comment(comment_id)

    hooks = [h.payload for h in webhook_sink.received if h.event == "issue_comment"]
    assert [h["action"] for h in hooks] == ["created", "edited", "deleted"]
    assert hooks[0]["issue"]["pull_request"]["url"].endswith(f"/pulls/{number}")
    assert hooks[0]["comment"]["author_association"] == "COLLABORATOR"
    assert hooks[1]["changes"] == {"body": {"from": "/modelship evaluate"}}
    assert comment_id not in hub.comments


async def test_merge_sends_closed_and_push_and_refuses_conflicts(
    devhub: RunningDevHub, webhook_sink: WebhookSink
) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
    await hub.push(REPO, "a", {"model/params.json": '{"c": 2}\n'})
    await hub.push(REPO, "b", {"model/params.json": '{"c": 3}\n'})
    first = await hub.open_pr(REPO, "a", user="bob")
    second = await hub.open_pr(REPO, "b", user="bob")
    await hub.approve(REPO, first, "carol")
    sha = await hub.merge_pr(REPO, first, user="carol")

    closed = [h.payload for h in webhook_sink.received if h.event == "pull_request"][-1]
    push = webhook_sink.received[-1].payload
    assert closed["action"] == "closed" and closed["pull_request"]["merged"] is True
    assert closed["pull_request"]["merge_commit_sha"] == sha
    assert push["ref"] == "refs/heads/main" and push["after"] == sha
    assert ("pull_request_review", "submitted") in webhook_sink.events()
    with pytest.raises(Exception, match="merge conflict"):
        await hub.merge_pr(REPO, second)
    with pytest.raises(DevHubError, match="is closed"):
        await hub.merge_pr(REPO, first)


async def test_scripted_actions_over_http(devhub: RunningDevHub) -> None:
    base = f"{devhub.base_url}/_devhub/actions"
    async with aiohttp.ClientSession() as session:

        async def act(name: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
            async with session.post(f"{base}/{name}", json=kwargs) as response:
                return response.status, await response.json()

        _, app = await act("create_app")
        await act("create_repo", full_name="acme/web", files={"w.bin": {"base64": "AAE="}, "README.md": "hi"})
        await act("install", account="acme", repos=["acme/web"])
        _, pushed = await act("push", full_name="acme/web", branch="f", files={"README.md": None})
        _, pr = await act("open_pr", full_name="acme/web", head="f", user="bob")
        bad_args = await act("push", full_name="acme/web", branch="f", files={}, nonsense=1)
        missing = await act("open_pr", full_name="acme/nope", head="f")
        unknown = await act("explode")

    app_id, key = app["result"]
    assert app_id in devhub.hub.apps and "BEGIN RSA PRIVATE KEY" in key
    assert devhub.hub.git.read("acme/web", "refs/heads/main", "w.bin") == b"\x00\x01"
    assert devhub.hub.git.read("acme/web", str(pushed["result"]), "README.md") is None
    assert pr == {"result": 1}
    assert bad_args[0] == 400 and "nonsense" in str(bad_args[1]["message"])
    assert missing[0] == 422 and "acme/nope" in str(missing[1]["message"])
    assert unknown[0] == 404


async def test_permission_values_are_checked(devhub: RunningDevHub) -> None:
    await devhub.hub.create_repo(REPO, {"a": "a"})
    with pytest.raises(DevHubError, match="admin, maintain, write, triage, read, none"):
        devhub.hub.set_permission(REPO, "bob", "owner")
