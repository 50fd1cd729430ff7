"""Fetch a model artifact by digest and refuse anything that does not match what the values pin.

What a model server runs before it serves (``modelship fetch-model``): the registry is not trusted
either. The manifest's bytes must hash to the pinned digest, the layer's bytes to the digest the
manifest names, and the one file in the layer to the pinned file sha256. Any mismatch is an
``ArtifactError`` whose message says which of the three did not match, and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from bot.artifacts import oci
from bot.artifacts.registry import OciRegistry


def fetch_model(registry: OciRegistry, reference: str, file_sha256: str, dest: Path) -> Path:
    """Download ``reference`` (which must carry a digest), verify it, write the model under ``dest``."""
    ref = oci.Reference.parse(reference)
    if ref.digest is None:
        raise oci.ArtifactError(f"{reference}: a model is fetched by digest (…@sha256:…), never by tag")
    body = registry.manifest_bytes(ref)
    if oci.sha256_digest(body) != ref.digest:
        raise oci.ArtifactError(
            f"{reference}: the registry's manifest hashes to {oci.sha256_digest(body)}, not the pinned digest"
        )
    manifest = json.loads(body)
    layers = [layer for layer in manifest.get("layers", []) if layer.get("mediaType") == oci.LAYER_MEDIA_TYPE]
    if len(layers) != 1:
        raise oci.ArtifactError(f"{reference}: expected one model layer, found {len(layers)}")
    layer = layers[0]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        tar_path = Path(tmp) / "layer.tar"
        if registry.download_blob(ref, layer["digest"], tar_path) != layer["digest"]:
            raise oci.ArtifactError(f"{reference}: layer {layer['digest']} does not hash to its digest")
        return _extract_model(tar_path, file_sha256, dest, reference)


def _extract_model(tar_path: Path, file_sha256: str, dest: Path, reference: str) -> Path:
    with tarfile.open(tar_path) as tar:
        files = [m for m in tar.getmembers() if m.isfile()]
        others = [m for m in tar.getmembers() if not (m.isfile() or m.isdir())]
        if others or len(files) != 1:
            raise oci.ArtifactError(f"{reference}: the layer must hold exactly one regular file (and no links)")
        member = files[0]
        path = PurePosixPath(member.name)
        if path.parent != PurePosixPath(oci.MODEL_DIR) or path.name in {"", ".", ".."}:
            raise oci.ArtifactError(f"{reference}: unexpected path {member.name!r} in the layer")
        source = tar.extractfile(member)
        assert source is not None
        sha = hashlib.sha256()
        fd, partial = tempfile.mkstemp(dir=dest, prefix=".model-")
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                sha.update(chunk)
                out.write(chunk)
    if sha.hexdigest() != file_sha256:
        os.unlink(partial)
        raise oci.ArtifactError(
            f"{reference}: model file sha256 {sha.hexdigest()} does not match the pinned {file_sha256}"
        )
    target = dest / path.name
    os.replace(partial, target)
    os.chmod(target, 0o444)
    return target
