"""Review end to end when things go wrong or change under it: devhub, real git, the real bot and sandbox.

User mistakes each get their own message on the PR; a new push cancels the review it supersedes;
a fork PR runs nothing until a maintainer says `ok-to-test`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bot.review.report import REVIEW_MARKER
from devkit.devhub.faults import Fault
from tests.e2e.conftest import TINY_DATA, ReviewWorld, section, yaml_config, yaml_model
from tests.fixtures.sandbox_backend import BACKENDS

# One suite, both backends: the Docker Engine sandbox and Kubernetes Jobs.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("sandbox_backend", BACKENDS, indirect=True, scope="module"),
]

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-model-repo"
INVALID, BROKEN = "acme/invalid-config", "acme/broken-inputs"
CHURN = "models/churn.skops"  # the sample: a random forest on 30 features


def sample_data() -> dict[str, bytes]:
    return {
        "models/churn.skops": (SAMPLE / CHURN).read_bytes(),
        "data/eval.csv": (SAMPLE / "data/eval.csv").read_bytes(),
    }


def narrow(csv: bytes, keep: int) -> bytes:
    """The first `keep` feature columns and the label: a dataset the model cannot take."""
    rows = [line.split(b",") for line in csv.splitlines()]
    return b"\n".join(b",".join([*row[:keep], row[-1]]) for row in rows) + b"\n"


INVALID_CONFIG = b"""version: 1
paths: ["data/**"]
sandbox: {timeout: soon}
models:
  - name: churn
    path: models/churn.skops
    task: classification
    dataset: {path: data/eval.csv, target: label}
