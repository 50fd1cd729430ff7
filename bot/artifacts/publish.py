"""Publishing a reviewed variant: the exact kept bytes, annotated, with the review's evidence as a referrer.

The review publishes when it keeps a variant (``bot.review.service``); the deploy makes sure the
reference it pins is in the registry and publishes from the same kept files when the review could
not (``bot.deploy.artifact``). Both describe the artifact with one ``Publication``, so what is pushed
(and its digest) does not depend on who pushed it. The sandbox never sees the registry: only the bot
pushes, with the operator's credentials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bot.artifacts.registry import ModelArtifact, OciRegistry, RegistryError
from contract import oci

EVIDENCE_DIR = ".evidence"  # inside a kept run: <model>/report.json and <model>/comment.md
REPORT, COMMENT = "report.json", "comment.md"


def kept_run(data_dir: Path, repo: str, head_sha: str) -> Path:
    """Where a review keeps the variants of ``head_sha`` (``data_dir/artifacts/<owner>--<repo>/<sha>``)."""
    return data_dir / "artifacts" / repo.replace("/", "--") / head_sha


def kept_file(data_dir: Path, repo: str, head_sha: str, relative: str) -> Path | None:
    """The kept variant file ``relative`` (``<model>/<file>``), or None when it is not (or no longer) there."""
    parts = PurePosixPath(relative).parts
    if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
        return None
    path = kept_run(data_dir, repo, head_sha).joinpath(*parts)
    return path if path.is_file() and not path.is_symlink() else None


@dataclass(frozen=True)
class Publication:
    """What one pushed model artifact says about itself (its OCI and Modelship annotations)."""

    model_repo: str  # owner/name
    source_url: str  # the model repository's html_url
    model: str
    revision: str  # the reviewed head commit: the bytes came from it
    variant: str
    file: Path  # the kept bytes
    file_sha256: str  # the bot's own hash of them (bot.review.integrity)
    created: str  # RFC 3339, recorded with the review so a later push gives the same digest
    pull_request: int | None = None
    verdict: str | None = None  # the review's gate verdict: passed | failed

    def annotations(self) -> dict[str, str]:
        out = {oci.SOURCE: self.source_url}
        if self.pull_request is not None:
            out[oci.PULL_REQUEST] = str(self.pull_request)
        if self.verdict is not None:
            out[oci.VERDICT] = self.verdict
        return out


async def publish(
    registry: OciRegistry, publication: Publication, evidence: Mapping[str, bytes] | None = None
) -> ModelArtifact:
    """Push the kept file (an existing digest uploads nothing), then attach ``evidence`` as a referrer.

    RegistryError when the registry refuses or stays unreachable after the registry's back-off.
    """
    p = publication
    artifact = await registry.push_model(
        p.file,
        model_repo=p.model_repo,
        model=p.model,
        revision=p.revision,
        variant=p.variant,
        annotations=p.annotations(),
        created=p.created,
        file_sha256=p.file_sha256,
    )
    if evidence:
        await registry.attach_evidence(
            artifact,
            evidence,
            annotations={oci.CREATED: p.created, oci.MODEL: p.model, oci.REVISION: p.revision},
        )
    return artifact


def evidence_of(run: Path, model: str) -> dict[str, bytes]:
    """The evidence a review wrote for ``model`` next to its kept files (empty when there is none)."""
    folder = run / EVIDENCE_DIR / model
    return {name: (folder / name).read_bytes() for name in (REPORT, COMMENT) if (folder / name).is_file()}


def write_evidence(run: Path, model: str, report: Mapping[str, Any], comment: str) -> dict[str, bytes]:
    """Keep the review's evidence for ``model`` with its kept files (deploy attaches it if it publishes)."""
    files = {REPORT: json.dumps(report, indent=2, sort_keys=True, default=str).encode(), COMMENT: comment.encode()}
    folder = run / EVIDENCE_DIR / model
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def failure_reason(exc: Exception) -> str:
    """One line, safe for a PR comment: the registry's answer, never credentials (they are not in it)."""
    text = " ".join(str(exc).split())
    return text[:300] if isinstance(exc, RegistryError | oci.ArtifactError) else f"{type(exc).__name__}: {text[:300]}"
