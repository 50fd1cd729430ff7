"""The artifact a deploy pins: the review's published reference, checked in the registry before any commit.

With a registry (MODELSHIP_REGISTRY) a deploy writes ``model.artifact: <registry>/<repo>@sha256:<digest>``
next to the file's sha256, and never a reference the registry does not have: the manifest is looked up by
digest (HEAD), and when it is missing (the review's push failed, or the registry lost it) it is pushed
again from the files the review kept. An existing digest uploads nothing, so a redelivered merge pushes
nothing twice. The registry's own back-off retries an outage inside the job; after that the deploy fails
with a DeployFailure that says what failed, and nothing is committed.

Without a registry the reference is left without an artifact (the chart's other source fetches the model;
see ``docs/architecture.md``): today's behaviour, unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from bot.artifacts.publish import Publication, evidence_of, failure_reason, kept_file, kept_run, publish
from bot.artifacts.registry import OciRegistry
from bot.deploy.manifest import ModelRef
from bot.deploy.targets import DeployFailure
from bot.store.reviews import ReviewedModel
from contract import oci

log = logging.getLogger(__name__)


class ArtifactPins:
    """Pins ModelRefs to published artifacts (or leaves them as they are when there is no registry)."""

    def __init__(self, registry: OciRegistry | None, *, data_dir: Path, web_url: str) -> None:
        self.registry = registry
        self.data_dir = data_dir
        self.web_url = web_url.rstrip("/")

    async def reviewed(self, ref: ModelRef, reviewed: ReviewedModel | None, *, review_sha: str | None) -> ModelRef:
        """``ref`` (the review's kept variant) with the artifact it ships, present in the registry."""
        if self.registry is None:
            return ref
        if reviewed is None or not reviewed.variant_artifact or ref.variant != reviewed.variant:
            # Nothing kept to publish (the original model file): the chart fetches it from the repository.
            return replace(ref, artifact="")
        if reviewed.artifact and await self._present(reviewed.artifact, ref):
            return replace(ref, artifact=reviewed.artifact)
        if review_sha is None:
            raise DeployFailure(
                f"model `{ref.name}`: the reviewed `{ref.variant}` is not in the registry and no review says "
                "which kept files hold it; nothing was committed"
            )
        return replace(ref, artifact=await self._publish(ref, reviewed, review_sha))

    async def present(self, ref: ModelRef, env: str) -> ModelRef:
        """A promoted or restored ref: its artifact must be in the registry (DeployFailure otherwise)."""
        if self.registry is not None and ref.artifact and not await self._present(ref.artifact, ref):
            raise DeployFailure(
                f"model `{ref.name}`: `{ref.artifact}` is not in the registry {self.registry.name}, so it "
                f"cannot be deployed to `{env}`; nothing was committed"
            )
        return ref

    async def _present(self, reference: str, ref: ModelRef) -> bool:
        assert self.registry is not None
        try:
            if oci.Reference.parse(reference).registry != self.registry.host:
                return False  # published to another registry than this server's: publish here
            return await self.registry.has_manifest(reference)
        except oci.ArtifactError as exc:
            raise self._failed(ref, exc) from None

    async def _publish(self, ref: ModelRef, reviewed: ReviewedModel, review_sha: str) -> str:
        assert self.registry is not None and reviewed.variant_artifact is not None
        file = kept_file(self.data_dir, ref.repository, review_sha, reviewed.variant_artifact)
        if file is None or not reviewed.variant_sha256:
            raise DeployFailure(
                f"model `{ref.name}`: the reviewed `{ref.variant}` was not published and its kept file "
                f"`{reviewed.variant_artifact}` is gone; comment `/modelship optimize` to review it again "
                "(nothing was committed)"
            )
        publication = Publication(
            model_repo=ref.repository,
            source_url=f"{self.web_url}/{ref.repository}",
            model=ref.name,
            revision=review_sha,
            variant=ref.variant,
            file=file,
            file_sha256=reviewed.variant_sha256,
            created=reviewed.artifact_created or "1970-01-01T00:00:00Z",
            pull_request=ref.source_pr,
            verdict="passed" if reviewed.gates_passed else "failed",
        )
        evidence = evidence_of(kept_run(self.data_dir, ref.repository, review_sha), ref.name)
        try:
            artifact = await publish(self.registry, publication, evidence)
        except (oci.ArtifactError, OSError) as exc:
            raise self._failed(ref, exc) from None
        log.info("deploy: published %s %s as %s", ref.name, ref.variant, artifact.reference)
        return artifact.reference

    def _failed(self, ref: ModelRef, exc: Exception) -> DeployFailure:
        # The cause first: a GitHub Deployment status keeps only the first 140 characters.
        assert self.registry is not None
        return DeployFailure(
            f"{failure_reason(exc)} — the artifact of `{ref.name}` ({ref.variant}) could not be found in or "
            f"published to the registry `{self.registry.name}`, so nothing was committed; once the registry "
            "is back, comment `/modelship deploy <env>` on this PR"
        )
