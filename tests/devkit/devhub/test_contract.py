"""The contract check catches traffic that does not match GitHub's OpenAPI descriptions."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import aiohttp
import pytest

from devkit.devhub import DevHub, RunningDevHub
from devkit.devhub.contract import shared_contract
from devkit.devhub.oauth import OAuth
from devkit.devhub.rest import Rest
from tests.devkit.devhub.helpers import REPO, install_app
from tests.fixtures.devhub import assert_contract_kept

VENDORED = Path(__file__).resolve().parents[3] / "devkit" / "devhub" / "openapi"


async def test_an_invalid_request_is_recorded_as_a_violation(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        head = devhub.hub.git.resolve(REPO, "refs/heads/main")
        async with session.post(
            f"{devhub.api_url}/repos/{REPO}/check-runs",
            headers={"Authorization": f"token {installed.token}"},
            json={"name": "x", "head_sha": head, "status": "exploded"},
        ) as response:
            status = response.status
    violations = list(devhub.hub.contract_violations)
    devhub.hub.contract_violations.clear()  # caught on purpose; do not fail this test at teardown

    assert status == 422
    assert any("request checks/create" in v and "status" in v and "exploded" in v for v in violations), violations


async def test_a_call_to_an_endpoint_github_does_not_have_is_a_violation(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        async with session.get(
            f"{devhub.api_url}/repos/{REPO}/pulls/1/invented",
            headers={"Authorization": f"token {installed.token}"},
        ) as response:
            status = response.status
    violations = list(devhub.hub.contract_violations)
    devhub.hub.contract_violations.clear()

    assert status == 404
    assert violations == [f"GET /repos/{REPO}/pulls/1/invented: no such operation in GitHub's REST description"]


async def test_a_response_missing_a_required_field_is_caught(devhub: RunningDevHub) -> None:
    hub = devhub.hub
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
    await hub.push(REPO, "tune", {"a.txt": "a"})
    number = await hub.open_pr(REPO, "tune", user="bob")
    good = await hub.pull_json(REPO, hub.pull(REPO, number))
    broken = copy.deepcopy(good)
    del broken["head"]["sha"]
    broken["number"] = "one"

    path = f"/repos/{REPO}/pulls/{number}"
    assert shared_contract().check_response("GET", path, 200, good) == []
    problems = shared_contract().check_response("GET", path, 200, broken)
    assert any("head" in p and "'sha' is a required property" in p for p in problems), problems
    assert any("number" in p and "'one' is not of type 'integer'" in p for p in problems), problems


async def test_a_webhook_payload_off_schema_is_caught(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
    payload = copy.deepcopy(devhub.hub.deliveries[0].payload)
    del payload["installation"]["account"]

    assert shared_contract().check_webhook("installation-created", devhub.hub.deliveries[0].payload) == []
    assert any(
        "'account' is a required property" in p
        for p in shared_contract().check_webhook("installation-created", payload)
    )


def test_vendored_descriptions_are_small_and_licensed() -> None:
    sizes = {p.name: p.stat().st_size for p in VENDORED.iterdir()}

    assert set(sizes) == {
        "rest.json",
        "webhooks.json",
        "LICENSE-octokit-openapi",
        "LICENSE-octokit-openapi-webhooks",
    }
    assert sum(sizes.values()) < 3_000_000
    assert "MIT" in (VENDORED / "LICENSE-octokit-openapi").read_text()


def test_every_served_route_is_a_vendored_operation_and_every_operation_is_served(tmp_path: Path) -> None:
    contract = shared_contract()
    hub = DevHub(tmp_path)
    # sign-in's github.com pages (/login/oauth/...) are not REST; its user-token calls are
    routes = Rest(hub).routes() + [r for r in OAuth(hub).routes() if not r.path.startswith("/login/oauth/")]
    served = set()
    for route in routes:
        sample = re.sub(r"\{(\w+):\.\+\}", r"\1/x", route.path)
        sample = re.sub(r"\{(\w+)\}", "1", sample)
        operation = contract.operation(route.method, sample)
        assert operation is not None, f"{route.method} {route.path} is not in the vendored description"
        served.add(operation.operation_id)
    assert served == contract.operation_ids()


def test_a_recorded_violation_fails_the_test_at_teardown(tmp_path: Path) -> None:
    hub = DevHub(tmp_path)
    assert_contract_kept(hub)
    hub.violation(["response 200 to pulls/get: number: 'one' is not of type 'integer'"])

    with pytest.raises(AssertionError, match=r"breaks GitHub's OpenAPI contract:\n.*'one'"):
        assert_contract_kept(hub)
