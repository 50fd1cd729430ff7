"""Git LFS pointers are recognised by the spec's grammar, and an object replaces its pointer only once its
bytes are proven to be the object (the server is reached in tests/review/test_fetch.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from contract.lfs import LfsError, LocalObjects, Pointer, endpoint, parse_pointer, resolve_tree

SPEC_EXAMPLE = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 12345\n"
)


def pointer_to(data: bytes) -> bytes:
    return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (
        hashlib.sha256(data).hexdigest().encode(),
        len(data),
    )


def test_the_specs_pointer_parses_and_nothing_else_passes_for_one() -> None:
    oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
    assert parse_pointer(SPEC_EXAMPLE) == Pointer(oid, 12345)
    assert parse_pointer(SPEC_EXAMPLE.replace(b"size", b"ext-0-x y\nsize")) == Pointer(oid, 12345)  # extensions
    assert parse_pointer(SPEC_EXAMPLE + b"\x00" * 2000) is None  # a pointer is < 1024 bytes
    assert parse_pointer(SPEC_EXAMPLE.rstrip(b"\n")) is None
    assert parse_pointer(SPEC_EXAMPLE.replace(b"sha256:4d", b"sha256:XX")) is None
    assert parse_pointer(b"\x08\x07\x12\x04onnx") is None


def test_the_endpoint_is_the_clone_url_plus_info_lfs_as_github_serves_it() -> None:
    assert endpoint("https://github.com/acme/models.git") == "https://github.com/acme/models.git/info/lfs"
    assert endpoint("https://ghe.example/acme/models") == "https://ghe.example/acme/models.git/info/lfs"


def test_pointers_in_a_tree_become_their_objects_and_bytes_that_are_not_the_object_are_refused(
    tmp_path: Path,
) -> None:
    store, tree = tmp_path / "git", tmp_path / "tree"
    model, other = b"the model bytes" * 100, b"a tampered object" * 100
    oid = hashlib.sha256(model).hexdigest()
    (store / "lfs" / "objects" / oid[:2] / oid[2:4]).mkdir(parents=True)
    (store / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).write_bytes(model)
    (tree / "models").mkdir(parents=True)
    (tree / "models" / "m.onnx").write_bytes(pointer_to(model))
    (tree / "README.md").write_text("# not a pointer\n")

    assert resolve_tree(tree, LocalObjects(store)) == ["models/m.onnx"]
    assert (tree / "models" / "m.onnx").read_bytes() == model

    (tree / "models" / "m.onnx").write_bytes(pointer_to(model))
    (store / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).write_bytes(other)
    with pytest.raises(LfsError, match=r"`models/m.onnx`: the Git LFS server sent bytes that are not object"):
        resolve_tree(tree, LocalObjects(store))
    assert (tree / "models" / "m.onnx").read_bytes() == pointer_to(model)  # the pointer is never taken for it

    with pytest.raises(LfsError, match=r"over the cap of 1000 \(`models/m.onnx` alone is 1500 bytes\)"):
        resolve_tree(tree, LocalObjects(store), max_bytes=1000)
