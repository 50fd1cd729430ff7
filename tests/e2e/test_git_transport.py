"""Git end to end: the review's fetch and the deploy's push follow GitHub's ``clone_url``, never put
the installation token in a process's argv, and survive a token revoked between minting and use.

Both devhub layouts: git at the host root (github.com) and git under ``/git`` (a git host that is not
where the API URL suggests). A sampler reads every process's ``/proc/PID/cmdline`` while the bot works.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devkit.devhub import DevHub, RunningDevHub, start
from devkit.devhub.faults import Fault
from tests.fixtures.bot import RunningBot, bot_running
from tests.fixtures.devhub import WEBHOOK_SECRET, assert_contract_kept, shared_key

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-model-repo"
BOT = "modelship[bot]"
STAGING = "environments/staging/churn/values.yaml"


def config(deploy_repo: str) -> bytes:
    return f"""\
version: 1
paths: ["models/**", "data/**"]
sandbox: {{cpus: 1, memory: 2g, timeout: 300s}}
models:
  - name: churn
    path: models/churn.skops
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
    metrics: [accuracy]
optimize: {{onnx: false}}
environments:
  staging: {{auto: true}}
deploy: {{repository: {deploy_repo}}}
""".encode()


@dataclass
class ArgvSampler:
    """Reads the command line of every descendant of this test process in a loop, until stopped.

    Descendants only: other processes on a shared machine (other test runs) are not ours to judge.
    """

    seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @staticmethod
    def _parent(pid: str) -> str | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return stat.rsplit(")", 1)[-1].split()[1]  # the field after the state, past "(comm)"

    def _loop(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            parents = {p.name: self._parent(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
            for pid in parents:
                ancestor, hops = parents.get(pid), 0
                while ancestor not in (None, "0", "1", me) and hops < 64:
                    ancestor, hops = parents.get(ancestor), hops + 1
                if ancestor != me:
                    continue
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue  # gone already
                if raw:
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace"))

    def __enter__(self) -> ArgvSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def leaks(self, tokens: set[str]) -> list[str]:
        """Command lines that carry a token, its Basic form, or credentials in a URL."""
        needles = {*tokens, "x-access-token"} | {
            base64.b64encode(f"x-access-token:{t}".encode()).decode() for t in tokens
        }
        return [line for line in self.seen if any(n in line for n in needles) or re.search(r"://[^/\s]+@", line)]


@dataclass
class GitWorld:
    devhub: RunningDevHub
    bot: RunningBot
    minted: set[str]

    @property
    def hub(self) -> DevHub:
        return self.devhub.hub


@pytest.fixture(params=["", "/git"], ids=["git-at-host-root", "git-under-prefix"])
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, podman_url: str, runner_image: str
) -> AsyncIterator[GitWorld]:
    devhub = await start(
        tmp_path / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key, git_prefix=request.param
    )
    minted: set[str] = set()
    issue = devhub.hub.issue_token

    def remember(installation_id: int):  # type: ignore[no-untyped-def]
        token = issue(installation_id)
        minted.add(token.value)  # revoked ones too: none may ever show up in argv
        return token

    devhub.hub.issue_token = remember  # type: ignore[method-assign]
    try:
        async with bot_running(
            devhub, tmp_path, container_engine_url=podman_url, sandbox_mount_runtime=True, sandbox_image=runner_image
        ) as running:
            yield GitWorld(devhub, running, minted)
    finally:
        await devhub.stop()
    assert_contract_kept(devhub.hub)


async def model_repo(world: GitWorld, name: str) -> tuple[str, str]:
    model, deploy = f"acme/{name}", f"acme/{name}-deploy"
    hub = world.hub
    await hub.create_repo(deploy, {"README.md": "# deploy\n"}, private=True)
    await hub.create_repo(
        model,
        {
            ".modelship.yml": config(deploy),
            "models/churn.skops": (SAMPLE / "models/churn.skops").read_bytes(),
            "data/eval.csv": (SAMPLE / "data/eval.csv").read_bytes(),
        },
        private=True,
    )
    await hub.install("acme", [model, deploy])
    hub.set_permission(model, "alice", "write")
    return model, deploy


async def review_then_deploy(world: GitWorld, model: str) -> tuple[int, str]:
    hub = world.hub
    eval_csv = (SAMPLE / "data/eval.csv").read_bytes()
    await hub.push(model, "fewer-rows", {"data/eval.csv": b"\n".join(eval_csv.splitlines()[:-5]) + b"\n"})
    number = await hub.open_pr(model, "fewer-rows", title="Evaluate on fewer rows")
    await world.bot.idle(timeout=240)
    head = hub.pull(model, number).head_sha
    runs = [r for r in hub.check_runs.values() if r.repo == model and r.head_sha == head]
    assert [(r.status, r.conclusion) for r in runs] == [("completed", "success")], [r.output for r in runs]
    merge_sha = await hub.merge_pr(model, number)
    await world.bot.idle(timeout=60)
    return number, merge_sha


def deployed_file(world: GitWorld, deploy: str) -> str:
    import subprocess

    bare = world.hub.git.path(deploy)
    return subprocess.run(
        ["git", "show", f"main:{STAGING}"], cwd=bare, check=True, capture_output=True, text=True
    ).stdout


async def test_review_and_deploy_follow_clone_url_and_no_token_reaches_any_argv(world: GitWorld) -> None:
    model, deploy = await model_repo(world, "churn")

    with ArgvSampler() as sampler:
        _, merge_sha = await review_then_deploy(world, model)

    assert merge_sha in deployed_file(world, deploy)
    assert world.minted, "the bot minted no installation token"
    assert sampler.leaks(world.minted) == []
    # The sampler did see the bot's git, going where clone_url says (so the check above is not vacuous).
    clone_url = f"{world.devhub.base_url}{world.hub.git_prefix}/{model}.git"
    assert any(line.startswith("git ") and clone_url in line for line in sampler.seen), sorted(
        line for line in sampler.seen if "git" in line
    )[:20]


async def test_a_token_revoked_between_minting_and_git_is_replaced_and_the_work_completes(world: GitWorld) -> None:
    model, deploy = await model_repo(world, "revoked")
    hub = world.hub
    hub.add_fault(Fault("revoke_token", path=rf"^/{re.escape(model)}\.git$"))
    hub.add_fault(Fault("revoke_token", path=rf"^/{re.escape(deploy)}\.git$"))

    _, merge_sha = await review_then_deploy(world, model)

    assert merge_sha in deployed_file(world, deploy)
    assert [(r.method, r.path, r.status) for r in hub.faults.log if r.fault == "revoke_token"] == [
        ("GIT", f"/{model}.git", 401),
        ("GIT", f"/{deploy}.git", 401),
    ]
    assert hub.faults.pending == []
    assert len(world.minted) >= 3  # the first token, and one after each revocation


def test_devhub_refuses_a_git_prefix_it_could_not_serve(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="git_prefix"):
        DevHub(tmp_path, git_prefix="git/")
