"""What a deploy reads from the model repository: its ``.modelship.yml`` at a commit, the models a PR
changes, and the immutable reference of a model version (the review's sha256 and variant, or the hash
of the bytes at a commit: hashed here, never loaded).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config.repo import ModelSpec, RepoConfig, RepoConfigError
from bot.deploy.manifest import ModelRef
from bot.deploy.targets import DeployFailure, changed_models, choose_variant
from bot.github.contents import ContentsError, read_file, read_repo_config
from bot.store.reviews import reviewed_model_at
from contract import lfs

if TYPE_CHECKING:
    from bot.deploy.artifact import ArtifactPins


class ModelRepository:
    """Reads of model repositories (through the caller's installation client) and of their reviews."""

    def __init__(self, engine: AsyncEngine, *, deploy_root: str, pins: ArtifactPins | None = None) -> None:
        self.engine = engine
        self.deploy_root = deploy_root  # MODELSHIP_DEPLOY_ROOT: deploy.path_template is checked against it
        self.pins = pins  # the registry's artifacts (bot.deploy.artifact); None: the file's sha256 alone

    async def config_at(self, gh: GitHubAPI, repo: str, ref: str) -> RepoConfig | None:
        config = await read_repo_config(gh, repo, ref, deploy_root=self.deploy_root)
        if isinstance(config, RepoConfigError):
            raise config
        return config

    async def model_ref(
        self,
        gh: GitHubAPI,
        repo: str,
        spec: ModelSpec,
        *,
        revision: str,
        review_sha: str | None,
        number: int | None,
        sequence: int,
        variant: str | None = None,
    ) -> tuple[ModelRef, dict[str, float | int | str]]:
        """The immutable reference: sha256 and variant from the review when there is one, else the
        sha256 of the bytes at ``revision`` (hashed here, never loaded); with a registry, the reviewed
        variant's artifact too, checked to be in the registry (DeployFailure saying why otherwise)."""
        reviewed, reviewed_sha = None, None
        if number is not None and (found := await reviewed_model_at(self.engine, repo, number, review_sha, spec.name)):
            reviewed_sha, reviewed = found
        sha256 = reviewed.model_sha256 if reviewed is not None and reviewed.model_path == spec.path else None
        if not sha256:
            try:
                data = await read_file(gh, repo, spec.path, revision)
            except ContentsError as exc:
                raise DeployFailure(f"{exc} at {revision[:7]}") from exc
            if data is None:
                raise DeployFailure(f"`{spec.path}` (model `{spec.name}`) does not exist at {revision[:7]}")
            if (pointer := lfs.parse_pointer(data)) is not None:
                # The contents API answers with the pointer: never pin its hash as if it were the model.
                raise DeployFailure(
                    f"`{spec.path}` (model `{spec.name}`) is stored in Git LFS at {revision[:7]} (object "
                    f"{pointer.oid[:12]}…, {pointer.size} bytes): a deploy pins the sha256 a review computed from "
                    "the object itself; comment `/modelship evaluate` on its pull request first"
                )
            sha256 = hashlib.sha256(data).hexdigest()
        chosen, variant_sha256 = choose_variant(
            variant,
            reviewed.variant if reviewed is not None else None,
            reviewed.variant_sha256 if reviewed is not None else None,
            model=spec.name,
            revision=revision,
        )
        ref = ModelRef(
            name=spec.name,
            repository=repo,
            revision=revision,
            path=spec.path,
            sha256=str(variant_sha256 or sha256),
            variant=chosen,
            sequence=sequence,
            source_pr=number,
        )
        if self.pins is not None:
            ref = await self.pins.reviewed(ref, reviewed, review_sha=reviewed_sha)
        return ref, dict(reviewed.metrics) if reviewed is not None else {}

    async def changed_models(self, gh: GitHubAPI, repo: str, number: int, config: RepoConfig) -> list[ModelSpec]:
        files = [f["filename"] async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")]
        return changed_models(config, files)
