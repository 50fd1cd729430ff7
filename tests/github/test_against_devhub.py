"""End to end against devhub, GitHub's local stand-in: real JWTs, real tokens, real waits.

devhub validates every request and response against GitHub's OpenAPI description (the fixture fails
the test on a violation) and logs each request's arrival time, which proves no retry came early.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.github.app import GitHubApp
from bot.github.git import credentials
from bot.github.redact import redact
from bot.github.retry import RetryPolicy
from devkit.devhub import RunningDevHub
from devkit.devhub.faults import Fault, LoggedRequest

pytestmark = pytest.mark.slow

REPO, OTHER = "acme/models", "globex/models"
# Short real waits, so the tests can measure them; retry-after and resets still come from devhub.
QUICK = RetryPolicy(base_delay=0.2, max_delay=0.5, secondary_delay=1.0, request_timeout=0.5, max_wait=10)


@dataclass
class Installed:
    devhub: RunningDevHub
    app: GitHubApp
    acme: int
    globex: int

    def log(self, path: str) -> list[LoggedRequest]:
        return [r for r in self.devhub.hub.faults.log if r.path == path]


@pytest.fixture
async def installed(devhub: RunningDevHub, session: aiohttp.ClientSession) -> AsyncIterator[Installed]:
    hub = devhub.hub
    app_id, private_key = await hub.create_app()
    await hub.create_repo(REPO, {"README.md": "# models\n"}, private=True)
    await hub.create_repo(OTHER, {"README.md": "# other\n"}, private=True)
    acme, globex = await hub.install("acme", [REPO]), await hub.install("globex", [OTHER])
    yield Installed(devhub, GitHubApp(app_id, private_key, devhub.api_url, session, policy=QUICK), acme, globex)


def gaps(requests: list[LoggedRequest]) -> list[float]:
    return [later.at - earlier.at for earlier, later in itertools.pairwise(requests)]


async def test_jwt_then_installation_token_then_repository(installed: Installed) -> None:
    app_client = await installed.app.app_client()
    installation = await app_client.getitem("/app/installations/{id}", {"id": installed.acme})
    client = await installed.app.for_installation(installed.acme)

    repo = await client.getitem("/repos/{owner}/{repo}", {"owner": "acme", "repo": "models"})

    assert installation["account"]["login"] == "acme"
    assert repo["full_name"] == REPO and repo["private"] is True
    assert [r.status for r in installed.log("/repos/acme/models")] == [200]


async def test_the_installation_token_clones_over_git_http(installed: Installed, tmp_path: Path) -> None:
    url = await installed.app.clone_url(REPO, installed.acme)
    token = await installed.app.git_token(installed.acme).get()
    clone = await asyncio.create_subprocess_exec(
        "git", "clone", "--quiet", url, str(tmp_path / "clone"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **credentials(token).env},
    )  # fmt: skip
    _, err = await clone.communicate()
    assert clone.returncode == 0, redact(err.decode())
    assert (tmp_path / "clone" / "README.md").read_text() == "# models\n"


async def test_server_errors_are_retried_until_success(installed: Installed) -> None:
    installed.devhub.hub.add_fault(Fault("error", count=2, path="^/repos/acme/models$", status=502))
    client = await installed.app.for_installation(installed.acme)

    assert (await client.getitem("/repos/acme/models"))["full_name"] == REPO
    requests = installed.log("/repos/acme/models")
    assert [r.status for r in requests] == [502, 502, 200]
    assert all(gap >= 0.1 for gap in gaps(requests))  # backoff >= base/2


async def test_a_slow_response_times_out_and_is_retried(installed: Installed) -> None:
    installed.devhub.hub.add_fault(Fault("slow", path="^/repos/acme/models$", delay=1.5))
    client = await installed.app.for_installation(installed.acme)
    started = time.monotonic()

    assert (await client.getitem("/repos/acme/models"))["full_name"] == REPO
    assert time.monotonic() - started < 1.4  # the answer came from the retry, not the slow request
    assert installed.devhub.hub.faults.pending == []  # the first request arrived and was held
    assert [(r.status, r.fault) for r in installed.log("/repos/acme/models")] == [(200, None)]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("secondary_rate_limit", path="^/repos/acme/models$", retry_after=1),
        Fault("rate_limit", path="^/repos/acme/models$", retry_after=1, reset_in=120),
    ],
    ids=["secondary", "primary"],
)
async def test_no_request_arrives_before_retry_after_expires(installed: Installed, fault: Fault) -> None:
    installed.devhub.hub.add_fault(fault)
    client = await installed.app.for_installation(installed.acme)

    assert (await client.getitem("/repos/acme/models"))["full_name"] == REPO
    limited, retried = installed.log("/repos/acme/models")
    assert (limited.status, retried.status) == (403, 200)
    # retry-after wins over a reset two minutes away: the wait is 1 s, not 120.
    assert 1.0 <= retried.at - limited.at < 5


async def test_a_spent_quota_waits_for_the_reset(installed: Installed) -> None:
    installed.devhub.hub.add_fault(Fault("rate_limit", path="^/repos/acme/models$", reset_in=1))
    client = await installed.app.for_installation(installed.acme)

    assert (await client.getitem("/repos/acme/models"))["full_name"] == REPO
    limited, retried = installed.log("/repos/acme/models")
    assert retried.at >= int(limited.at) + 1  # devhub's x-ratelimit-reset is at least this
    assert limited.status == 403 and retried.status == 200


async def test_a_secondary_limit_without_retry_after_waits_the_minimum(installed: Installed) -> None:
    installed.devhub.hub.add_fault(Fault("secondary_rate_limit", path="^/repos/acme/models$"))
    client = await installed.app.for_installation(installed.acme)

    assert (await client.getitem("/repos/acme/models"))["full_name"] == REPO
    limited, retried = installed.log("/repos/acme/models")
    assert retried.at - limited.at >= QUICK.secondary_delay


async def test_a_rate_limited_installation_never_stalls_another(installed: Installed) -> None:
    installed.devhub.hub.add_fault(Fault("secondary_rate_limit", path="^/repos/acme/models$", retry_after=2))
    acme = await installed.app.for_installation(installed.acme)
    globex = await installed.app.for_installation(installed.globex)

    limited = asyncio.create_task(acme.getitem("/repos/acme/models"))
    await asyncio.sleep(0.2)
    other = await globex.getitem("/repos/globex/models")

    assert other["full_name"] == OTHER
    assert not limited.done()  # acme still waits out its retry-after while globex is served
    assert (await limited)["full_name"] == REPO
