"""Fetch a model artifact by digest and refuse anything that does not match what the values pin.

What the model server does before it serves (``modelship serve-model --artifact``, or ``modelship
fetch-model`` alone): the registry is not trusted either. The manifest's bytes must hash to the pinned
digest, the layer's bytes to the digest the manifest names, and the one file in the layer to the pinned
file sha256. Any mismatch is an ``ArtifactError`` saying which of the three did not match, and nothing
is left in the destination. Imports no ``bot``: this runs in the model server's pod.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import oras.provider
import requests

from contract import oci


class Blobs(Protocol):
    """The two registry reads a fetch needs (the bot's OciRegistry and RegistryReader both have them)."""

    def manifest_bytes(self, ref: oci.Reference) -> bytes: ...

    def download_blob(self, ref: oci.Reference, digest: str, path: Path) -> str: ...


class _Client(oras.provider.Registry):
    # oras-py's own retry sleeps up to 83 s per call; a pod start wants a prompt, readable failure.
    do_request = oras.provider.Registry.do_request.__wrapped__


class RegistryReader:
    """Reads manifests and blobs with oras-py's session and auth (basic, or bearer-token challenges)."""

    def __init__(
        self, host: str, *, insecure: bool = False, username: str | None = None, password: str | None = None
    ) -> None:
        self.host = host
        self._scheme = "http" if insecure else "https"
        self._client = _Client(hostname=host, insecure=insecure)
        if username is not None and password is not None:
            self._client.set_basic_auth(username, password)

    def manifest_bytes(self, ref: oci.Reference) -> bytes:
        response = self._get(ref, f"manifests/{ref.digest or ref.tag}", {"Accept": oci.MANIFEST_MEDIA_TYPE})
        return response.content

    def download_blob(self, ref: oci.Reference, digest: str, path: Path) -> str:
        response = self._get(ref, f"blobs/{digest}", stream=True)
        sha = hashlib.sha256()
        with path.open("wb") as out:
            for chunk in response.iter_content(1 << 20):
                sha.update(chunk)
                out.write(chunk)
        return "sha256:" + sha.hexdigest()

    def _get(
        self, ref: oci.Reference, path: str, headers: dict[str, str] | None = None, *, stream: bool = False
    ) -> requests.Response:
        url = f"{self._scheme}://{self.host}/v2/{ref.repository}/{path}"
        try:
            response: requests.Response = self._client.do_request(url, "GET", headers=headers or {}, stream=stream)
        except requests.RequestException as exc:
            raise oci.ArtifactError(f"registry {self.host} unreachable: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise oci.ArtifactError(f"GET {ref} {path}: registry answered {response.status_code}")
        return response


@dataclass(frozen=True)
class RegistryLogin:
    """How the server reaches the registry (operator settings; the password only ever from a file)."""

    insecure: bool = False
    username: str | None = None
    password_file: Path | None = None

    def reader(self, reference: str) -> RegistryReader:
        password = self.password_file.read_text().strip() if self.password_file else None
        host = oci.Reference.parse(reference).registry
        return RegistryReader(host, insecure=self.insecure, username=self.username, password=password)


def fetch_model(registry: Blobs, reference: str, file_sha256: str, dest: Path) -> Path:
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