"""


@dataclass(frozen=True)
class Errored:
    world: ReviewWorld
    numbers: dict[str, int]

    def comment(self, repo: str) -> str:
        return self.world.comment(repo, self.numbers[repo])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def errored(review_world: ReviewWorld) -> AsyncIterator[Errored]:
    data = sample_data()
    broken = {
        ".modelship.yml": yaml_config(
            [
                yaml_model("churn", path=CHURN),
                yaml_model("missing-model", path="models/nope.skops"),
                yaml_model("missing-data", path=CHURN, dataset="data/nope.csv"),
                yaml_model("missing-target", path=CHURN, target="churned"),
                yaml_model("narrow", path=CHURN, dataset="data/narrow.csv"),
            ]
        ),
        "data/narrow.csv": narrow(data["data/eval.csv"], 5),
        **data,
    }
    prs = {
        INVALID: ({".modelship.yml": INVALID_CONFIG, **data}, {"data/more.csv": TINY_DATA}),
        BROKEN: (broken, {"data/more.csv": TINY_DATA}),
    }
    numbers = {repo: await review_world.open_pr(repo, base, head) for repo, (base, head) in prs.items()}
    await review_world.bot.idle(timeout=400)
    yield Errored(review_world, numbers)


# --------------------------------------------------------------------------- user mistakes


def test_an_invalid_config_names_the_key_and_line_and_fails_the_check(errored: Errored) -> None:
    body = errored.comment(INVALID)
    assert "`.modelship.yml` on `main` is invalid" in body, body
    assert "| 3 | `sandbox.timeout` |" in body and "'soon' is not a duration" in body
    run = errored.world.check_run(INVALID, errored.numbers[INVALID])
    assert run.conclusion == "failure" and run.output["title"] == "Invalid .modelship.yml: line 3, sandbox.timeout"


def test_each_broken_input_gets_its_own_message_and_the_healthy_model_is_still_evaluated(errored: Errored) -> None:
    body = errored.comment(BROKEN)
    expected = {
        "missing-model": "missing\\_model: model file 'models/nope.skops' does not exist; check 'models\\[\\].path'",
        "missing-data": "missing\\_dataset: dataset file 'data/nope.csv' does not exist",
        "missing-target": "missing\\_target: target column 'churned' is not in 'data/eval.csv'",
        "narrow": "feature\\_mismatch: the model expects 30 features but the dataset has 5 feature columns",
    }
    for model, message in expected.items():
        part = section(body, model)
        assert "The head model failed to evaluate" in part and message in part, part
    churn = section(body, "churn")
    assert "failed to evaluate" not in churn and "| accuracy ↑ |" in churn, churn
    assert errored.world.check_run(BROKEN, errored.numbers[BROKEN]).conclusion == "failure"


# --------------------------------------------------------------------------- a push during a review


async def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_a_new_push_cancels_the_running_review_and_keeps_one_comment(review_world: ReviewWorld) -> None:
    world, repo = review_world, "acme/superseded"
    base = {
        ".modelship.yml": yaml_config([yaml_model("slow", train="python probes/train.py")]),
        "probes/train.py": b"pass\n",
        "data/eval.csv": TINY_DATA,
    }
    number = await world.open_pr(repo, base, {"probes/train.py": b"import time\ntime.sleep(300)\n"})
    first = world.hub.pull(repo, number).head_sha
    started = len(world.sandbox.runs)
    await wait_for(
        lambda: (
            any(r.status == "in_progress" for r in world.check_runs(repo, first))
            and len(world.sandbox.runs) >= started + 2
        ),
        120,
        "the first review to reach the sandbox",
    )
    await asyncio.sleep(3)  # let the slow head's training start inside its container
    pushed = time.monotonic()
    await world.hub.push(repo, "change", {"probes/train.py": b"print('trained')\n"}, message="Quick training")
    await world.bot.idle(timeout=240)

    second = world.hub.pull(repo, number).head_sha
    [cancelled] = world.check_runs(repo, first)
    assert (cancelled.status, cancelled.conclusion) == ("completed", "cancelled")
    assert cancelled.output["title"] == "Superseded"
    [latest] = world.check_runs(repo, second)
    assert (latest.status, latest.conclusion) == ("completed", "failure")  # no model file after training
    body = world.comment(repo, number)
    assert f"Head `{second[:12]}`" in body and first[:12] not in body, body
    assert "model file 'models/model.onnx' does not exist" in body
    assert time.monotonic() - pushed < 200, "the superseded 300 s training was not stopped"


async def test_a_push_while_the_review_is_still_starting_cancels_its_check_run(review_world: ReviewWorld) -> None:
    """Superseded between creating its check run and reaching the sandbox, a review still closes it."""
    world, repo = review_world, "acme/superseded-early"
    base = {".modelship.yml": yaml_config([yaml_model("tiny")]), "data/eval.csv": TINY_DATA}
    # GitHub is slow to list the PR's comments: the review is stuck right after creating its check run.
    world.hub.add_fault(Fault("slow", path=f"^/repos/{repo}/issues/1/comments", method="GET", delay=12.0))
    number = await world.open_pr(repo, base, {"data/eval.csv": TINY_DATA + b"0.5,0.5,1\n"})
    first = world.hub.pull(repo, number).head_sha
    await wait_for(lambda: bool(world.check_runs(repo, first)), 60, "the first review's check run")
    await world.hub.push(repo, "change", {"data/eval.csv": TINY_DATA + b"0.6,0.4,1\n"}, message="More rows")
    await world.bot.idle(timeout=240)

    [cancelled] = world.check_runs(repo, first)
    assert (cancelled.status, cancelled.conclusion) == ("completed", "cancelled")
    second = world.hub.pull(repo, number).head_sha
    assert f"Head `{second[:12]}`" in world.comment(repo, number)


# --------------------------------------------------------------------------- untrusted PRs


async def test_a_fork_pr_runs_nothing_until_a_maintainer_says_ok_to_test(review_world: ReviewWorld) -> None:
    world, hub, repo = review_world, review_world.hub, "acme/forked"
    config = yaml_config([yaml_model("churn", path=CHURN)])
    await hub.create_repo(repo, {".modelship.yml": config, **sample_data()})
    await hub.install("acme", [repo])
    hub.set_permission(repo, "alice", "write")
    await hub.fork(repo, "mallory")
    await hub.push("mallory/forked", "evil", {"data/more.csv": TINY_DATA}, author="mallory")
    runs_before = len(world.sandbox.runs)
    number = await hub.open_pr(repo, "evil", user="mallory", from_fork=True)
    await world.bot.idle(timeout=60)

    head = hub.pull(repo, number).head_sha
    waiting = world.comment(repo, number)
    assert "nothing runs in the sandbox yet" in waiting and f"ok-to-test {head[:7]}" in waiting, waiting
    assert len(world.sandbox.runs) == runs_before, "a fork PR reached the sandbox before approval"
    assert world.check_runs(repo, head) == []

    await hub.comment(repo, number, "/modelship ok-to-test", user="alice")
    await world.bot.idle(timeout=300)
    assert len(world.sandbox.runs) == runs_before + 2  # base and head
    # The sticky comment now holds the evaluation; the command got its own short reply.
    [body, reply] = sorted(world.comments(repo, number), key=lambda c: REVIEW_MARKER not in c)
    assert REVIEW_MARKER in body and REVIEW_MARKER not in reply and f"Approved commit `{head[:7]}`" in reply
    assert f"Head `{head[:12]}`" in body and "| accuracy ↑ |" in body, body
    assert "failed to evaluate" not in body
    [run] = world.check_runs(repo, head)
    assert run.status == "completed" and run.conclusion == "success"
