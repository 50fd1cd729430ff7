"""A review that keeps a variant publishes exactly the kept bytes (the bot pushes, never the sandbox), with its
evidence; a registry that refuses or is down never costs the review: the record and the comment say why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from bot.artifacts.publish import EVIDENCE_DIR, kept_run
from bot.artifacts.registry import Backoff, OciRegistry
from bot.context import Services
from bot.review.compare import ReviewComparison
from bot.review.evaluation import SandboxLimits
from bot.review.integrity import Verified
from bot.review.jobs import ReviewRequest
from bot.review.service import ReviewService, SandboxConfig, _Evaluated
from bot.store.reviews import ReviewedModel, ReviewRecord
from contract import oci
from devkit.processes import free_port

REPO = "acme/churn-model"
HEAD = "12" * 20
BYTES = b"the optimized onnx bytes the bot hashed"
SHA = oci.sha256_digest(BYTES).removeprefix("sha256:")


class _Services:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir


def review(tmp_path: Path, registry: OciRegistry | None) -> ReviewService:
    services = cast(Services, _Services(tmp_path))
    return ReviewService(services, SandboxConfig(None, "runner"), registry=registry)


def kept(tmp_path: Path) -> ReviewRecord:
    run = kept_run(tmp_path, REPO, HEAD)
    (run / "churn").mkdir(parents=True)
    (run / "churn" / "model.onnx").write_bytes(BYTES)
    churn = ReviewedModel(
        status="compared",
        gates_passed=True,
        model_path="models/churn.skops",
        model_sha256="0" * 64,
        variant="onnx_optimized",
        variant_sha256=SHA,
        variant_artifact="churn/model.onnx",
    )
    original = ReviewedModel(status="compared", model_path="models/iris.skops", model_sha256="1" * 64)
    return ReviewRecord(models={"churn": churn, "iris": original}, check_run_id=5)


REQ = ReviewRequest(REPO, 7, 1, HEAD, "34" * 20, "main", "pull_request", "alice")
PR: dict[str, Any] = {"base": {"sha": "34" * 20, "repo": {"html_url": f"https://github.example/{REPO}"}}}
DONE = _Evaluated(ReviewComparison(models=()), None, Verified({}), SandboxLimits(1, 1, 1))


async def test_the_kept_variant_is_published_with_its_evidence_and_the_comment_shows_the_reference(
    registry: OciRegistry, tmp_path: Path
) -> None:
    record, section = await review(tmp_path, registry)._publish(REQ, PR, DONE, kept(tmp_path), "## review body\n")

    churn = record.models["churn"]
    assert churn.artifact is not None and churn.artifact_error is None and churn.artifact_created
    assert section is not None and f"published as `{churn.artifact}`" in section
    assert record.models["iris"].artifact is None, "the original file was not kept: nothing to publish"
    assert record.check_run_id == 5
    [evidence] = await registry.referrers(churn.artifact)
    assert evidence["artifactType"] == oci.EVIDENCE_ARTIFACT_TYPE
    # The evidence is kept beside the files too, for a deploy that has to publish it later.
    folder = kept_run(tmp_path, REPO, HEAD) / EVIDENCE_DIR / "churn"
    assert json.loads((folder / "report.json").read_text())["reviewed"]["variant_sha256"] == SHA
    assert (folder / "comment.md").read_text() == "## review body\n"


async def test_a_registry_that_is_down_is_recorded_and_said_and_the_review_stands(tmp_path: Path) -> None:
    dead = OciRegistry(f"127.0.0.1:{free_port()}", insecure=True, backoff=Backoff(attempts=2, first_delay=0.01))

    record, section = await review(tmp_path, dead)._publish(REQ, PR, DONE, kept(tmp_path), "body")

    churn = record.models["churn"]
    assert churn.artifact is None and churn.variant_sha256 == SHA
    assert churn.artifact_error is not None and f"registry {dead.host} unreachable" in churn.artifact_error
    assert section is not None and "was **not published**" in section and dead.host in section
    assert "A deploy publishes it from the kept files" in section


async def test_without_a_registry_nothing_is_published_or_said(tmp_path: Path) -> None:
    before = kept(tmp_path)
    record, section = await review(tmp_path, None)._publish(REQ, PR, DONE, before, "body")
    assert record == before and section is None
