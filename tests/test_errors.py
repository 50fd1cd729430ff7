"""One classification of failures for every job, as a table, and the in-job retry helper that uses it."""

from __future__ import annotations

import random
from http import HTTPStatus

import aiohttp
import docker.errors
import gidgethub
import pytest
import requests

from bot.config.repo import ConfigProblem, RepoConfigError
from bot.deploy.gitops import DeployError, DeployRepoUnreachable
from bot.errors import (
    Backoff,
    Failure,
    InputError,
    RetriesExhausted,
    TransientError,
    classify,
    git_failure,
    is_transient,
    retry_transient,
)
from bot.github.git import GitAuthError
from bot.github.git import classify as classify_git
from bot.github.retry import GitHubRetriesExhausted
from bot.review.checkout import CheckoutError, TreeRefused


def _response_error(status: int) -> aiohttp.ClientResponseError:
    return aiohttp.ClientResponseError(None, (), status=status)


def _docker_api_error(status: int) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("engine said no", response=response)


CASES: list[tuple[str, BaseException, Failure]] = [
    # transient: worth another try inside the job
    (
        "git 5xx during fetch",
        CheckoutError("git fetch failed: returned error: 500", Failure.TRANSIENT),
        Failure.TRANSIENT,
    ),
    ("HTTP 502 from a dependency", _response_error(502), Failure.TRANSIENT),
    ("HTTP 429 from a dependency", _response_error(429), Failure.TRANSIENT),
    ("connection reset", ConnectionResetError(104, "Connection reset by peer"), Failure.TRANSIENT),
    ("connection refused", ConnectionRefusedError(111, "Connection refused"), Failure.TRANSIENT),
    ("client timeout", TimeoutError(), Failure.TRANSIENT),
    ("aiohttp connection error", aiohttp.ServerDisconnectedError(), Failure.TRANSIENT),
    ("container engine or registry unreachable", requests.exceptions.ConnectionError("refused"), Failure.TRANSIENT),
    ("container engine or registry slow", requests.exceptions.ReadTimeout("read timed out"), Failure.TRANSIENT),
    ("registry/engine 503", _docker_api_error(503), Failure.TRANSIENT),
    ("GitHub 5xx", gidgethub.GitHubBroken(HTTPStatus.BAD_GATEWAY), Failure.TRANSIENT),
    ("GitHub rate limit", gidgethub.BadRequest(HTTPStatus.FORBIDDEN, "API rate limit exceeded"), Failure.TRANSIENT),
    ("declared transient", TransientError("the database is restarting"), Failure.TRANSIENT),
    # infrastructure: not the PR's fault, and retrying now cannot help
    ("retries exhausted", RetriesExhausted("git fetch of o/r", 5, ConnectionResetError()), Failure.INFRASTRUCTURE),
    ("deploy repo stayed down", DeployRepoUnreachable("deploy repo down", 4, OSError()), Failure.INFRASTRUCTURE),
    ("deploy credentials refused", DeployError("refused our credentials"), Failure.INFRASTRUCTURE),
    ("git refused a fresh token too", GitAuthError("Authentication failed"), Failure.INFRASTRUCTURE),
    ("git 404 (repository missing)", CheckoutError("git fetch failed: not found"), Failure.INFRASTRUCTURE),
    (
        "REST client gave up",
        GitHubRetriesExhausted("GitHub GET failed after 5 attempts", status=502),
        Failure.INFRASTRUCTURE,
    ),
    ("GitHub 404", gidgethub.BadRequest(HTTPStatus.NOT_FOUND, "Not Found"), Failure.INFRASTRUCTURE),
    ("HTTP 404 from a dependency", _response_error(404), Failure.INFRASTRUCTURE),
    ("sandbox image missing", docker.errors.ImageNotFound("no such image"), Failure.INFRASTRUCTURE),
    # input: the PR or its policy must change
    ("bad .modelship.yml", RepoConfigError([ConfigProblem("models", 1, "is required")]), Failure.INPUT),
    ("missing model file", InputError("models/model.onnx does not exist at abc1234"), Failure.INPUT),
    ("PR tree refused (link out, over a cap)", TreeRefused("the tree at abc has more than 5 files"), Failure.INPUT),
    # bug: ours to fix
    ("a KeyError in our code", KeyError("pull_request"), Failure.BUG),
    ("a TypeError in our code", TypeError("unsupported operand"), Failure.BUG),
]


