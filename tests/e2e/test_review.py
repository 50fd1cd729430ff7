"""Review end to end: devhub, real git over HTTP, the real sandbox (podman): one comment, one check run."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.review.report import gate_rule, interval
from bot.review.stored import report_from_json
from bot.store.review_models import Review
from bot.store.reviews import StoredReview, record_from_json
from bot.ui.app import review_html
from devkit.demo import retrain_sample, sample_files
from devkit.devhub import RunningDevHub
from tests.fixtures.bot import RunningBot, bot_running
from tests.fixtures.sandbox_backend import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-model-repo"
REPO = "acme/churn-model"
# One suite, both backends: the Docker Engine sandbox and Kubernetes Jobs.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("sandbox_backend", BACKENDS, indirect=True, scope="module"),
]


def train(tmp_path_factory: pytest.TempPathFactory, trees: int, depth: int) -> bytes:
    """A different, deterministic model: the sample trained with other flags."""
    return retrain_sample(tmp_path_factory.mktemp("retrain") / "repo", trees, depth)


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return train(tmp_path_factory, 20, 3)


@pytest.fixture(scope="module")
def retrained_again(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return train(tmp_path_factory, 10, 2)


@pytest.fixture
async def review_bot(
    devhub: RunningDevHub, tmp_path: Path, sandbox_settings: dict[str, Any]
) -> AsyncIterator[RunningBot]:
    async with bot_running(devhub, tmp_path, **sandbox_settings) as running:
        yield running


def bot_comments(devhub: RunningDevHub, number: int) -> list[str]:
    return [
        c.body
        for c in devhub.hub.comments.values()
        if c.repo == REPO and c.issue_number == number and c.user.login == "modelship[bot]"
    ]


def sklearn_accuracy(model_bytes: bytes) -> float:
    import pandas as pd
    import skops.io as sio
    from sklearn.metrics import accuracy_score

    model = sio.loads(model_bytes, trusted=sio.get_untrusted_types(data=model_bytes))
    frame = pd.read_csv(SAMPLE / "data" / "eval.csv")
    return float(
        accuracy_score(frame["label"].astype(str), model.predict(frame.drop(columns="label").to_numpy()).astype(str))
    )


async def test_a_model_pr_gets_one_comment_and_one_check_run_with_sklearns_numbers(
    devhub: RunningDevHub, review_bot: RunningBot, retrained: bytes, retrained_again: bytes
) -> None:
    hub = devhub.hub
    await hub.create_repo(REPO, sample_files())
    await hub.install("acme", [REPO])
    hub.set_permission(REPO, "alice", "write")
    await hub.push(REPO, "retrain", {"models/churn.skops": retrained}, message="Retrain with 20 trees")
    number = await hub.open_pr(REPO, "retrain", title="Retrain")
    await review_bot.idle(timeout=240)

    comments = bot_comments(devhub, number)
    assert len(comments) == 1, comments
    body = comments[0]
    assert "<!-- modelship:review -->" in body and "accuracy" in body and "```mermaid" in body, body
    head_sha = hub.pull(REPO, number).head_sha
    runs = [r for r in hub.check_runs.values() if r.head_sha == head_sha and r.name == "modelship/review"]
    assert len(runs) == 1 and runs[0].status == "completed" and runs[0].conclusion in ("success", "failure")

    async with review_bot.service.services.engine.connect() as conn:
        review = (await conn.execute(select(Review).where(Review.head_sha == head_sha))).one()
    churn = record_from_json(review.summary).models["churn"]
    base_bytes = (SAMPLE / "models" / "churn.skops").read_bytes()
    assert churn.metrics["accuracy"] == pytest.approx(sklearn_accuracy(retrained), abs=1e-12)
    assert f"{sklearn_accuracy(base_bytes):.4f}"[:5] in body  # the base column carries the base model's number

    # The optimization table is in the comment, and the chosen variant's file is kept with its sha256.
    assert "## Optimization" in body and "ONNX fp32" in body

    # The review keeps its full comparison, and the dashboard's PR page shows what the comment shows:
    # metrics with their intervals, the gate rows, the optimization rows (with the comment's own numbers).
    record = record_from_json(review.summary)
    page = review_html(StoredReview(review.head_sha, review.base_sha, review.conclusion, record, None, review.report))
    kept = report_from_json(review.report)
    assert kept is not None and kept.optimization is not None
    accuracy = next(r for r in kept.comparison.models[0].metrics if r.name == "accuracy")
    assert accuracy.ci is not None and interval(accuracy) in body
    assert f'<td class="ci">{interval(accuracy)}</td>' in page
    gates = kept.comparison.models[0].gates
    assert gates and all(f'<th scope="row">{g.metric}</th><td>{gate_rule(g)}</td>' in page for g in gates)
    assert '<table class="review-optimization">' in page and "ONNX fp32</th>" in page
    if churn.variant != "original":
        assert churn.variant_artifact is not None
        kept = review_bot.settings.data_dir / "artifacts" / REPO.replace("/", "--") / head_sha / churn.variant_artifact
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == churn.variant_sha256

    # A second push edits the same comment (and gets its own check run).
    await hub.push(REPO, "retrain", {"models/churn.skops": retrained_again}, message="Fewer trees")
    await review_bot.idle(timeout=240)
    comments = bot_comments(devhub, number)
    assert len(comments) == 1
    new_head = hub.pull(REPO, number).head_sha
    assert new_head[:12] in comments[0] or new_head[:7] in comments[0]
