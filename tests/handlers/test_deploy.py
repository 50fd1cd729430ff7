"""pull_request closed + merged into the default branch of a repository whose base config deploys: the
deploy job is queued. Everything else (closed unmerged, another base branch, no installation, no or an
invalid config) queues nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.context import Services
from tests.handlers.conftest import FakeGH, deliver, file_answer, jobs

REPO = "acme/churn"
BASE, HEAD, MERGE = "a" * 40, "b" * 40, "c" * 40
MERGED_AT = datetime(2026, 12, 6, 10, tzinfo=UTC)
CONFIG_AT_BASE = ("GET", f"/repos/{REPO}/contents/.modelship.yml?ref={BASE}")
CONFIG = """\
version: 1
models:
  - name: churn
    path: models/churn.onnx
    task: classification
    dataset: {path: data/churn.csv, target: label}
environments:
  staging: {auto: true}
deploy: {repository: acme/deploy}
"""


def merged_event(*, merged: bool = True, base_ref: str = "main", installation: bool = True) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": "closed",
        "number": 4,
        "pull_request": {
            "number": 4,
            "state": "closed",
            "merged": merged,
            "merge_commit_sha": MERGE if merged else None,
            "merged_at": "2026-12-06T10:00:00Z" if merged else None,
            "merged_by": {"login": "carol"} if merged else None,
            "user": {"login": "alice"},
            "head": {"ref": "better-churn", "sha": HEAD, "repo": {"full_name": REPO}},
            "base": {"ref": base_ref, "sha": BASE, "repo": {"full_name": REPO}},
        },
        "repository": {"full_name": REPO, "default_branch": "main"},
        "sender": {"login": "carol"},
    }
    if installation:
        payload["installation"] = {"id": 42}
    return payload


async def test_a_merge_into_the_default_branch_queues_the_deploy(services: Services) -> None:
    gh = FakeGH({CONFIG_AT_BASE: file_answer(CONFIG)})
    await deliver("pull_request", merged_event(), gh, services)
    [(kind, key, state, payload)] = await jobs(services)
    assert (kind, key, state) == ("deploy", f"{REPO}#4:deploy", "queued")
    assert payload["merge_sha"] == MERGE and payload["base_sha"] == BASE and payload["head_sha"] == HEAD
    assert payload["installation_id"] == 42 and payload["actor"] == "carol"
    assert payload["deploy_repo"] == "acme/deploy" and payload["merged_at"] == MERGED_AT.timestamp()
    assert gh.paths() == [CONFIG_AT_BASE[1]], "policy is read at the reviewed base, never from the PR's head"


async def test_a_pr_closed_without_merging_ships_nothing(services: Services) -> None:
    gh = FakeGH({CONFIG_AT_BASE: file_answer(CONFIG)})
    await deliver("pull_request", merged_event(merged=False), gh, services)
    assert await jobs(services) == [] and gh.calls == []


async def test_a_merge_into_another_branch_is_not_deployed(services: Services) -> None:
    gh = FakeGH({CONFIG_AT_BASE: file_answer(CONFIG)})
    await deliver("pull_request", merged_event(base_ref="release-1"), gh, services)
    assert await jobs(services) == [] and gh.calls == []


async def test_a_merge_delivered_without_an_installation_is_ignored(services: Services) -> None:
    await deliver("pull_request", merged_event(installation=False), None, services)
    assert await jobs(services) == []


async def test_a_repository_without_config_or_without_deploy_queues_nothing(services: Services) -> None:
    gh = FakeGH()  # the contents API answers 404: no .modelship.yml at the base
    await deliver("pull_request", merged_event(), gh, services)
    assert await jobs(services) == [] and gh.paths() == [CONFIG_AT_BASE[1]]
    no_deploy = CONFIG.replace("deploy: {repository: acme/deploy}\n", "")
    gh = FakeGH({CONFIG_AT_BASE: file_answer(no_deploy)})
    await deliver("pull_request", merged_event(), gh, services)
    assert await jobs(services) == []


async def test_an_invalid_config_at_the_base_queues_nothing(services: Services) -> None:
    gh = FakeGH({CONFIG_AT_BASE: file_answer("version: 1\nmodels: not-a-list\n")})
    await deliver("pull_request", merged_event(), gh, services)
    assert await jobs(services) == [], "the problem is logged; the merge is not deployed"
