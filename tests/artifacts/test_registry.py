"""Model artifacts against a real registry (Debian's docker-registry): push, re-push, evidence, fetch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from bot.artifacts.registry import Backoff, ModelArtifact, OciRegistry, RegistryError
from contract import oci
from model_server.fetch import RegistryReader, fetch_model

pytestmark = pytest.mark.slow


def reader(registry: OciRegistry) -> RegistryReader:
    """What the model server reads the registry with (model_server.fetch), on the test's registry."""
    return RegistryReader(registry.host, insecure=True)


def model_file(tmp_path: Path, size: int = 200_000) -> Path:
    path = tmp_path / "churn.onnx"
    path.write_bytes(os.urandom(size))
    return path


async def push(registry: OciRegistry, path: Path, variant: str = "onnx_optimized") -> ModelArtifact:
    return await registry.push_model(
        path,
        model_repo="acme/churn-model",
        model="churn",
        revision="0123456789abcdef0123456789abcdef01234567",
        variant=variant,
        annotations={oci.SOURCE: "https://github.example/acme/churn-model", oci.PULL_REQUEST: "7"},
    )


async def test_a_pushed_model_is_a_valid_image_with_its_provenance(
    registry: OciRegistry, registry_host: str, tmp_path: Path
) -> None:
    path = model_file(tmp_path)
    artifact = await push(registry, path)
    assert artifact.reference.startswith(f"{registry_host}/{registry.prefix}/acme/churn-model@sha256:")
    assert artifact.file_sha256 == oci.file_sha256(path)
    assert artifact.uploaded_bytes > path.stat().st_size

    manifest = requests.get(
        f"http://{registry_host}/v2/{registry.prefix}/acme/churn-model/manifests/{artifact.tag}",
        headers={"Accept": oci.MANIFEST_MEDIA_TYPE},
        timeout=10,
    )
    assert manifest.headers["Docker-Content-Digest"] == artifact.manifest_digest
    annotations = manifest.json()["annotations"]
    assert annotations[oci.FILE_SHA256] == artifact.file_sha256
    assert annotations[oci.REVISION].startswith("0123456789ab")
    assert annotations[oci.SOURCE] == "https://github.example/acme/churn-model"
    assert annotations[oci.VARIANT] == "onnx_optimized"

    # A plain container engine pulls it as an image and finds the model at /model/<name>.
    pulled = subprocess.run(
        ["podman", "pull", "--tls-verify=false", artifact.reference], capture_output=True, text=True, timeout=60
    )
    assert pulled.returncode == 0, pulled.stderr
    created = subprocess.run(["podman", "create", artifact.reference, "/x"], capture_output=True, text=True, check=True)
    container = created.stdout.strip()
    try:
        mounted = subprocess.run(["podman", "mount", container], capture_output=True, text=True, check=True)
        assert (Path(mounted.stdout.strip()) / "model" / "churn.onnx").read_bytes() == path.read_bytes()
    finally:
        subprocess.run(["podman", "rm", "-f", container], capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "-f", artifact.reference], capture_output=True, check=False)


async def test_a_re_push_of_the_same_bytes_uploads_nothing(registry: OciRegistry, tmp_path: Path) -> None:
    path = model_file(tmp_path)
    first = await push(registry, path)
    again = await push(registry, path)
    assert again.manifest_digest == first.manifest_digest
    assert again.uploaded_bytes == 0
    # Knowing the file's sha256 (the bot hashes what it keeps), a re-push does not even read the file.
    path.unlink()
    known = await registry.push_model(
        path,
        model_repo="acme/churn-model",
        model="churn",
        revision="0123456789abcdef0123456789abcdef01234567",
        variant="onnx_optimized",
        file_sha256=first.file_sha256,
    )
    assert (known.reference, known.uploaded_bytes) == (first.reference, 0)


async def test_a_file_that_is_not_what_the_bot_hashed_is_not_pushed(registry: OciRegistry, tmp_path: Path) -> None:
    with pytest.raises(oci.ArtifactError, match="changed after it was hashed"):
        await registry.push_model(
            model_file(tmp_path), model_repo="acme/x", model="m", revision="r", variant="v", file_sha256="0" * 64
        )


