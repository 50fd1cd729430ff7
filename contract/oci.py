"""Pure OCI builders for model artifacts: the layer, the image config, the manifests, the annotations.

A model artifact is also a valid image (one tar layer holding the model file at ``/model/<name>``,
an image config whose ``rootfs.diff_ids`` names that layer), so the same digest can be pulled by a
plain ``podman pull``, mounted as a Kubernetes image volume, or used as a KServe ``oci://`` modelcar.
Everything here takes values and returns values; the registry client moves the bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

MODEL_DIR = "model"  # the directory of the image that holds the model file
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
GZIP_LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
EVIDENCE_ARTIFACT_TYPE = "application/vnd.modelship.review.v1+json"
EMPTY_CONFIG_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"

# Annotation keys: the OCI pre-defined ones, then Modelship's own (reverse-DNS, as the spec asks).
SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
CREATED = "org.opencontainers.image.created"
TITLE = "org.opencontainers.image.title"
MODEL = "dev.modelship.model"
VARIANT = "dev.modelship.variant"
FILE_SHA256 = "dev.modelship.file.sha256"
FILE_NAME = "dev.modelship.file.name"
PULL_REQUEST = "dev.modelship.pull-request"
VERDICT = "dev.modelship.review.verdict"

_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class ArtifactError(Exception):
    """An artifact cannot be built, found or trusted; the message says which and why."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (models can be larger than memory wants)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes we push for a JSON document: the digest is of exactly these bytes."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def tag_for(model: str, revision: str, variant: str) -> str:
    """A valid OCI tag (``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``) naming model, revision and variant."""
    raw = f"{model}-{revision[:12]}-{variant}"
    tag = _TAG_BAD.sub("-", raw).lstrip(".-")[:128]
    if not tag:
        raise ArtifactError(f"cannot make an OCI tag from model {model!r} variant {variant!r}")
    return tag


def repository_for(prefix: str, model_repo: str) -> str:
    """``<prefix>/<owner>/<repo>`` lower-cased, as the distribution spec's repository grammar wants."""
    name = "/".join(p for p in (prefix.strip("/"), model_repo.lower()) if p)
    if not _REPOSITORY.match(name):
        raise ArtifactError(f"{name!r} is not a valid OCI repository name (MODELSHIP_REGISTRY path or repo name)")
    return name


@dataclass(frozen=True)
class Layer:
    digest: str  # of the tar
    size: int  # of the tar
    file_sha256: str  # hex, of the model file inside it


def write_model_layer(source: BinaryIO, size: int, filename: str, out: BinaryIO) -> Layer:
    """Write the layer tar (``model/<filename>``, read-only, owned by root, mtime 0) in one pass.

    Deterministic: the same model bytes always give the same layer digest, so a re-push uploads nothing.
    The tar is framed by hand (headers from ``tarfile``, the body copied in 1 MiB chunks) so the file
    is read once for both hashes: tarfile's writer moves 10 KiB at a time, which halved the push speed.
    """
    name = PurePosixPath(filename).name
    if not name or name in {".", ".."}:
        raise ArtifactError(f"model file name {filename!r} cannot be stored in an artifact")
    layer, model = hashlib.sha256(), hashlib.sha256()
    written = 0

    def emit(data: bytes | memoryview) -> None:
        nonlocal written
        layer.update(data)
        out.write(data)
        written += len(data)

    emit(_header(MODEL_DIR, 0, 0o755, tarfile.DIRTYPE))
    emit(_header(f"{MODEL_DIR}/{name}", size, 0o444, tarfile.REGTYPE))
    copied = 0
    for chunk in iter(lambda: source.read(1 << 20), b""):
        model.update(chunk)
        emit(chunk)
        copied += len(chunk)
    if copied != size:
        raise ArtifactError(f"model file {filename!r} changed while it was read ({copied} of {size} bytes)")
    emit(bytes(-size % tarfile.BLOCKSIZE) + bytes(2 * tarfile.BLOCKSIZE))  # body padding, end of archive
    emit(bytes(-written % tarfile.RECORDSIZE))
    return Layer("sha256:" + layer.hexdigest(), written, model.hexdigest())


def _header(name: str, size: int, mode: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = size, mode, kind
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def image_config(layer_digest: str, created: str) -> bytes:
    """A minimal image config: no entrypoint (the model server image runs; this one only carries bytes)."""
    return canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": created,
            "config": {"Labels": {}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    )


def model_manifest(config: Descriptor, layer: Descriptor, annotations: Mapping[str, str]) -> bytes:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.to_json(),
            "layers": [layer.to_json()],
            "annotations": dict(annotations),
        }
    )


def evidence_manifest(subject: Descriptor, files: list[Descriptor], annotations: Mapping[str, str]) -> bytes:
    """An OCI 1.1 artifact manifest whose ``subject`` is the model: what the referrers API lists."""
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": EVIDENCE_ARTIFACT_TYPE,
            "config": Descriptor(EMPTY_CONFIG_MEDIA_TYPE, sha256_digest(EMPTY_CONFIG), len(EMPTY_CONFIG)).to_json(),
            "layers": [f.to_json() for f in files],
            "subject": subject.to_json(),
            "annotations": dict(annotations),
        }
    )


def referrers_tag(subject_digest: str) -> str:
    """The referrers tag schema's fallback tag for registries without the referrers API (``sha256-<hex>``)."""
    if not _DIGEST.match(subject_digest):
        raise ArtifactError(f"{subject_digest!r} is not a sha256 digest")
    return subject_digest.replace(":", "-")


def add_referrer(index: Mapping[str, Any] | None, referrer: Descriptor) -> bytes | None:
    """The fallback tag's index with ``referrer`` in it, or None when it is already listed (idempotent)."""
    manifests = list((index or {}).get("manifests", []))
    if any(m.get("digest") == referrer.digest for m in manifests):
        return None
    manifests.append(referrer.to_json())
    return canonical({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests})


@dataclass(frozen=True)
class Reference:
    """``registry/repository@sha256:…`` (or ``:tag``), parsed."""

    registry: str
    repository: str
    digest: str | None = None
    tag: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        name, _, digest = text.partition("@")
        host, _, path = name.partition("/")
        tag = None
        if ":" in path.rsplit("/", 1)[-1]:
            path, _, tag = path.rpartition(":")
        if not host or not path or not _REPOSITORY.match(path):
            raise ArtifactError(f"{text!r} is not a registry/repository[@sha256:…] reference")
        if digest and not _DIGEST.match(digest):
            raise ArtifactError(f"{text!r}: the digest must be sha256:<64 hex>")
        return cls(host, path, digest or None, tag)

    def at(self, digest: str) -> str:
        return f"{self.registry}/{self.repository}@{digest}"

    def __str__(self) -> str:
        if self.digest:
            return self.at(self.digest)
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "")
