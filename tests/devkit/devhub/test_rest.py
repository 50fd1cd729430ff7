"""The REST subset behaves like GitHub: pagination, ETags, rate-limit headers, validation, real git."""

from __future__ import annotations

import base64

import aiohttp
import pytest
from gidgethub import BadRequest, InvalidField, ValidationError

from devkit.devhub import RunningDevHub
from tests.devkit.devhub.helpers import REPO, client, install_app


async def open_pr(devhub: RunningDevHub) -> int:
    await devhub.hub.push(REPO, "tune", {"model/params.json": '{"c": 2.0}\n', "notes.md": "why\n"}, author="bob")
    return await devhub.hub.open_pr(REPO, "tune", title="Tune C", user="bob")


async def test_comments_paginate_with_githubs_link_header(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        number = await open_pr(devhub)
        for i in range(5):
            await devhub.hub.comment(REPO, number, f"comment {i}", "bob")
        url = f"{devhub.api_url}/repos/{REPO}/issues/{number}/comments?per_page=2&page=2"
        async with session.get(url, headers={"Authorization": f"token {installed.token}"}) as response:
            page = await response.json()
            link = response.headers["Link"]
        everything = [
            c["body"]
            async for c in client(devhub, session, installed.token).getiter(
                f"/repos/{REPO}/issues/{number}/comments?per_page=2"
            )
        ]

    assert [c["body"] for c in page] == ["comment 2", "comment 3"]
    assert 'page=3>; rel="next"' in link and 'page=1>; rel="prev"' in link and 'rel="last"' in link
    assert everything == [f"comment {i}" for i in range(5)]


async def test_unchanged_resource_answers_304_to_its_etag(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        number = await open_pr(devhub)
        url = f"{devhub.api_url}/repos/{REPO}/issues/{number}/comments"
        headers = {"Authorization": f"token {installed.token}"}
        async with session.get(url, headers=headers) as first:
            etag = first.headers["ETag"]
        async with session.get(url, headers=headers | {"If-None-Match": etag}) as again:
            assert again.status == 304
            assert await again.read() == b""
        await devhub.hub.comment(REPO, number, "new", "bob")
        async with session.get(url, headers=headers | {"If-None-Match": etag}) as changed:
            assert changed.status == 200
            assert [c["body"] for c in await changed.json()] == ["new"]


async def test_responses_carry_githubs_rate_limit_headers(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        for _ in range(2):
            async with session.get(
                f"{devhub.base_url}/repos/{REPO}", headers={"Authorization": f"token {installed.token}"}
            ) as response:
                headers = response.headers

    assert headers["x-ratelimit-limit"] == "5000"
    assert headers["x-ratelimit-used"] == "2"
    assert headers["x-ratelimit-remaining"] == "4998"
    assert headers["x-ratelimit-resource"] == "core"
    assert int(headers["x-ratelimit-reset"]) > 0


async def test_pull_request_created_and_merged_over_rest_is_a_real_merge_commit(
    devhub: RunningDevHub,
) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        await hub.push(REPO, "retrain", {"model/params.json": '{"c": 3.0}\n'})
        created = await gh.post(f"/repos/{REPO}/pulls", data={"title": "Retrain", "head": "retrain", "base": "main"})
        files = [f async for f in gh.getiter(f"/repos/{REPO}/pulls/{created['number']}/files")]
        merged = await gh.put(f"/repos/{REPO}/pulls/{created['number']}/merge", data={"merge_method": "merge"})
        after = await gh.getitem(f"/repos/{REPO}/pulls/{created['number']}")

    parents = hub.git.commit_info(REPO, merged["sha"])[1]
    assert created["user"]["login"] == "modelship[bot]"
    assert [(f["filename"], f["status"], f["additions"], f["deletions"]) for f in files] == [
        ("model/params.json", "modified", 1, 1)
    ]
    assert after["merged"] is True and after["merge_commit_sha"] == merged["sha"]
    assert parents[1] == created["head"]["sha"]
    assert hub.git.read(REPO, "refs/heads/main", "model/params.json") == b'{"c": 3.0}\n'


async def test_a_pull_request_edited_over_rest_says_what_changed(devhub: RunningDevHub) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        number = await open_pr(devhub)
        edited = await gh.patch(f"/repos/{REPO}/pulls/{number}", data={"title": "Tune C to 2", "body": "Why: recall"})
        await gh.patch(f"/repos/{REPO}/pulls/{number}", data={"title": "Tune C to 2"})  # no change, no event
        with pytest.raises(BadRequest) as rebase:
            await gh.patch(f"/repos/{REPO}/pulls/{number}", data={"base": "release"})
        closed = await gh.patch(f"/repos/{REPO}/pulls/{number}", data={"state": "closed"})

    events = [d.payload for d in hub.sender.deliveries if d.event == "pull_request" and d.action != "opened"]
    assert (edited["title"], edited["body"], edited["state"]) == ("Tune C to 2", "Why: recall", "open")
    assert [e["action"] for e in events] == ["edited", "closed"]
    assert events[0]["changes"] == {"title": {"from": "Tune C"}, "body": {"from": ""}}
    assert rebase.value.status_code == 422 and "base branch" in str(rebase.value)
    assert closed["state"] == "closed" and hub.pull(REPO, number).state == "closed"
    assert hub.contract_violations == []


async def test_validation_errors_are_githubs_422(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        number = await open_pr(devhub)
        with pytest.raises(ValidationError) as too_long:
            await gh.post(f"/repos/{REPO}/issues/{number}/comments", data={"body": "x" * 65537})
        with pytest.raises(InvalidField) as duplicate_ref:
            await gh.post(f"/repos/{REPO}/git/refs", data={"ref": "refs/heads/tune", "sha": "0" * 40})
    devhub.hub.contract_violations.clear()  # the bad ref sha is also outside GitHub's documented pattern

    assert "maximum is 65536 characters" in str(too_long.value)
    assert duplicate_ref.value.status_code == 422


async def test_checks_statuses_and_reactions_round_trip(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        number = await open_pr(devhub)
        head = devhub.hub.pull(REPO, number).head_sha
        run = await gh.post(
            f"/repos/{REPO}/check-runs",
            data={"name": "modelship/review", "head_sha": head, "status": "in_progress"},
        )
        await gh.patch(
            f"/repos/{REPO}/check-runs/{run['id']}",
            data={"conclusion": "success", "output": {"title": "Better", "summary": "Δ +0.02"}},
        )
        runs = await gh.getitem(f"/repos/{REPO}/commits/tune/check-runs")
        await gh.post(f"/repos/{REPO}/statuses/{head}", data={"state": "failure", "context": "modelship/guard"})
        combined = await gh.getitem(f"/repos/{REPO}/commits/{head}/status")
        comment_id = await devhub.hub.comment(REPO, number, "/modelship evaluate", "bob")
        first = await gh.post(f"/repos/{REPO}/issues/comments/{comment_id}/reactions", data={"content": "eyes"})
        again = await gh.post(f"/repos/{REPO}/issues/comments/{comment_id}/reactions", data={"content": "eyes"})

    assert run["status"] == "in_progress" and run["pull_requests"][0]["number"] == number
    assert [(r["status"], r["conclusion"], r["output"]["summary"]) for r in runs["check_runs"]] == [
        ("completed", "success", "Δ +0.02")
    ]
    assert combined["state"] == "failure" and combined["total_count"] == 1
    assert first["id"] == again["id"]
    assert devhub.hub.comments[comment_id].reactions[0].content == "eyes"


async def test_contents_refs_and_deployments(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        await open_pr(devhub)
        file = await gh.getitem(f"/repos/{REPO}/contents/model/params.json?ref=tune")
        listing = await gh.getitem(f"/repos/{REPO}/contents/model")
        main = await gh.getitem(f"/repos/{REPO}/git/ref/heads/main")
        tune = await gh.getitem(f"/repos/{REPO}/git/ref/heads/tune")
        moved = await gh.patch(f"/repos/{REPO}/git/refs/heads/main", data={"sha": tune["object"]["sha"]})
        deployment = await gh.post(
            f"/repos/{REPO}/deployments",
            data={"ref": "main", "environment": "staging", "required_contexts": []},
        )
        await gh.post(f"/repos/{REPO}/deployments/{deployment['id']}/statuses", data={"state": "success"})
        statuses = await gh.getitem(f"/repos/{REPO}/deployments/{deployment['id']}/statuses")
        listed = await gh.getitem(f"/repos/{REPO}/deployments?environment=staging")

    assert base64.b64decode(file["content"]) == b'{"c": 2.0}\n'
    assert [e["name"] for e in listing] == ["params.json"]
    assert moved["object"]["sha"] == tune["object"]["sha"] != main["object"]["sha"]
    assert deployment["sha"] == tune["object"]["sha"]
    assert [s["state"] for s in statuses] == ["success"] and [d["id"] for d in listed] == [deployment["id"]]


async def test_permission_and_team_membership(devhub: RunningDevHub) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        hub.set_permission(REPO, "mallory", "triage")
        hub.set_permission(REPO, "carol", "maintain")
        hub.add_team_member("acme", "ml-reviewers", "carol", "maintainer")
        mallory = await gh.getitem(f"/repos/{REPO}/collaborators/mallory/permission")
        carol = await gh.getitem(f"/repos/{REPO}/collaborators/carol/permission")
        membership = await gh.getitem("/orgs/acme/teams/ml-reviewers/memberships/carol")

    assert (mallory["permission"], mallory["role_name"]) == ("read", "triage")
    assert (carol["permission"], carol["role_name"]) == ("write", "maintain")
    assert membership["role"] == "maintainer" and membership["state"] == "active"


async def test_mergeable_is_null_until_github_has_computed_it(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        number = await open_pr(devhub)
        first = await gh.getitem(f"/repos/{REPO}/pulls/{number}")
        second = await gh.getitem(f"/repos/{REPO}/pulls/{number}")
        await devhub.hub.push(REPO, "tune", {"more.txt": "m"})
        after_push = await gh.getitem(f"/repos/{REPO}/pulls/{number}")

    assert (first["mergeable"], first["mergeable_state"]) == (None, "unknown")
    assert (second["mergeable"], second["mergeable_state"]) == (True, "clean")
    assert after_push["mergeable"] is None


async def test_spending_the_whole_primary_limit_gets_403_until_reset(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        devhub.hub.rate_limits.limit = 2
        statuses = []
        for _ in range(3):
            async with session.get(
                f"{devhub.api_url}/repos/{REPO}", headers={"Authorization": f"token {installed.token}"}
            ) as response:
                statuses.append((response.status, response.headers["x-ratelimit-remaining"]))

    assert statuses == [(200, "1"), (200, "0"), (403, "0")]


async def test_contents_at_a_commit_stay_what_that_commit_held(devhub: RunningDevHub) -> None:
    """What the dashboard's values diff relies on: ``?ref=<commit sha>`` answers that commit's bytes after the
    branch moved on; a path or commit that is not there is GitHub's 404; over 1 MB the file comes back with
    an empty content and encoding "none" (every answer checked against GitHub's OpenAPI description)."""
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        gh = client(devhub, session, installed.token)
        first = await hub.push(REPO, "main", {"env/values.yaml": "model: {sha256: aaa}\n"})
        await hub.push(REPO, "main", {"env/values.yaml": "model: {sha256: bbb}\n", "big.bin": b"x" * (1024 * 1024 + 1)})
        old = await gh.getitem(f"/repos/{REPO}/contents/env/values.yaml?ref={first}")
        new = await gh.getitem(f"/repos/{REPO}/contents/env/values.yaml")
        big = await gh.getitem(f"/repos/{REPO}/contents/big.bin")
        statuses = []
        for path in (f"env/gone.yaml?ref={first}", f"env/values.yaml?ref={'0' * 40}"):
            try:
                await gh.getitem(f"/repos/{REPO}/contents/{path}")
            except BadRequest as exc:
                statuses.append(exc.status_code)

    assert base64.b64decode(old["content"]) == b"model: {sha256: aaa}\n" and old["encoding"] == "base64"
    assert base64.b64decode(new["content"]) == b"model: {sha256: bbb}\n"
    assert (big["type"], big["size"], big["encoding"], big["content"]) == ("file", 1024 * 1024 + 1, "none", "")
    assert statuses == [404, 404]
