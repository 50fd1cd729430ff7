"""The pure OCI builders: deterministic layers, valid tags and names, referrers fallback index."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from contract import oci


def layer_of(data: bytes, name: str = "churn.onnx") -> tuple[bytes, str]:
    out = io.BytesIO()
    layer = oci.write_model_layer(io.BytesIO(data), len(data), name, out)
    assert layer.size == len(out.getvalue()) and layer.file_sha256 == hashlib.sha256(data).hexdigest()
    return out.getvalue(), layer.digest


def test_the_same_model_bytes_always_make_the_same_layer_digest() -> None:
    first, digest = layer_of(b"model bytes")
    again, digest_again = layer_of(b"model bytes")
    assert first == again and digest == digest_again == oci.sha256_digest(first)
    assert layer_of(b"other bytes")[1] != digest


def test_the_layer_holds_only_the_model_file_read_only_under_model() -> None:
    data, _ = layer_of(b"abc", "nested/dir/churn.onnx")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"model", "model/churn.onnx"}  # the directory part of the name is dropped
        model = members["model/churn.onnx"]
        assert (model.mode, model.uid, model.mtime) == (0o444, 0, 0)
        assert tar.extractfile(model).read() == b"abc"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_a_file_name_that_is_not_a_name_is_refused(name: str) -> None:
    with pytest.raises(oci.ArtifactError, match="cannot be stored"):
        layer_of(b"x", name)


def test_tags_are_valid_oci_tags() -> None:
    tag = oci.tag_for("churn/model v2", "0123456789abcdef0123", "onnx_optimized")
    assert tag == "churn-model-v2-0123456789ab-onnx_optimized"
    assert len(oci.tag_for("m" * 300, "abc", "v")) == 128


def test_repository_names_follow_the_distribution_grammar() -> None:
    assert oci.repository_for("models", "Acme/Churn-Model") == "models/acme/churn-model"
    with pytest.raises(oci.ArtifactError, match="not a valid OCI repository"):
        oci.repository_for("", "acme/__bad")


def test_references_parse_with_digest_or_tag() -> None:
    digest = "sha256:" + "a" * 64
    ref = oci.Reference.parse(f"127.0.0.1:5055/models/acme/churn@{digest}")
    assert (ref.registry, ref.repository, ref.digest) == ("127.0.0.1:5055", "models/acme/churn", digest)
    assert str(ref) == f"127.0.0.1:5055/models/acme/churn@{digest}"
    assert oci.Reference.parse("reg.example/acme/churn:v1").tag == "v1"
    with pytest.raises(oci.ArtifactError, match="sha256:<64 hex>"):
        oci.Reference.parse("reg.example/acme/churn@sha256:abc")


def test_the_referrers_fallback_index_lists_each_referrer_once() -> None:
    ref = oci.Descriptor(oci.MANIFEST_MEDIA_TYPE, "sha256:" + "b" * 64, 10, artifact_type=oci.EVIDENCE_ARTIFACT_TYPE)
    index = json.loads(oci.add_referrer(None, ref) or b"")
    assert index["mediaType"] == oci.INDEX_MEDIA_TYPE
    assert [m["artifactType"] for m in index["manifests"]] == [oci.EVIDENCE_ARTIFACT_TYPE]
    assert oci.add_referrer(index, ref) is None
    assert oci.referrers_tag("sha256:" + "c" * 64) == "sha256-" + "c" * 64


def test_a_file_that_changes_while_it_is_read_is_refused() -> None:
    with pytest.raises(oci.ArtifactError, match="changed while it was read"):
        oci.write_model_layer(io.BytesIO(b"short"), 10, "m.onnx", io.BytesIO())
