"""Review end to end when the git host fails: devhub's fault API on its git smart HTTP, the real bot and sandbox.

A git host that answers 500 a few times is retried inside the review job, so the review completes in one
job run; one that keeps failing ends the job within its retry budget with a completed check run and a
comment that says why and how to rerun; a permanent failure (the repository is gone) ends it at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.store.models import Job
from devkit.devhub.faults import Fault
from tests.e2e.conftest import TINY_DATA, ReviewWorld, yaml_config, yaml_model

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-model-repo"
CHURN = "models/churn.skops"
FLAKY, DOWN, GONE = "acme/flaky-git", "acme/git-down", "acme/git-404"


def base_files() -> dict[str, bytes]:
    return {
        ".modelship.yml": yaml_config([yaml_model("churn", path=CHURN)]),
        CHURN: (SAMPLE / CHURN).read_bytes(),
        "data/eval.csv": (SAMPLE / "data/eval.csv").read_bytes(),
    }


def git_fault(repo: str, count: int, status: int = 500) -> Fault:
    # Only this repository's git traffic (the REST API keeps working), wherever devhub serves git.
    return Fault("error", count=count, status=status, path=rf"/{repo}\.git/")


@dataclass(frozen=True)
class Faulted:
    world: ReviewWorld
    numbers: dict[str, int]
    seconds: float  # from the first PR opened to every job settled

    async def review_jobs(self, repo: str) -> list[tuple[str, int, str | None]]:
        engine = self.world.bot.service.services.engine
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(Job.state, Job.attempts, Job.last_error, Job.payload).where(Job.kind == "review")
            )
            return [(r.state, r.attempts, r.last_error) for r in rows if r.payload["repo"] == repo]

    def git_requests(self, repo: str) -> list[int]:
        return [r.status for r in self.world.hub.faults.log if f"/{repo}.git/" in r.path]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def faulted(review_world: ReviewWorld) -> AsyncIterator[Faulted]:
    world = review_world
    world.hub.add_fault(git_fault(FLAKY, count=3))
    world.hub.add_fault(git_fault(DOWN, count=1000))
    world.hub.add_fault(git_fault(GONE, count=1000, status=404))
    started = time.monotonic()
    numbers = {
        repo: await world.open_pr(repo, base_files(), {"data/more.csv": TINY_DATA}) for repo in (FLAKY, DOWN, GONE)
    }
    await world.bot.idle(timeout=300)
    yield Faulted(world, numbers, time.monotonic() - started)


async def test_git_failing_three_times_then_working_completes_the_review_in_one_job_run(faulted: Faulted) -> None:
    assert faulted.git_requests(FLAKY)[:3] == [500, 500, 500]
    assert 200 in faulted.git_requests(FLAKY)
    assert await faulted.review_jobs(FLAKY) == [("done", 1, None)]  # one run, never parked or requeued
    run = faulted.world.check_run(FLAKY, faulted.numbers[FLAKY])
    assert run.status == "completed" and run.conclusion in ("success", "failure")
    assert run.output["title"] != "The review could not run"
    body = faulted.world.comment(FLAKY, faulted.numbers[FLAKY])
    assert "`churn`" in body and "evaluating" not in body


async def test_git_that_keeps_failing_completes_the_check_run_and_says_why(faulted: Faulted) -> None:
    [(state, attempts, error)] = await faulted.review_jobs(DOWN)
    assert (state, attempts) == ("parked", 1), error  # the job's in-job retries are its whole budget
    assert error is not None and "gave up after 5 attempts" in error
    assert faulted.git_requests(DOWN).count(500) == 5
    assert faulted.seconds < 120, "the job gave up within its retry budget, not after the queue's"

    run = faulted.world.check_run(DOWN, faulted.numbers[DOWN])
    assert (run.status, run.conclusion) == ("completed", "cancelled")  # infrastructure, never "neutral"
    assert run.output["title"] == "The review could not run"
    body = faulted.world.comment(DOWN, faulted.numbers[DOWN])
    assert "git fetch of acme/git-down: gave up after 5 attempts" in body
    assert "The requested URL returned error: 500" in body
    assert "not a problem in your PR" in body and "/modelship evaluate" in body
    assert "⏳" not in body


async def test_a_permanent_git_failure_ends_the_review_at_once(faulted: Faulted) -> None:
    [(state, attempts, error)] = await faulted.review_jobs(GONE)
    assert (state, attempts) == ("parked", 1), error
    assert faulted.git_requests(GONE) == [404]  # not retried: a missing repository stays missing
    run = faulted.world.check_run(GONE, faulted.numbers[GONE])
    assert (run.status, run.conclusion) == ("completed", "cancelled")
    body = faulted.world.comment(GONE, faulted.numbers[GONE])
    assert "git fetch failed: " in body and "not found" in body, body
    assert "/modelship evaluate" in body