async def test_the_evidence_is_a_referrer_of_the_model(registry: OciRegistry, tmp_path: Path) -> None:
    artifact = await push(registry, model_file(tmp_path))
    report = json.dumps({"verdict": "pass"}).encode()
    evidence = await registry.attach_evidence(
        artifact, {"report.json": report, "comment.md": b"## Review"}, annotations={oci.VERDICT: "pass"}
    )
    again = await registry.attach_evidence(
        artifact, {"report.json": report, "comment.md": b"## Review"}, annotations={oci.VERDICT: "pass"}
    )
    assert again == evidence
    referrers = await registry.referrers(artifact.reference)
    assert [r["digest"] for r in referrers] == [evidence.rsplit("@", 1)[1]]  # listed once, though attached twice
    assert referrers[0]["artifactType"] == oci.EVIDENCE_ARTIFACT_TYPE
    assert referrers[0]["annotations"][oci.VERDICT] == "pass"


async def test_fetch_by_digest_verifies_and_writes_the_model(registry: OciRegistry, tmp_path: Path) -> None:
    path = model_file(tmp_path)
    artifact = await push(registry, path)
    fetched = fetch_model(
        RegistryReader(registry.host, insecure=True), artifact.reference, artifact.file_sha256, tmp_path / "out"
    )
    assert fetched.read_bytes() == path.read_bytes()


async def test_fetch_refuses_a_file_that_is_not_the_pinned_one(registry: OciRegistry, tmp_path: Path) -> None:
    artifact = await push(registry, model_file(tmp_path))
    with pytest.raises(oci.ArtifactError, match="does not match the pinned"):
        fetch_model(reader(registry), artifact.reference, "0" * 64, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written is left to serve


async def test_fetch_refuses_a_tag_and_a_digest_the_registry_does_not_have(
    registry: OciRegistry, tmp_path: Path
) -> None:
    artifact = await push(registry, model_file(tmp_path))
    with pytest.raises(oci.ArtifactError, match="by digest"):
        fetch_model(
            RegistryReader(registry.host, insecure=True),
            artifact.reference.split("@")[0] + ":" + artifact.tag,
            "0" * 64,
            tmp_path,
        )
    missing = artifact.reference.split("@")[0] + "@sha256:" + "e" * 64
    with pytest.raises(oci.ArtifactError, match="404"):
        fetch_model(reader(registry), missing, artifact.file_sha256, tmp_path)


async def test_fetch_refuses_bytes_changed_behind_the_same_tag(
    registry: OciRegistry, registry_host: str, tmp_path: Path
) -> None:
    """Someone re-pushes the tag with other bytes: the pinned digest still names the old ones, or fails."""
    artifact = await push(registry, model_file(tmp_path))
    (tmp_path / "other").mkdir()
    tampered = await push(registry, model_file(tmp_path / "other"))
    assert tampered.tag == artifact.tag and tampered.manifest_digest != artifact.manifest_digest
    # The values still pin the original digest and sha256: fetching it gives the original bytes ...
    assert fetch_model(
        RegistryReader(registry.host, insecure=True), artifact.reference, artifact.file_sha256, tmp_path / "a"
    ).exists()
    # ... and pairing the new manifest with the old pinned sha256 is refused.
    with pytest.raises(oci.ArtifactError, match="does not match the pinned"):
        fetch_model(
            RegistryReader(registry.host, insecure=True), tampered.reference, artifact.file_sha256, tmp_path / "b"
        )


async def test_an_unreachable_registry_is_retried_then_reported_as_transient(tmp_path: Path) -> None:
    down = OciRegistry("127.0.0.1:9", insecure=True, backoff=Backoff(attempts=3, first_delay=0.01))
    with pytest.raises(RegistryError, match="unreachable") as raised:
        await push(down, model_file(tmp_path))
    assert raised.value.transient


async def test_the_fetch_model_command_refuses_with_the_reason_and_exit_1(
    registry: OciRegistry, tmp_path: Path
) -> None:
    artifact = await push(registry, model_file(tmp_path))
    command = [sys.executable, "-m", "bot", "fetch-model", "--artifact", artifact.reference, "--insecure"]
    refused = subprocess.run(
        [*command, "--sha256", "f" * 64, "--dest", str(tmp_path / "x")], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "refused" in refused.stderr and "does not match the pinned" in refused.stderr
    served = subprocess.run(
        [*command, "--sha256", artifact.file_sha256, "--dest", str(tmp_path / "y")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 0, served.stderr
    assert (tmp_path / "y" / "churn.onnx").read_bytes() == (tmp_path / "churn.onnx").read_bytes()
