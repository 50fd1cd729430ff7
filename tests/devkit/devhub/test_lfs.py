"""The Git LFS batch API, driven by the real git-lfs client the way a team pushes a large model."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import aiohttp

from devkit.devhub import RunningDevHub
from devkit.devhub.lfs import MEDIA_TYPE, object_path
from tests.devkit.devhub.helpers import REPO, install_app

LFS_JSON = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE}


def git_env(token: str | None) -> dict[str, str]:
    """A git with no user config; the token (if any) only in a header from the environment."""
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": "/nonexistent",
        "GIT_AUTHOR_NAME": "bob",
        "GIT_AUTHOR_EMAIL": "bob@example.com",
        "GIT_COMMITTER_NAME": "bob",
        "GIT_COMMITTER_EMAIL": "bob@example.com",
    }
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    return env


async def run(*args: str, cwd: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, list(args), cwd=cwd, env=git_env(token), capture_output=True, text=True, check=False
    )


async def batch(
    session: aiohttp.ClientSession, devhub: RunningDevHub, body: dict[str, object], token: str | None
) -> tuple[int, dict[str, object]]:
    headers = dict(LFS_JSON)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{devhub.base_url}/{REPO}.git/info/lfs/objects/batch"
    async with session.post(url, data=json.dumps(body), headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_git_lfs_push_stores_the_object_and_a_fresh_clone_gets_the_bytes_back(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
    remote = f"{devhub.base_url}/{REPO}.git"
    work, clone = tmp_path / "work", tmp_path / "clone"
    model = os.urandom(3 * 1024 * 1024)
    oid = hashlib.sha256(model).hexdigest()
    token = installed.token

    cloned = await run("git", "clone", "--quiet", remote, str(work), cwd=tmp_path, token=token)
    assert cloned.returncode == 0, cloned.stderr
    await run("git", "lfs", "install", "--local", cwd=work, token=None)
    await run("git", "lfs", "track", "*.onnx", cwd=work, token=None)
    (work / "model.onnx").write_bytes(model)
    await run("git", "add", ".gitattributes", "model.onnx", cwd=work, token=None)
    await run("git", "commit", "--quiet", "-m", "Add the model (LFS)", cwd=work, token=None)
    pushed = await run("git", "push", "--quiet", "origin", "HEAD:main", cwd=work, token=token)
    assert pushed.returncode == 0, pushed.stderr

    # The repository holds the pointer; the object sits in devhub's LFS store, checked against its oid.
    pointer = devhub.hub.git.path(REPO)
    stored = object_path(pointer, oid)
    assert stored.read_bytes() == model
    blob = subprocess.run(
        ["git", "--git-dir", str(pointer), "cat-file", "blob", "main:model.onnx"], capture_output=True, check=True
    ).stdout.decode()
    assert blob.startswith("version https://git-lfs.github.com/spec/v1\n") and f"oid sha256:{oid}" in blob

    # A fresh clone by git-lfs downloads the object through the batch API (the token only in a header).
    cloned = await run("git", "-c", "filter.lfs.process=git-lfs filter-process", "-c", "filter.lfs.required=true",
                       "clone", "--quiet", remote, str(clone), cwd=tmp_path, token=token)  # fmt: skip
    assert cloned.returncode == 0, cloned.stderr
    assert (clone / "model.onnx").read_bytes() == model


async def test_the_batch_api_asks_for_credentials_refuses_readers_uploads_and_reports_missing_objects(
    devhub: RunningDevHub,
) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
        await devhub.hub.create_repo("acme/secret", {"README.md": "x\n"}, private=True)
        oid = hashlib.sha256(b"absent").hexdigest()
        download = {"operation": "download", "transfers": ["basic"], "objects": [{"oid": oid, "size": 6}]}
        upload = {**download, "operation": "upload"}

        missing = await batch(session, devhub, download, installed.token)
        anonymous_upload = await batch(session, devhub, upload, None)
        async with session.post(
            f"{devhub.base_url}/acme/secret.git/info/lfs/objects/batch", data=json.dumps(download), headers=LFS_JSON
        ) as response:
            private = response.status, response.headers.get("LFS-Authenticate")
        granted = await batch(session, devhub, upload, installed.token)
        action = granted[1]["objects"][0]["actions"]["upload"]  # type: ignore[index]
        # The transfer URL takes the action's own header, never the git token; wrong bytes are refused.
        async with session.put(
            action["href"], data=b"other!", headers={"Authorization": f"Bearer {installed.token}"}
        ) as r:
            with_git_token = r.status
        async with session.put(action["href"], data=b"other!", headers=action["header"]) as r:
            wrong_bytes = r.status

    assert missing[0] == 200
    assert missing[1]["objects"] == [{"oid": oid, "size": 6, "authenticated": True,  # type: ignore[comparison-overlap]
                                      "error": {"code": 404, "message": "Object does not exist"}}]  # fmt: skip
    assert anonymous_upload[0] == 401
    assert private == (401, 'Basic realm="GitHub"')
    assert set(action) == {"href", "header", "expires_in"} and action["href"].endswith(
        f"/{REPO}.git/info/lfs/objects/{oid}"
    )
    assert with_git_token == 401 and wrong_bytes == 422
    assert not object_path(devhub.hub.git.path(REPO), oid).exists()
