"""What a deploy reads from the model repository: a Git LFS pointer is never pinned as if it were the model."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config.repo import ModelSpec
from bot.deploy.sources import ModelRepository
from bot.deploy.targets import DeployFailure
from bot.store.db import make_engine, migrate
from tests.handlers.conftest import FakeGH

REPO = "acme/models"
REV = "0123456789abcdef0123456789abcdef01234567"
SPEC = ModelSpec.model_validate(
    {"name": "churn", "path": "models/churn.onnx", "task": "regression", "dataset": {"path": "d.csv", "target": "y"}}
)


def contents(data: bytes) -> dict[str, object]:
    return {"type": "file", "encoding": "base64", "size": len(data), "content": base64.b64encode(data).decode()}


@pytest.fixture
async def sources(tmp_path: Path) -> AsyncIterator[ModelRepository]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'modelship.db'}")
    await migrate(engine)
    yield ModelRepository(engine, deploy_root="environments/")
    await engine.dispose()


async def test_an_unreviewed_lfs_pointer_is_refused_naming_the_file_and_what_to_do(sources: ModelRepository) -> None:
    model = b"\x08\x07" * 1000
    pointer = (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(model).hexdigest()}\n"
        f"size {len(model)}\n"
    ).encode()
    gh = FakeGH({("GET", f"/repos/{REPO}/contents/models/churn.onnx?ref={REV}"): contents(pointer)})

    with pytest.raises(DeployFailure) as info:
        await sources.model_ref(gh, REPO, SPEC, revision=REV, review_sha=None, number=None, sequence=1)

    assert "`models/churn.onnx` (model `churn`) is stored in Git LFS" in str(info.value)
    assert "/modelship evaluate" in str(info.value)


async def test_a_plain_file_is_pinned_by_the_hash_of_its_bytes(sources: ModelRepository) -> None:
    model = b"\x08\x07" * 1000
    gh = FakeGH({("GET", f"/repos/{REPO}/contents/models/churn.onnx?ref={REV}"): contents(model)})

    ref, _ = await sources.model_ref(gh, REPO, SPEC, revision=REV, review_sha=None, number=None, sequence=1)

    assert ref.sha256 == hashlib.sha256(model).hexdigest()
