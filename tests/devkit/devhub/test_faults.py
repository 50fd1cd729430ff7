"""Switchable faults: each looks like GitHub's real failure, and the request log shows retry timing."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from multidict import CIMultiDict

from devkit.devhub import Fault, RunningDevHub
from tests.devkit.devhub.helpers import REPO, install_app


async def get_repo(
    devhub: RunningDevHub, session: aiohttp.ClientSession, token: str
) -> tuple[int, CIMultiDict[str], dict[str, Any]]:
    async with session.get(f"{devhub.api_url}/repos/{REPO}", headers={"Authorization": f"token {token}"}) as r:
        return r.status, CIMultiDict(r.headers), await r.json()


async def test_server_errors_affect_only_the_next_n_matching_requests(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        devhub.hub.add_fault(Fault("error", count=2, path=r"^/repos/acme/models$", status=503))
        statuses = [(await get_repo(devhub, session, installed.token))[0] for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert [(r.status, r.fault) for r in devhub.hub.faults.log[-3:]] == [
        (503, "error"),
        (503, "error"),
        (200, None),
    ]


async def test_primary_rate_limit_looks_like_githubs(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        devhub.hub.add_fault(Fault("rate_limit", reset_in=30))
        status, headers, body = await get_repo(devhub, session, installed.token)

    assert status == 403
    assert headers["x-ratelimit-remaining"] == "0"
    assert 25 <= int(headers["x-ratelimit-reset"]) - time.time() <= 31
    assert body["message"].startswith("API rate limit exceeded")


async def test_secondary_rate_limit_with_and_without_retry_after(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        devhub.hub.add_fault(Fault("secondary_rate_limit", retry_after=7))
        devhub.hub.add_fault(Fault("secondary_rate_limit"))
        with_header = await get_repo(devhub, session, installed.token)
        without = await get_repo(devhub, session, installed.token)

    assert (with_header[0], with_header[1]["retry-after"]) == (403, "7")
    assert without[0] == 403 and "retry-after" not in without[1]
    assert "secondary rate limit" in without[2]["message"]
    assert without[1]["x-ratelimit-remaining"] != "0"  # how clients tell it from the primary limit


async def test_slow_and_unprocessable_faults_over_http(devhub: RunningDevHub) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        for fault in ({"kind": "slow", "delay": 0.3}, {"kind": "unprocessable", "method": "GET"}):
            async with session.post(f"{devhub.base_url}/_devhub/faults", json=fault) as added:
                assert added.status == 201
        started = time.monotonic()
        slow = await get_repo(devhub, session, installed.token)
        elapsed = time.monotonic() - started
        refused = await get_repo(devhub, session, installed.token)
        async with session.post(f"{devhub.base_url}/_devhub/faults", json={"kind": "gremlins"}) as bad:
            assert bad.status == 400 and "kinds are" in (await bad.json())["message"]
        async with session.get(f"{devhub.base_url}/_devhub/faults") as listed:
            log = (await listed.json())["log"]

    assert slow[0] == 200 and elapsed >= 0.3
    assert refused[0] == 422 and refused[2]["errors"]
    assert [entry["status"] for entry in log[-2:]] == [200, 422]
    assert log[-1]["at"] - log[-2]["at"] >= 0  # timestamps let tests prove a client waited
