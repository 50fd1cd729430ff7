"""A review world shared by one test module: devhub, the real bot and the real podman sandbox.

Review end-to-end modules open all their PRs up front and let the bot's workers evaluate them side by
side; starting a devhub and a bot per test would cost more than the reviews themselves.
"""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.review.service import ReviewService
from bot.sandbox.runner import SandboxResult, SandboxRunner, SandboxSpec
from devkit.devhub import DevHub, RunningDevHub, start
from devkit.devhub.model import CheckRun
from tests.fixtures.bot import LIVE_BOTS, RunningBot, bot_running, reviews_still_queued, settle
from tests.fixtures.devhub import HUBS, WEBHOOK_SECRET, assert_contract_kept, shared_key

BOT = "modelship[bot]"
CHECK = "modelship/review"


_REPORTED: set[tuple[int, int]] = set()  # (hub, check run) already failed a test: fail it once


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def no_check_run_left_in_progress() -> AsyncIterator[None]:
    """After every end-to-end test: once the running bots' jobs have settled, every check run in every
    devhub is completed. A review that ends without a result must still close its check run (the job
    system's final-failure hook); only a review job that is still queued (a later retry) may keep one open."""
    yield
    waiting: set[tuple[str, str]] = set()
    for running in list(LIVE_BOTS):
        await settle(running)
        waiting |= await reviews_still_queued(running)
    left: list[str] = []
    for hub in list(HUBS):
        for run in hub.check_runs.values():
            key = (id(hub), run.id)
            if run.status == "completed" or (run.repo, run.head_sha) in waiting or key in _REPORTED:
                continue
            _REPORTED.add(key)
            left.append(f"{run.repo}@{run.head_sha[:12]} {run.name}: {run.status} (check run {run.id})")
    assert not left, "check runs left open after their jobs ended:\n" + "\n".join(left)


@dataclass
class CountingRunner:
    """The real sandbox runner, remembering every run it was asked for (to prove one never happened)."""

    inner: SandboxRunner
    runs: list[SandboxSpec] = field(default_factory=list)

    async def run(self, spec: SandboxSpec) -> SandboxResult:
        self.runs.append(spec)
        return await self.inner.run(spec)


@dataclass
class ReviewWorld:
    devhub: RunningDevHub
    bot: RunningBot
    sandbox: CountingRunner
    tmp: Path

    @property
    def hub(self) -> DevHub:
        return self.devhub.hub

    async def open_pr(
        self, repo: str, base: dict[str, bytes], head: dict[str, bytes], *, branch: str = "change"
    ) -> int:
        """A repository with `base` on main, and a PR by alice (write access) that pushes `head` on top."""
        await self.hub.create_repo(repo, base)
        await self.hub.install(repo.split("/")[0], [repo])
        self.hub.set_permission(repo, "alice", "write")
        await self.hub.push(repo, branch, head, message=f"Change {', '.join(head)}")
        return await self.hub.open_pr(repo, branch, title="Change the model")

    def comments(self, repo: str, number: int) -> list[str]:
        return [
            c.body
            for c in self.hub.comments.values()
            if c.repo == repo and c.issue_number == number and c.user.login == BOT
        ]

    def comment(self, repo: str, number: int) -> str:
        """The one sticky comment (fails when there is none or more than one)."""
        comments = self.comments(repo, number)
        assert len(comments) == 1, comments
        return comments[0]

    def check_runs(self, repo: str, head_sha: str) -> list[CheckRun]:
        return [
            r for r in self.hub.check_runs.values() if r.repo == repo and r.head_sha == head_sha and r.name == CHECK
        ]

    def check_run(self, repo: str, number: int) -> CheckRun:
        """The one check run on the PR's current head."""
        runs = self.check_runs(repo, self.hub.pull(repo, number).head_sha)
        assert len(runs) == 1, runs
        return runs[0]


def section(body: str, model: str) -> str:
    """The part of a review comment about one model (its `### ` heading up to the next one)."""
    parts = [p for p in body.split("\n### ") if p.startswith(f"`{model}`")]
    assert len(parts) == 1, f"no single section for model {model!r} in:\n{body}"
    return parts[0]


class _Exec:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (self.code,)


def pickle_running(code: str) -> bytes:
    """A pickle that runs `code` the moment it is loaded: what a hostile `.pkl` model looks like."""
    return pickle.dumps(_Exec(code))


def yaml_config(models: list[str], *, sandbox: str = "{cpus: 1, memory: 1g, timeout: 300s}") -> bytes:
    """A `.modelship.yml` that reviews changes under models/, data/ and probes/, without optimization."""
    entries = "\n".join(models)
    return (
        f'version: 1\npaths: ["models/**", "data/**", "probes/**"]\nsandbox: {sandbox}\n'
        f"optimize: {{onnx: false}}\nmodels:\n{entries}\n"
    ).encode()


def yaml_model(
    name: str,
    *,
    path: str = "models/model.onnx",
    dataset: str = "data/eval.csv",
    target: str = "label",
    train: str | None = None,
    allow_pickle: bool = False,
) -> str:
    lines = [
        f"  - name: {name}",
        f"    path: {path}",
        "    task: classification",
        f"    dataset: {{path: {dataset}, target: {target}}}",
        "    metrics: [accuracy]",
    ]
    if allow_pickle:
        lines.append("    allow_pickle: true")
    if train:
        lines.append(f"    train: {{command: {train!r}}}")
    return "\n".join(lines)


TINY_DATA = b"a,b,label\n0.1,1.0,0\n0.9,0.2,1\n0.4,0.5,0\n0.8,0.1,1\n"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def review_world(
    tmp_path_factory: pytest.TempPathFactory, sandbox_settings: dict[str, Any]
) -> AsyncIterator[ReviewWorld]:
    """On the Docker backend unless the module parametrises ``sandbox_backend`` (tests.fixtures.sandbox_backend)."""
    tmp = tmp_path_factory.mktemp("review-world")
    devhub = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)
    try:
        async with bot_running(
            devhub,
            tmp,
            workers=4,  # PRs of one module are reviewed side by side
            # Every PR of a module runs both its sides: tests swap the backend runner under the counting one
            # (an engine gone) and count runs; reuse has its own tests (tests/sandbox/test_reuse.py,
            # tests/e2e/test_kube_replicas.py).
            sandbox_reuse_seconds=0,
            **sandbox_settings,
        ) as running:
            review = running.service.workers.runners["review"].__self__  # type: ignore[attr-defined]
            assert isinstance(review, ReviewService) and review.sandbox.runner is not None
            counting = CountingRunner(review.sandbox.runner)
            review.sandbox = replace(review.sandbox, runner=counting)
            yield ReviewWorld(devhub, running, counting, tmp)
    finally:
        await devhub.stop()
    assert_contract_kept(devhub.hub)
