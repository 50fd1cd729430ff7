"""The OCI registry edge: push a model artifact and its review evidence, read them back by digest.

Built on oras-py (blob existence checks, monolithic/chunked blob uploads, registry auth including
bearer-token challenges). Two places where it falls short, and where we speak the distribution API
through its own request method instead:

- ``OrasClient.push`` re-serialises the manifest (``requests``' ``json=``), so the digest the registry
  computes is not one we can predict; we PUT our own canonical bytes so that a re-push of the same model
  is recognised by a HEAD on its digest and uploads nothing.
- it cannot PUT an image index, which the referrers tag schema needs on registries without the OCI 1.1
  referrers API (the CNCF Distribution 2.8 registry Debian ships is one).

oras-py's ``do_request`` also retries every error five times with sleeps of up to 83 s; we use the
undecorated method and retry ourselves (``Backoff``), so a registry outage ends in a bounded time.
Blocking (requests): every public method of ``OciRegistry`` runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import oras.provider
import requests

from contract import oci

log = logging.getLogger(__name__)
T = TypeVar("T")


class RegistryError(oci.ArtifactError):
    """The registry refused or could not be reached; ``transient`` says whether a retry can help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4
    first_delay: float = 0.5
    factor: float = 3.0

    def delays(self) -> list[float]:
        return [self.first_delay * self.factor**i for i in range(self.attempts - 1)]


@dataclass(frozen=True)
class ModelArtifact:
    """A pushed model: where it is, by digest, and the sha256 of the model file inside it."""

    reference: str  # registry/repository@sha256:<manifest digest>
    tag: str
    manifest_digest: str
    manifest_size: int
    file_name: str
    file_sha256: str
    uploaded_bytes: int  # 0 when the registry already had every blob

    @property
    def subject(self) -> oci.Descriptor:
        return oci.Descriptor(oci.MANIFEST_MEDIA_TYPE, self.manifest_digest, self.manifest_size)


class _Client(oras.provider.Registry):
    # The undecorated request: oras-py's own retry sleeps up to 83 s per call (see the module docstring).
    do_request = oras.provider.Registry.do_request.__wrapped__


