"""Two bot replicas on one PostgreSQL with the Kubernetes sandbox backend: 20 PRs opened at once are each
reviewed exactly once (one sticky comment, one completed check run, one review row), both replicas take
part, the base side all 20 share is evaluated once per replica and reused (bot.sandbox.reuse, said in each
comment), and no sandbox Job or pod is left (tests.fixtures.sandbox_backend checks the namespace at the end).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.review.service import ReviewService
from bot.store.review_models import Review
from devkit.demo import SAMPLE, sample_files
from devkit.devhub import RunningDevHub
from tests.e2e.conftest import CountingRunner
from tests.fixtures.bot import RunningBot, bot_running
from tests.fixtures.postgres import _create_database
from tests.fixtures.sandbox_backend import kubernetes_leftovers

REPO = "acme/churn-model"
# The issue's 20. What this test is about is the queue and the cluster (claims racing across 2 replicas x 2
# workers, 22 Jobs created and deleted), not the numbers (tests/e2e/test_review.py): the sample repository
# with a 4-tree forest and no ONNX optimization keeps each sandbox run to its imports and a quick
# evaluation, so that 20 reviews fit in about 2 minutes on this shared 2-core machine (bench/kube_scale.py
# measures the full sample).
N = 20

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.parametrize("sandbox_backend", ["kubernetes"], indirect=True, scope="module"),
]


def counting(running: RunningBot) -> CountingRunner:
    """Wrap the replica's sandbox runner to see which replica ran what."""
    review = running.service.workers.runners["review"].__self__  # type: ignore[attr-defined]
    assert isinstance(review, ReviewService) and review.sandbox.runner is not None
    from dataclasses import replace

    wrapped = CountingRunner(review.sandbox.runner)
    review.sandbox = replace(review.sandbox, runner=wrapped)
    return wrapped


def small_sample(tmp_path: Path) -> dict[str, bytes]:
    """The sample repository with a 4-tree forest (its own train.py) and no optimization."""
    root = tmp_path / "sample"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "train.py", "--trees", "4", "--depth", "3"], cwd=root, check=True, capture_output=True
    )
    config = (root / ".modelship.yml").read_text()
    assert "optimize: {onnx: true" in config
    (root / ".modelship.yml").write_text(config.replace("optimize: {onnx: true", "optimize: {onnx: false"))
    return sample_files(root)


def bot_comments(devhub: RunningDevHub, number: int) -> list[str]:
    return [
        c.body
        for c in devhub.hub.comments.values()
        if c.repo == REPO and c.issue_number == number and c.user.login == "modelship[bot]"
    ]


async def test_two_replicas_review_prs_opened_at_once_exactly_once_and_leave_nothing(
    devhub: RunningDevHub, tmp_path: Path, postgres_server: str, sandbox_settings: dict[str, Any]
) -> None:
    import kubernetes

    db_url = await _create_database(postgres_server)
    hub = devhub.hub
    files = small_sample(tmp_path)
    namespace = sandbox_settings["kubernetes_namespace"]
    replica = {**sandbox_settings, "workers": 2}

    async with bot_running(
        devhub, tmp_path, db_url, data_dir=tmp_path / "a", **{**replica, "kubernetes_instance": f"{namespace}-a"}
    ) as a:
        await hub.create_repo(REPO, files)
        await hub.install("acme", [REPO])  # the app replica a made
        hub.set_permission(REPO, "alice", "write")
        key = a.settings.github_private_key
        assert key is not None
        async with bot_running(
            devhub,
            tmp_path,
            db_url,
            app=(a.app_id, key.get_secret_value()),  # the same GitHub App, as two pods of one Deployment are
            data_dir=tmp_path / "b",
            **{**replica, "kubernetes_instance": f"{namespace}-b"},
        ) as b:
            runs_a, runs_b = counting(a), counting(b)
            eval_csv = files["data/eval.csv"]
            for i in range(N):  # a data change per PR: reviewed like a model change, with nothing to train
                extra = eval_csv.splitlines(keepends=True)[1] * (i + 1)
                await hub.push(REPO, f"pr-{i}", {"data/eval.csv": eval_csv + extra}, message=f"More data {i}")
            numbers = await asyncio.gather(*(hub.open_pr(REPO, f"pr-{i}", title=f"Data {i}") for i in range(N)))
            await asyncio.gather(a.idle(timeout=600), b.idle(timeout=600))

            reused = 0
            for number in numbers:
                [comment] = bot_comments(devhub, number)
                assert "<!-- modelship:review -->" in comment and "accuracy" in comment, comment
                reused += "The base side was not run again" in comment
                assert "The head side was not run again" not in comment  # every head is a different tree
                head = hub.pull(REPO, number).head_sha
                runs = [r for r in hub.check_runs.values() if r.head_sha == head and r.name == "modelship/review"]
                assert [r.status for r in runs] == ["completed"], number
            async with a.service.services.engine.connect() as conn:
                per_head = (await conn.execute(select(Review.head_sha, func.count()).group_by(Review.head_sha))).all()
            heads = {hub.pull(REPO, n).head_sha for n in numbers}
            assert {h: c for h, c in per_head if h in heads} == dict.fromkeys(heads, 1)
            assert runs_a.runs and runs_b.runs  # both replicas reviewed
            assert len(runs_a.runs) + len(runs_b.runs) == 2 * N
            # One base run per replica (each remembers its own results), every other base side reused.
            assert reused == N - 2, reused

    api = kubernetes.config.new_client_from_config(str(sandbox_settings["kubernetes_kubeconfig"]))
    try:
        left = kubernetes_leftovers(kubernetes.client.CoreV1Api(api), kubernetes.client.BatchV1Api(api), namespace)
    finally:
        api.close()
    assert left == []