@pytest.mark.parametrize(("case", "exc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_failure_has_one_kind(case: str, exc: BaseException, expected: Failure) -> None:
    assert classify(exc) is expected
    assert is_transient(exc) == (expected is Failure.TRANSIENT)


GIT_STDERR = [
    ("fatal: unable to access '<repository>': The requested URL returned error: 500", Failure.TRANSIENT),
    ("fatal: unable to access '<repository>': The requested URL returned error: 502", Failure.TRANSIENT),
    ("fatal: unable to access 'x': The requested URL returned error: 429", Failure.TRANSIENT),
    ("fatal: unable to access 'x': Failed to connect to 127.0.0.1 port 9: Connection refused", Failure.TRANSIENT),
    ("error: RPC failed; curl 56 Recv failure: Connection reset by peer", Failure.TRANSIENT),
    ("fatal: the remote end hung up unexpectedly", Failure.TRANSIENT),
    ("fatal: unable to access 'x': Operation timed out after 60000 milliseconds", Failure.TRANSIENT),
    (" ! [rejected]        HEAD -> main (fetch first)", Failure.TRANSIENT),
    ("fatal: unable to access 'x': The requested URL returned error: 404", Failure.INFRASTRUCTURE),
    ("remote: Repository not found.\nfatal: repository 'x/' not found", Failure.INFRASTRUCTURE),
    ("fatal: Authentication failed for 'x'", Failure.INFRASTRUCTURE),
    ("remote: Invalid username or token.", Failure.INFRASTRUCTURE),
    ("fatal: unable to access 'x': The requested URL returned error: 403", Failure.INFRASTRUCTURE),
    ("fatal: couldn't find remote ref refs/pull/7/head", Failure.INFRASTRUCTURE),
]


@pytest.mark.parametrize(("stderr", "expected"), GIT_STDERR)
def test_what_git_said_means_one_kind_for_reviews_and_deploys(stderr: str, expected: Failure) -> None:
    # bot.github.git.classify reads git's stderr (tests/github/test_git.py); this is what each verdict means.
    assert git_failure(classify_git(stderr)) is expected


async def test_a_transient_failure_is_retried_with_back_off_inside_the_job() -> None:
    calls, sleeps = 0, []

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise CheckoutError("git fetch failed: returned error: 500", Failure.TRANSIENT)
        return "fetched"

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = Backoff(attempts=5, base_s=1.0, cap_s=3.0, rng=random.Random(1))
    assert await retry_transient(flaky, what="git fetch", policy=policy, sleep=sleep) == "fetched"
    assert calls == 4
    assert len(sleeps) == 3 and all(0 <= s <= cap for s, cap in zip(sleeps, (1.0, 2.0, 3.0), strict=True))


async def test_a_dependency_that_stays_down_ends_in_retries_exhausted_naming_the_last_error() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError(104, "Connection reset by peer")

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(RetriesExhausted, match=r"git fetch of o/r: gave up after 3 attempts; .*reset by peer") as info:
        await retry_transient(down, what="git fetch of o/r", policy=Backoff(attempts=3), sleep=sleep)
    assert calls == 3 and classify(info.value) is Failure.INFRASTRUCTURE


async def test_a_permanent_failure_ends_at_once() -> None:
    calls = 0

    async def missing() -> None:
        nonlocal calls
        calls += 1
        raise InputError("models/model.onnx does not exist")

    with pytest.raises(InputError):
        await retry_transient(missing, what="read the model", policy=Backoff(attempts=5))
    assert calls == 1
