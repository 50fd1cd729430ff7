"""A deploy pins only artifacts the registry has: the review's reference when it is there, a push from the
review's kept files when it is not, and a failure that says what failed when the registry cannot be reached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.artifacts.publish import EVIDENCE_DIR, kept_run
from bot.artifacts.registry import Backoff, OciRegistry
from bot.deploy.artifact import ArtifactPins
from bot.deploy.manifest import ModelRef
from bot.deploy.targets import DeployFailure
from bot.store.reviews import ReviewedModel
from contract import oci
from devkit.processes import free_port

REPO = "acme/churn-model"
HEAD = "ab" * 20
MERGE = "cd" * 20
BYTES = b"onnx bytes of the optimized variant"
SHA = oci.sha256_digest(BYTES).removeprefix("sha256:")


def kept(data_dir: Path) -> ReviewedModel:
    run = kept_run(data_dir, REPO, HEAD)
    (run / "churn").mkdir(parents=True)
    (run / "churn" / "model.onnx").write_bytes(BYTES)
    (run / EVIDENCE_DIR / "churn").mkdir(parents=True)
    (run / EVIDENCE_DIR / "churn" / "report.json").write_text(json.dumps({"verdict": "passed"}))
    (run / EVIDENCE_DIR / "churn" / "comment.md").write_text("## churn\nbetter\n")
    return ReviewedModel(
        status="compared",
        gates_passed=True,
        model_path="models/churn.skops",
        model_sha256="0" * 64,
        variant="onnx_optimized",
        variant_sha256=SHA,
        variant_artifact="churn/model.onnx",
        artifact_created="2026-12-06T10:00:00Z",
    )


def ref() -> ModelRef:
    return ModelRef("churn", REPO, MERGE, "models/churn.skops", SHA, "onnx_optimized", 100, 7)


async def test_an_unpublished_review_is_published_from_its_kept_files_once(
    registry: OciRegistry, tmp_path: Path
) -> None:
    reviewed = kept(tmp_path)  # the review's push failed: no reference recorded
    pins = ArtifactPins(registry, data_dir=tmp_path, web_url="https://github.example")

    pinned = await pins.reviewed(ref(), reviewed, review_sha=HEAD)

    assert pinned.artifact.startswith(f"{registry.host}/{registry.prefix}/acme/churn-model@sha256:")
    assert await registry.has_manifest(pinned.artifact)
    [evidence] = await registry.referrers(pinned.artifact)
    assert evidence["artifactType"] == oci.EVIDENCE_ARTIFACT_TYPE
    # A redelivered merge: the same reference, and the registry is asked, not pushed to.
    again = await pins.reviewed(ref(), reviewed, review_sha=HEAD)
    assert again.artifact == pinned.artifact
    assert len(await registry.referrers(pinned.artifact)) == 1


async def test_the_reviews_reference_is_pinned_when_the_registry_has_it(registry: OciRegistry, tmp_path: Path) -> None:
    reviewed = kept(tmp_path)
    published = await registry.push_model(
        tmp_path / "artifacts" / "acme--churn-model" / HEAD / "churn" / "model.onnx",
        model_repo=REPO,
        model="churn",
        revision=HEAD,
        variant="onnx_optimized",
    )
    pins = ArtifactPins(registry, data_dir=tmp_path, web_url="https://github.example")
    with_ref = ReviewedModel(**{**reviewed.__dict__, "artifact": published.reference})

    pinned = await pins.reviewed(ref(), with_ref, review_sha=HEAD)

    assert pinned.artifact == published.reference


async def test_a_reference_the_registry_lost_is_pushed_again_from_the_kept_files(
    registry: OciRegistry, tmp_path: Path
) -> None:
    reviewed = kept(tmp_path)
    lost = f"{registry.host}/{registry.prefix}/acme/churn-model@sha256:{'e' * 64}"
    pins = ArtifactPins(registry, data_dir=tmp_path, web_url="https://github.example")

    pinned = await pins.reviewed(ref(), ReviewedModel(**{**reviewed.__dict__, "artifact": lost}), review_sha=HEAD)

    assert pinned.artifact != lost and await registry.has_manifest(pinned.artifact)


async def test_a_registry_that_stays_down_fails_the_deploy_naming_it(tmp_path: Path) -> None:
    dead = OciRegistry(f"127.0.0.1:{free_port()}", insecure=True, backoff=Backoff(attempts=2, first_delay=0.01))
    pins = ArtifactPins(dead, data_dir=tmp_path, web_url="https://github.example")

    with pytest.raises(DeployFailure) as failure:
        await pins.reviewed(ref(), kept(tmp_path), review_sha=HEAD)

    message = str(failure.value)
    assert dead.host in message and "unreachable" in message and "nothing was committed" in message


async def test_kept_files_that_are_gone_fail_the_deploy_and_say_how_to_recover(
    registry: OciRegistry, tmp_path: Path
) -> None:
    reviewed = kept(tmp_path)
    (kept_run(tmp_path, REPO, HEAD) / "churn" / "model.onnx").unlink()
    pins = ArtifactPins(registry, data_dir=tmp_path, web_url="https://github.example")

    with pytest.raises(DeployFailure, match="is gone; comment `/modelship optimize`"):
        await pins.reviewed(ref(), reviewed, review_sha=HEAD)


async def test_without_a_registry_the_reference_is_left_as_it_is(tmp_path: Path) -> None:
    pins = ArtifactPins(None, data_dir=tmp_path, web_url="https://github.example")
    assert await pins.reviewed(ref(), kept(tmp_path), review_sha=HEAD) == ref()


async def test_a_promoted_reference_missing_from_the_registry_is_refused(registry: OciRegistry, tmp_path: Path) -> None:
    pins = ArtifactPins(registry, data_dir=tmp_path, web_url="https://github.example")
    missing = ModelRef(**{**ref().__dict__, "artifact": f"{registry.host}/x/y@sha256:{'f' * 64}"})
    with pytest.raises(DeployFailure, match="is not in the registry"):
        await pins.present(missing, "production")
