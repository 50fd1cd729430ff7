"""The chart's git source: one file at a pinned commit of a (private) repository on devhub, Git LFS resolved,
the token only from a file, and the pinned sha256 or nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devkit.devhub import RunningDevHub
from devkit.devhub.lfs import object_path
from model_server.fetch_cli import fetch_model_command
from model_server.git_source import GitSourceError, default_url, fetch_from_git

REPO = "acme/private-model"


@dataclass
class Published:
    url: str
    revision: str
    token: str
    model: bytes


def pointer(data: bytes) -> str:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    )


@pytest.fixture
async def published(devhub: RunningDevHub) -> Published:
    hub = devhub.hub
    model = os.urandom(300_000)
    await hub.create_repo(
        REPO,
        {".gitattributes": "*.onnx filter=lfs -text\n", "models/m.onnx": pointer(model), "README.md": "x\n"},
        private=True,
    )
    await hub.create_app()
    installation_id = await hub.install("acme", [REPO])
    target = object_path(hub.git.path(REPO), hashlib.sha256(model).hexdigest())
    target.parent.mkdir(parents=True)
    target.write_bytes(model)
    revision = hub.git.resolve(REPO, "refs/heads/main")
    # A later commit on the branch: the fetch must still get the pinned one.
    await hub.push(REPO, "main", {"models/m.onnx": pointer(b"newer")})
    token = hub.issue_token(installation_id).value
    return Published(f"{devhub.base_url}/{REPO}.git", revision, token, model)


async def test_the_pinned_commits_lfs_model_is_fetched_with_the_token_from_a_file(
    published: Published, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(published.token + "\n")
    sha = hashlib.sha256(published.model).hexdigest()
    args = ["--git", published.url, "--revision", published.revision, "--path", "models/m.onnx"]
    args += ["--sha256", sha, "--dest", str(tmp_path / "out"), "--token-file", str(tmp_path / "token")]

    result = await asyncio.to_thread(CliRunner().invoke, fetch_model_command, args)

    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "m.onnx").read_bytes() == published.model
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.onnx"]  # nothing staged is left


async def test_other_bytes_a_moving_ref_and_a_missing_token_are_refused_saying_why(
    published: Published, tmp_path: Path
) -> None:
    sha = hashlib.sha256(published.model).hexdigest()
    wrong = "0" * 64

    def fetch(revision: str, pinned: str, token: str | None) -> str:
        with pytest.raises(GitSourceError) as info:
            fetch_from_git(published.url, revision, "models/m.onnx", pinned, tmp_path / "out", token)
        return str(info.value)

    mismatch = await asyncio.to_thread(fetch, published.revision, wrong, published.token)
    branch = await asyncio.to_thread(fetch, "main", sha, published.token)
    anonymous = await asyncio.to_thread(fetch, published.revision, sha, None)

    assert f"has sha256 {sha}, not the pinned {wrong}" in mismatch
    assert "full commit SHA" in branch
    assert "git fetch" in anonymous and published.token not in anonymous
    assert not (tmp_path / "out" / "m.onnx").exists()


def test_the_default_url_is_githubs_clone_url() -> None:
    assert default_url("acme/churn") == "https://github.com/acme/churn.git"


async def test_the_token_never_reaches_argv(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git runs with the token in its environment only: what `ps` shows of it holds no credential."""
    seen: list[list[str]] = []
    real = subprocess.run

    def spy(args: list[str], *a: Any, **k: Any) -> Any:
        seen.append(list(args))
        return real(args, *a, **k)

    monkeypatch.setattr(subprocess, "run", spy)
    sha = hashlib.sha256(published.model).hexdigest()
    path = await asyncio.to_thread(
        fetch_from_git, published.url, published.revision, "models/m.onnx", sha, tmp_path / "out", published.token
    )

    assert path.read_bytes() == published.model
    assert len(seen) == 3 and not any(published.token in " ".join(args) for args in seen)  # init, fetch, cat-file