class OciRegistry:
    """One registry host (``MODELSHIP_REGISTRY``), with optional basic credentials from the operator."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        prefix: str = "",
        backoff: Backoff = Backoff(),
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.prefix = prefix
        self.backoff = backoff
        self._scheme = "http" if insecure else "https"
        self._client = _Client(hostname=host, insecure=insecure)
        self._timeout = timeout
        if username is not None and password is not None:
            self._client.auth.set_basic_auth(username, password)

    @property
    def name(self) -> str:
        """``host[/prefix]``, as MODELSHIP_REGISTRY names it (no credentials)."""
        return f"{self.host}/{self.prefix}" if self.prefix else self.host

    # ---- the bot's calls (async, off the event loop) ----

    async def push_model(self, model_file: Path, **kwargs: Any) -> ModelArtifact:
        return await asyncio.to_thread(self._retrying, lambda: self._push_model(model_file, **kwargs))

    async def attach_evidence(self, artifact: ModelArtifact, files: Mapping[str, bytes], **kwargs: Any) -> str:
        return await asyncio.to_thread(self._retrying, lambda: self._attach_evidence(artifact, files, **kwargs))

    async def ping(self) -> None:
        """The registry answers the distribution API (``GET /v2/``) and accepts our credentials, or RegistryError."""
        await asyncio.to_thread(self._retrying, self._ping)

    async def has_manifest(self, reference: str) -> bool:
        return await asyncio.to_thread(self._retrying, lambda: self._has_manifest(oci.Reference.parse(reference)))

    async def referrers(self, reference: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._retrying, lambda: self._referrers(oci.Reference.parse(reference)))

    async def image_digest(self, image: str) -> str | None:
        """The manifest digest ``image`` (a tag or a digest on this registry) names now; None when it is not
        on this registry or not there (what a reused sandbox result is keyed by: bot.sandbox.reuse)."""
        try:
            ref = oci.Reference.parse(image)
        except oci.ArtifactError:
            return None
        if ref.registry != self.host:
            return None
        if ref.digest:
            return ref.digest
        if not ref.tag:
            ref = oci.Reference(ref.registry, ref.repository, None, "latest")
        return await asyncio.to_thread(self._retrying, lambda: self._resolve(ref))

    async def push_image_layer(self, base_image: str, layer: Path, diff_id: str, **kwargs: Any) -> str:
        """``base_image`` plus one gzipped tar layer; its ``registry/repository@sha256:…`` (how review inputs
        reach a Kubernetes sandbox: the kubelet pulls it). Untagged into the base's repository, or with
        ``repository=``/``tag=`` tagged into that one (the base's blobs mounted there, not copied)."""
        return await asyncio.to_thread(
            self._retrying, lambda: self._push_image_layer(base_image, layer, diff_id, **kwargs)
        )

    async def delete_manifest(self, reference: str) -> bool:
        """DELETE a manifest by digest (and so every tag on it); False when it was already gone.

        The registry must allow deletes (Distribution: ``storage.delete.enabled: true``); the blobs stay
        until the registry's own garbage collection (``registry garbage-collect``) removes unreferenced ones.
        """
        return await asyncio.to_thread(self._retrying, lambda: self._delete_manifest(oci.Reference.parse(reference)))

    async def tags(self, repository: str) -> list[str]:
        """The tags of ``repository`` on this registry (empty when it does not exist)."""
        return await asyncio.to_thread(self._retrying, lambda: self._tags(repository))

    async def resolve(self, reference: str) -> str | None:
        """The manifest digest a ``registry/repository:tag`` names, or None when there is none."""
        return await asyncio.to_thread(self._retrying, lambda: self._resolve(oci.Reference.parse(reference)))

    # ---- blocking implementation ----

    def _push_model(
        self,
        model_file: Path,
        *,
        model_repo: str,
        model: str,
        revision: str,
        variant: str,
        annotations: Mapping[str, str] = {},
        created: str = "1970-01-01T00:00:00Z",
        file_name: str | None = None,
        file_sha256: str | None = None,
    ) -> ModelArtifact:
        """Push ``model_file``; with ``file_sha256`` (the bot hashed it already) a re-push reads nothing."""
        ref = oci.Reference(self.host, oci.repository_for(self.prefix, model_repo))
        name = file_name or model_file.name
        tag = oci.tag_for(model, revision, variant)
        if file_sha256 is not None and (found := self._pushed_before(ref, tag, name, file_sha256)):
            return found
        with tempfile.TemporaryDirectory(prefix="modelship-oci-") as tmp:
            layer_path = Path(tmp) / "layer.tar"
            with model_file.open("rb") as src, layer_path.open("wb") as out:
                built = oci.write_model_layer(src, model_file.stat().st_size, name, out)
            if file_sha256 is not None and built.file_sha256 != file_sha256:
                raise oci.ArtifactError(f"{model_file.name} changed after it was hashed: refusing to push it")
            layer = oci.Descriptor(oci.LAYER_MEDIA_TYPE, built.digest, built.size, {oci.TITLE: name})
            config_bytes = oci.image_config(built.digest, created)
            config = oci.Descriptor(oci.CONFIG_MEDIA_TYPE, oci.sha256_digest(config_bytes), len(config_bytes))
            manifest = oci.model_manifest(
                config,
                layer,
                {
                    **annotations,
                    oci.CREATED: created,
                    oci.REVISION: revision,
                    oci.MODEL: model,
                    oci.VARIANT: variant,
                    oci.FILE_NAME: name,
                    oci.FILE_SHA256: built.file_sha256,
                },
            )
            digest = oci.sha256_digest(manifest)
            uploaded = 0
            if not self._has_manifest(oci.Reference(ref.registry, ref.repository, digest)):
                uploaded += self._upload_blob(ref, config, config_bytes=config_bytes)
                uploaded += self._upload_blob(ref, layer, path=layer_path)
            self._put_manifest(ref, tag, manifest, oci.MANIFEST_MEDIA_TYPE)
        return ModelArtifact(ref.at(digest), tag, digest, len(manifest), name, built.file_sha256, uploaded)

    def _pushed_before(self, ref: oci.Reference, tag: str, name: str, sha: str) -> ModelArtifact | None:
        """The artifact under ``tag`` when it already carries exactly this file (its annotations say so).

        Safe to trust for the shortcut: whoever later pulls it verifies the file sha256 (fetch-model).
        """
        response = self._request("GET", self._url(ref, f"manifests/{tag}"), {"Accept": oci.MANIFEST_MEDIA_TYPE})
        if response.status_code == 404:
            return None
        self._check(response, f"GET {ref}:{tag}")
        annotations = response.json().get("annotations", {})
        if annotations.get(oci.FILE_SHA256) != sha or annotations.get(oci.FILE_NAME) != name:
            return None
        digest = oci.sha256_digest(response.content)
        return ModelArtifact(ref.at(digest), tag, digest, len(response.content), name, sha, 0)

    def _attach_evidence(
        self, artifact: ModelArtifact, files: Mapping[str, bytes], *, annotations: Mapping[str, str] = {}
    ) -> str:
        ref = oci.Reference.parse(artifact.reference)
        layers = []
        for name, data in files.items():
            media_type = "application/json" if name.endswith(".json") else "text/markdown"
            layer = oci.Descriptor(media_type, oci.sha256_digest(data), len(data), {oci.TITLE: name})
            self._upload_blob(ref, layer, config_bytes=data)
            layers.append(layer)
        empty = oci.Descriptor(oci.EMPTY_CONFIG_MEDIA_TYPE, oci.sha256_digest(oci.EMPTY_CONFIG), len(oci.EMPTY_CONFIG))
        self._upload_blob(ref, empty, config_bytes=oci.EMPTY_CONFIG)
        manifest = oci.evidence_manifest(artifact.subject, layers, annotations)
        digest = oci.sha256_digest(manifest)
        response = self._put_manifest(ref, digest, manifest, oci.MANIFEST_MEDIA_TYPE)
        if "OCI-Subject" not in response.headers:
            # No referrers API: keep the referrers list under the fallback tag ourselves.
            descriptor = oci.Descriptor(
                oci.MANIFEST_MEDIA_TYPE, digest, len(manifest), annotations or None, oci.EVIDENCE_ARTIFACT_TYPE
            )
            tag = oci.referrers_tag(artifact.manifest_digest)
            index = oci.add_referrer(self._get_json(ref, tag, oci.INDEX_MEDIA_TYPE), descriptor)
            if index is not None:
                self._put_manifest(ref, tag, index, oci.INDEX_MEDIA_TYPE)
        return ref.at(digest)

    def _push_image_layer(
        self,
        base_image: str,
        layer: Path,
        diff_id: str,
        *,
        created_by: str = "modelship review inputs",
        repository: str | None = None,
        tag: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        base = oci.Reference.parse(base_image)
        if base.registry != self.host:
            raise oci.ArtifactError(
                f"{base_image} is not on {self.host}: the image the review inputs are layered on must be in the "
                "registry the bot pushes to (mirror it there)"
            )
        accept = f"{oci.MANIFEST_MEDIA_TYPE}, {oci.DOCKER_MANIFEST_MEDIA_TYPE}"
        response = self._request("GET", self._url(base, f"manifests/{base.digest or base.tag}"), {"Accept": accept})
        self._check(response, f"GET {base}")
        manifest = response.json()
        media_type = manifest.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
        if media_type not in (oci.MANIFEST_MEDIA_TYPE, oci.DOCKER_MANIFEST_MEDIA_TYPE):
            raise oci.ArtifactError(f"{base_image} is a {media_type or 'manifest of unknown type'}, not one image")
        config_desc = manifest["config"]
        response = self._request("GET", self._url(base, f"blobs/{config_desc['digest']}"))
        self._check(response, f"GET the config of {base}")
        if oci.sha256_digest(response.content) != config_desc["digest"]:
            raise oci.ArtifactError(f"the config of {base_image} does not match its digest")
        config = response.json()
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
        config.setdefault("history", []).append({"created_by": created_by})
        if labels:  # e.g. the run's id: each push is its own manifest, deleting one never takes another's
            image_config = config.setdefault("config", {})
            image_config["Labels"] = {**(image_config.get("Labels") or {}), **labels}
        config_bytes = oci.canonical(config)
        layer_type = oci.GZIP_LAYER_MEDIA_TYPE if media_type == oci.MANIFEST_MEDIA_TYPE else oci.DOCKER_LAYER_MEDIA_TYPE
        layer_desc = oci.Descriptor(layer_type, "sha256:" + oci.file_sha256(layer), layer.stat().st_size)
        new_config = oci.Descriptor(config_desc["mediaType"], oci.sha256_digest(config_bytes), len(config_bytes))
        target = base if repository is None else oci.Reference.parse(f"{self.host}/{repository}")
        if target.repository != base.repository:
            for blob in manifest["layers"]:
                self._mount_blob(base, target, oci.Descriptor(blob["mediaType"], blob["digest"], blob["size"]))
        self._upload_blob(target, new_config, config_bytes=config_bytes)
        self._upload_blob(target, layer_desc, path=layer)
        body = oci.canonical(
            {**manifest, "config": new_config.to_json(), "layers": [*manifest["layers"], layer_desc.to_json()]}
        )
        digest = oci.sha256_digest(body)
        self._put_manifest(target, tag or digest, body, media_type)
        return target.at(digest)

    def _mount_blob(self, source: oci.Reference, target: oci.Reference, blob: oci.Descriptor) -> None:
        """Make a blob of ``source`` part of ``target`` without uploading it (a cross-repository mount)."""
        container = self._client.get_container(str(target))
        if self._client.blob_exists(blob.to_json(), container):
            return
        query = f"mount={blob.digest}&from={source.repository}"
        response = self._request("POST", self._url(target, f"blobs/uploads/?{query}"), {"Content-Length": "0"})
        if response.status_code == 201:
            return
        self._check(response, f"mount of {blob.digest} into {target}")
        # 202: this registry started an ordinary upload instead (no mounts): cancel it and copy the bytes.
        if location := response.headers.get("Location"):
            url = location if "://" in location else f"{self._scheme}://{self.host}{location}"
            self._request("DELETE", url)
        copied = self._request("GET", self._url(source, f"blobs/{blob.digest}"), stream=True)
        self._check(copied, f"GET {blob.digest} from {source}")
        with tempfile.NamedTemporaryFile(prefix="modelship-blob-") as fh:
            for chunk in copied.iter_content(1 << 20):
                fh.write(chunk)
            fh.flush()
            self._upload_blob(target, blob, path=Path(fh.name))

    def _delete_manifest(self, ref: oci.Reference) -> bool:
        if ref.digest is None:
            raise oci.ArtifactError(f"{ref}: manifests are deleted by digest, not by tag")
        response = self._request("DELETE", self._url(ref, f"manifests/{ref.digest}"))
        if response.status_code == 404:
            return False
        if response.status_code == 405:
            raise RegistryError(
                f"registry {self.host} does not allow deletes (405 to DELETE {ref}): enable them in its "
                "configuration (Distribution: storage.delete.enabled: true)",
                transient=False,
            )
        self._check(response, f"DELETE {ref}")
        return True

    def _tags(self, repository: str) -> list[str]:
        ref = oci.Reference.parse(f"{self.host}/{repository}")
        url: str | None = self._url(ref, "tags/list?n=1000")
        found: list[str] = []
        while url:
            response = self._request("GET", url)
            if response.status_code == 404:  # NAME_UNKNOWN: nothing was ever pushed there
                return found
            self._check(response, f"GET the tags of {ref}")
            found += response.json().get("tags") or []
            link = response.links.get("next", {}).get("url")  # RFC 5988 pagination
            url = (link if "://" in link else f"{self._scheme}://{self.host}{link}") if link else None
        return found

    def _resolve(self, ref: oci.Reference) -> str | None:
        accept = f"{oci.MANIFEST_MEDIA_TYPE}, {oci.DOCKER_MANIFEST_MEDIA_TYPE}, {oci.INDEX_MEDIA_TYPE}"
        response = self._request("HEAD", self._url(ref, f"manifests/{ref.digest or ref.tag}"), {"Accept": accept})
        if response.status_code == 404:
            return None
        self._check(response, f"HEAD {ref}")
        digest = response.headers.get("Docker-Content-Digest")
        return digest or None

    def _referrers(self, ref: oci.Reference) -> list[dict[str, Any]]:
        if ref.digest is None:
            raise oci.ArtifactError(f"{ref}: referrers are listed for a digest, not a tag")
        response = self._request("GET", self._url(ref, f"referrers/{ref.digest}"))
        if response.status_code == 200:
            return list(response.json().get("manifests", []))
        index = self._get_json(ref, oci.referrers_tag(ref.digest), oci.INDEX_MEDIA_TYPE)
        return list((index or {}).get("manifests", []))

    def _ping(self) -> None:
        self._check(self._request("GET", f"{self._scheme}://{self.host}/v2/"), f"GET {self.host}/v2/")

    def _has_manifest(self, ref: oci.Reference) -> bool:
        accept = f"{oci.MANIFEST_MEDIA_TYPE}, {oci.INDEX_MEDIA_TYPE}"
        response = self._request("HEAD", self._url(ref, f"manifests/{ref.digest or ref.tag}"), {"Accept": accept})
        if response.status_code == 404:
            return False
        self._check(response, f"HEAD {ref}")
        return True

    def _get_json(self, ref: oci.Reference, tag: str, media_type: str) -> dict[str, Any] | None:
        response = self._request("GET", self._url(ref, f"manifests/{tag}"), {"Accept": media_type})
        if response.status_code == 404:
            return None
        self._check(response, f"GET {ref}:{tag}")
        found: dict[str, Any] = response.json()
        return found

    def _upload_blob(
        self, ref: oci.Reference, blob: oci.Descriptor, *, path: Path | None = None, config_bytes: bytes | None = None
    ) -> int:
        container = self._client.get_container(str(ref))
        if self._client.blob_exists(blob.to_json(), container):
            return 0
        if path is None:
            with tempfile.NamedTemporaryFile(prefix="modelship-blob-") as fh:
                fh.write(config_bytes or b"")
                fh.flush()
                response = self._client.put_upload(fh.name, container, blob.to_json())
        else:
            response = self._client.put_upload(str(path), container, blob.to_json())
        self._check(response, f"upload of {blob.digest} to {ref}")
        return blob.size

    def _put_manifest(self, ref: oci.Reference, tag: str, body: bytes, media_type: str) -> requests.Response:
        response = self._request("PUT", self._url(ref, f"manifests/{tag}"), {"Content-Type": media_type}, body)
        self._check(response, f"PUT {ref}:{tag}")
        return response

    def _url(self, ref: oci.Reference, path: str) -> str:
        return f"{self._scheme}://{self.host}/v2/{ref.repository}/{path}"

    def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        *,
        stream: bool = False,
    ) -> requests.Response:
        try:
            response: requests.Response = self._client.do_request(
                url, method, data=data, headers=headers or {}, stream=stream
            )
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.host} unreachable: {type(exc).__name__}", transient=True) from None
        except ValueError:  # oras-py: a 401/403 it has no (or no accepted) credentials for
            raise RegistryError(
                f"registry {self.host} refused the credentials (MODELSHIP_REGISTRY_USERNAME / _PASSWORD)",
                transient=False,
            ) from None
        return response

    def _check(self, response: requests.Response, what: str) -> None:
        if response.status_code < 300:
            return
        detail = response.text[:300].strip()
        transient = response.status_code >= 500 or response.status_code == 429
        raise RegistryError(f"{what}: registry answered {response.status_code} {detail}", transient=transient)

    def _retrying(self, call: Callable[[], T]) -> T:
        delays = self.backoff.delays()
        for attempt in range(len(delays) + 1):
            try:
                return call()
            except RegistryError as exc:
                if not exc.transient or attempt == len(delays):
                    raise
                log.warning("registry: %s; retry %d/%d in %.1fs", exc, attempt + 1, len(delays), delays[attempt])
                time.sleep(delays[attempt])
            except (ValueError, requests.RequestException) as exc:  # oras-py's upload errors
                if attempt == len(delays):
                    raise RegistryError(f"registry {self.host}: {exc}", transient=True) from None
                time.sleep(delays[attempt])
        raise AssertionError("unreachable")
