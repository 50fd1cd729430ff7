"""Git smart HTTP with GitHub's token auth, driven by the real git CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aiohttp

from devkit.devhub import Fault, RunningDevHub
from tests.devkit.devhub.helpers import REPO, install_app
from tests.fixtures.devhub import WebhookSink

GIT_ENV = {
    **os.environ,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "GIT_AUTHOR_NAME": "bob",
    "GIT_AUTHOR_EMAIL": "bob@example.com",
    "GIT_COMMITTER_NAME": "bob",
    "GIT_COMMITTER_EMAIL": "bob@example.com",
}


async def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False
    )


def authed(devhub: RunningDevHub, token: str, repo: str = REPO) -> str:
    return devhub.base_url.replace("://", f"://x-access-token:{token}@") + f"/{repo}.git"


async def test_clone_and_push_with_an_installation_token(
    devhub: RunningDevHub, webhook_sink: WebhookSink, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
    await devhub.hub.push(REPO, "tune", {"model/params.json": '{"c": 2.0}\n'})
    number = await devhub.hub.open_pr(REPO, "tune", user="bob")
    work = tmp_path / "work"

    cloned = await git("clone", "--quiet", "--branch", "tune", authed(devhub, installed.token), str(work))
    (work / "model" / "params.json").write_text('{"c": 4.0}\n')
    await git("commit", "--quiet", "-am", "Retrain with C=4", cwd=work)
    pushed = await git("push", "--quiet", "origin", "tune", cwd=work)
    local_head = (await git("rev-parse", "HEAD", cwd=work)).stdout.strip()

    assert cloned.returncode == 0, cloned.stderr
    assert pushed.returncode == 0, pushed.stderr
    assert devhub.hub.git.resolve(REPO, "refs/heads/tune") == local_head
    assert devhub.hub.pull(REPO, number).head_sha == local_head
    pushes = [h.payload for h in webhook_sink.received if h.event == "push"]
    syncs = [
        h.payload for h in webhook_sink.received if h.event == "pull_request" and h.payload["action"] == "synchronize"
    ]
    assert pushes[-1]["after"] == local_head and pushes[-1]["commits"][0]["message"] == "Retrain with C=4"
    assert pushes[-1]["commits"][0]["modified"] == ["model/params.json"]
    assert syncs[-1]["after"] == local_head and syncs[-1]["number"] == number


async def test_push_without_a_valid_token_is_refused_with_basic_challenge(
    devhub: RunningDevHub, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
        async with session.get(f"{devhub.base_url}/{REPO}.git/info/refs?service=git-receive-pack") as response:
            challenge = response.headers.get("WWW-Authenticate")
            status = response.status
    anonymous_clone = await git("clone", "--quiet", f"{devhub.base_url}/{REPO}.git", str(tmp_path / "anon"))
    (tmp_path / "anon" / "x.txt").write_text("x")
    await git("add", "x.txt", cwd=tmp_path / "anon")
    await git("commit", "--quiet", "-m", "sneaky", cwd=tmp_path / "anon")
    rejected = await git("push", authed(devhub, "ghs_wrong"), "HEAD:main", cwd=tmp_path / "anon")

    assert (status, challenge) == (401, 'Basic realm="GitHub"')
    assert anonymous_clone.returncode == 0  # public repositories clone without credentials, as on GitHub
    assert rejected.returncode != 0
    assert "x.txt" not in [e.path for e in devhub.hub.git.list_dir(REPO, "refs/heads/main", "")]


async def test_git_under_a_prefix_is_where_clone_url_says_and_nowhere_else(tmp_path: Path) -> None:
    from devkit.devhub import start
    from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key

    running = await start(tmp_path / "hub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key, git_prefix="/git")
    try:
        async with aiohttp.ClientSession() as session:
            installed = await install_app(running, session)
            async with session.get(
                f"{running.api_url}/repos/{REPO}", headers={"Authorization": f"token {installed.token}"}
            ) as response:
                clone_url = (await response.json())["clone_url"]
        at_root = await git("clone", "--quiet", authed(running, installed.token), str(tmp_path / "root"))
        prefixed = clone_url.replace("://", f"://x-access-token:{installed.token}@")
        cloned = await git("clone", "--quiet", prefixed, str(tmp_path / "prefixed"))
    finally:
        await running.stop()

    assert clone_url == f"{running.base_url}/git/{REPO}.git"
    assert at_root.returncode != 0 and "not found" in at_root.stderr.lower()
    assert cloned.returncode == 0, cloned.stderr
    # A client that guesses git at the host root fails its test: that path is no GitHub operation.
    assert running.hub.contract_violations == [
        f"GET /{REPO}.git/info/refs: no such operation in GitHub's REST description"
    ]


async def test_git_takes_only_the_faults_that_name_its_path(devhub: RunningDevHub, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
    url = authed(devhub, installed.token)
    devhub.hub.add_fault(Fault("error", count=5))  # REST-wide: git does not see it
    devhub.hub.add_fault(Fault("error", count=2, status=500, path=rf"/{REPO}\.git/"))

    outcomes = [await git("ls-remote", url) for _ in range(3)]

    assert [o.returncode != 0 for o in outcomes] == [True, True, False]
    assert "The requested URL returned error: 500" in outcomes[0].stderr
    assert "refs/heads/main" in outcomes[2].stdout
    git_log = [(r.status, r.fault) for r in devhub.hub.faults.log if ".git/" in r.path]
    assert git_log[:2] == [(500, "error"), (500, "error")]
    assert git_log[2:] and all(entry == (200, None) for entry in git_log[2:])  # protocol v2: refs, then ls-refs
    assert [f.count for f in devhub.hub.faults.pending] == [5]
