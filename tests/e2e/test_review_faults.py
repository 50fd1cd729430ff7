"""Review end to end when the git host or the sandbox fails: devhub's fault API on its git smart HTTP, the
sandbox removed underneath, the real bot and sandbox, on both backends.

A git host that answers 500 a few times is retried inside the review job, so the review completes in one
job run; one that keeps failing ends the job within its retry budget with a completed check run and a
comment that says why and how to rerun; a permanent failure (the repository is gone) ends it at once.
A sandbox removed while it runs (Docker: its container removed on the engine; Kubernetes: its pod deleted,
as an eviction or a drain does) ends the review at once, saying so, instead of at the sandbox timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.review.service import ReviewService
from bot.store.models import Job
from devkit.devhub.faults import Fault
from tests.e2e.conftest import TINY_DATA, ReviewWorld, yaml_config, yaml_model
from tests.fixtures.sandbox_backend import BACKENDS

# One suite, both backends: the Docker Engine sandbox and Kubernetes Jobs.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("sandbox_backend", BACKENDS, indirect=True, scope="module"),
]

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


# --------------------------------------------------------------------------- the sandbox removed underneath


def running_sandboxes(
    backend: str, settings: dict[str, Any], request: pytest.FixtureRequest, world: ReviewWorld
) -> tuple[Callable[[], list[Any]], Callable[[Any], object]]:
    """Lister and remover of this world's running sandboxes, the way each backend loses one: on Docker the
    container is removed on the engine (`docker rm -f`, a prune); on Kubernetes the pod is deleted (an
    eviction, a drain, `kubectl delete pod`), with its default grace period."""
    if backend == "docker":
        from bot.sandbox.docker_engine import SANDBOX_LABEL

        client = request.getfixturevalue("docker_client")

        def mine() -> list[Any]:  # the shared engine runs other sessions' sandboxes too: only this world's
            containers = client.containers.list(filters={"label": SANDBOX_LABEL, "status": "running"})
            return [c for c in containers if any(str(world.tmp) in m["Source"] for m in c.attrs["Mounts"])]

        return mine, lambda c: c.remove(force=True)
    import kubernetes

    from bot.sandbox import kube_jobs as kj

    core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(settings["kubernetes_kubeconfig"])))
    namespace = settings["kubernetes_namespace"]

    def pods() -> list[Any]:
        listed = core.list_namespaced_pod(namespace, label_selector=f"{kj.SANDBOX_LABEL}=run")
        return [p for p in listed.items if kj.sandbox_started(core.api_client.sanitize_for_serialization(p))]

    return pods, lambda p: core.delete_namespaced_pod(p.metadata.name, namespace)


async def test_a_sandbox_removed_underneath_ends_the_review_at_once_and_says_so(
    review_world: ReviewWorld, sandbox_backend: str, sandbox_settings: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    world, repo = review_world, "acme/sandbox-gone"
    sleeps = b"import time\ntime.sleep(300)\n"
    base = {
        ".modelship.yml": yaml_config([yaml_model("slow", train="python probes/train.py")]),
        "probes/train.py": sleeps,
        "data/eval.csv": TINY_DATA,
    }
    listed, remove = running_sandboxes(sandbox_backend, sandbox_settings, request, world)
    number = await world.open_pr(repo, base, {"probes/train.py": b"# slower\n" + sleeps})
    deadline = time.monotonic() + 120
    while len(running := await asyncio.to_thread(listed)) < 2:  # base and head, both training
        assert time.monotonic() < deadline, "the two sandboxes never ran"
        await asyncio.sleep(0.2)
    removed = time.monotonic()
    for sandbox in running:
        await asyncio.to_thread(remove, sandbox)
    await world.bot.idle(timeout=200)

    assert time.monotonic() - removed < 60, "the review waited for the sandbox timeout"
    run = world.check_run(repo, number)
    assert run.status == "completed" and run.conclusion in ("failure", "cancelled")
    body = world.comment(repo, number)
    what = "container" if sandbox_backend == "docker" else "pod"
    assert f"the sandbox {what} was removed before it finished" in body, body


# --------------------------------------------------------------------------- the sandbox cannot be had


@contextlib.contextmanager
def review_sandbox(world: ReviewWorld, **changes: Any) -> Iterator[ReviewService]:
    """The review's sandbox configuration changed for one case (the image it runs), then restored."""
    review = world.bot.service.workers.runners["review"].__self__  # type: ignore[attr-defined]
    assert isinstance(review, ReviewService)
    kept = review.sandbox
    review.sandbox = replace(kept, **changes)
    try:
        yield review
    finally:
        review.sandbox = kept


@contextlib.contextmanager
def unreachable(world: ReviewWorld, backend: str, settings: dict[str, Any], tmp_path: Path) -> Iterator[None]:
    """The sandbox's engine gone mid-life, the same runner talking to where it was: on Docker the Engine API's
    socket is absent, on Kubernetes nothing listens at the API server's address any more."""
    inner = world.sandbox.inner
    dead = copy.copy(inner)
    if backend == "docker":
        import docker

        dead._client = docker.DockerClient(base_url=f"unix://{tmp_path}/absent.sock", version="1.41")  # type: ignore[attr-defined]
    else:
        import yaml

        from bot.sandbox.kube_runner import connect

        with socket.socket() as s:  # a loopback port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = yaml.safe_load(Path(settings["kubernetes_kubeconfig"]).read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"http://127.0.0.1:{port}"
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
        dead.clients = connect(tmp_path / "kubeconfig")  # type: ignore[attr-defined]
    world.sandbox.inner = dead
    try:
        yield
    finally:
        world.sandbox.inner = inner


async def test_a_sandbox_image_that_cannot_be_had_is_named_with_its_setting(
    review_world: ReviewWorld, sandbox_backend: str, sandbox_settings: dict[str, Any]
) -> None:
    world, repo = review_world, "acme/no-image"
    where = sandbox_settings.get("registry", "localhost")
    missing = f"{where}/modelship/no-such-runner:1"  # on Kubernetes the kubelet really asks the registry
    base = {".modelship.yml": yaml_config([yaml_model("tiny")]), "data/eval.csv": TINY_DATA}
    with review_sandbox(world, image=missing):
        number = await world.open_pr(repo, base, {"data/eval.csv": TINY_DATA + b"0.5,0.5,1\n"})
        await world.bot.idle(timeout=120)
    body = world.comment(repo, number)
    assert f"sandbox image {missing!r}" in body.replace("\\_", "_"), body
    assert "MODELSHIP\\_SANDBOX\\_IMAGE" in body
    assert world.check_run(repo, number).status == "completed"


async def test_an_engine_that_went_away_is_said_with_the_setting_to_check(
    review_world: ReviewWorld, sandbox_backend: str, sandbox_settings: dict[str, Any], tmp_path: Path
) -> None:
    world, repo = review_world, "acme/engine-gone"
    base = {".modelship.yml": yaml_config([yaml_model("tiny")]), "data/eval.csv": TINY_DATA}
    with unreachable(world, sandbox_backend, sandbox_settings, tmp_path):
        number = await world.open_pr(repo, base, {"data/eval.csv": TINY_DATA + b"0.5,0.5,1\n"})
        await world.bot.idle(timeout=120)
    body = world.comment(repo, number).replace("\\_", "_")
    said = {
        "docker": "container engine unreachable (ConnectionError); is scripts/podman-service.sh running?",
        "kubernetes": "Kubernetes API unreachable (MaxRetryError); check MODELSHIP_KUBERNETES_KUBECONFIG",
    }[sandbox_backend]
    assert said in body, body
    assert world.check_run(repo, number).status == "completed"
