"""A model kept in Git LFS, over GitHub's 100 MiB limit for plain files, end to end with real parts: pushed
with the real git-lfs client to devhub's LFS batch API, reviewed by the bot in the podman sandbox on its
real bytes, deployed with its sha256 pinned, and served by the model-server chart's git source under
`podman kube play` (the pod fetches the file at the pinned revision and resolves LFS itself)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import os
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import yaml
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from bot.deploy.helm import Rendered, render_chart_sync
from bot.store.reviews import reviewed_model
from devkit import onnx_models
from devkit.devhub import RunningDevHub, start
from devkit.kube import KubePlay
from devkit.onnx_models import grid_target, write_grid_regressor
from devkit.processes import free_port
from tests.fixtures.bot import bot_running, settle
from tests.fixtures.devhub import WEBHOOK_SECRET, shared_key

pytestmark = pytest.mark.slow
CHART = Path(__file__).resolve().parents[2] / "charts" / "model-server"
MODEL_REPO, DEPLOY_REPO = "acme/grid-model", "acme/grid-deploy"
GITHUB_FILE_LIMIT = 100 * 1024 * 1024  # GitHub refuses plain git files above 100 MiB
CONFIG = f"""\
version: 1
paths: ["models/**", "data/**"]
sandbox: {{cpus: 1, memory: 2g, timeout: 600s}}
optimize: {{onnx: false}}
models:
  - name: grid
    path: models/grid.onnx
    task: regression
    dataset: {{path: data/eval.csv, target: y}}
environments:
  staging: {{auto: true}}
deploy: {{repository: {DEPLOY_REPO}}}
"""


@pytest.fixture(scope="session")
def big_model() -> Path:
    """The > 100 MiB grid regressor, generated once per machine: cached under /var/tmp, keyed by the
    generator's source, so a change to it makes a new one."""
    source = inspect.getsource(write_grid_regressor) + inspect.getsource(grid_target)
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = Path(os.environ.get("MODELSHIP_TEST_CACHE", "/var/tmp")) / f"modelship-grid-{key}.onnx"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.part")
        write_grid_regressor(partial)
        partial.replace(path)
    return path


def host_address(registry_host: str) -> str:
    """This machine's own address (the registry's): what a pod reaches the host at (not 127.0.0.1)."""
    return registry_host.rsplit(":", 1)[0]


def eval_rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(14)
    x = rng.uniform(onnx_models.GRID_LOW, onnx_models.GRID_HIGH, size=(40, 4)).round(3)
    y = (grid_target(x) + rng.normal(0.0, 0.05, size=40)).round(4)
    return x, y


def csv(x: np.ndarray, y: np.ndarray) -> str:
    lines = ["a,b,c,d,y", *(",".join(str(v) for v in [*row, target]) for row, target in zip(x, y, strict=True))]
    return "\n".join(lines) + "\n"


class Client:
    """A team member's clone with git-lfs installed in it; the token only in a header from the environment."""

    def __init__(self, work: Path, token: str) -> None:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self.work = work
        self.env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": "/nonexistent",
            "GIT_AUTHOR_NAME": "alice",
            "GIT_AUTHOR_EMAIL": "alice@example.com",
            "GIT_COMMITTER_NAME": "alice",
            "GIT_COMMITTER_EMAIL": "alice@example.com",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    async def git(self, *args: str) -> str:
        done = await asyncio.to_thread(
            subprocess.run, ["git", *args], cwd=self.work, env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout


@pytest.fixture
async def devhub_on_host(tmp_path: Path, registry_host: str) -> AsyncIterator[RunningDevHub]:
    running = await start(
        tmp_path / "devhub", host=host_address(registry_host), webhook_secret=WEBHOOK_SECRET, keygen=shared_key
    )
    yield running
    await running.stop()


@pytest.fixture
def kube(tmp_path: Path) -> Any:
    played = KubePlay(tmp_path / "kube")
    yield played
    played.down()


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


async def wait_ready(url: str, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            with await asyncio.to_thread(urllib.request.urlopen, url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if loop.time() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout}s")
        await asyncio.sleep(0.5)


async def test_an_lfs_model_over_100_mib_is_reviewed_deployed_and_served_through_the_charts_git_source(
    devhub_on_host: RunningDevHub,
    tmp_path: Path,
    big_model: Path,
    podman_url: str,
    runner_image: str,
    product_image: str,
    kube: KubePlay,
) -> None:
    hub = devhub_on_host.hub
    big = big_model.read_bytes()
    big_sha = hashlib.sha256(big).hexdigest()
    assert len(big) > GITHUB_FILE_LIMIT
    x, y = eval_rows()
    session = onnxruntime.InferenceSession(str(big_model), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x.astype(np.float32)})[0].ravel().astype(np.float64)

    async with bot_running(
        devhub_on_host,
        tmp_path,
        container_engine_url=podman_url,
        sandbox_mount_runtime=True,
        sandbox_image=runner_image,
    ) as bot:
        await hub.create_repo(MODEL_REPO, {"README.md": "# grid model\n"})
        await hub.create_repo(DEPLOY_REPO, {"README.md": "# deploy\n"})
        installation_id = await hub.install("acme", [MODEL_REPO, DEPLOY_REPO])
        hub.set_permission(MODEL_REPO, "alice", "write")

        # A team's push: the base with a small grid model, then a PR with the big one, both through git-lfs.
        client = Client(tmp_path / "work", hub.issue_token(installation_id).value)
        clone_url = f"{devhub_on_host.base_url}/{MODEL_REPO}.git"
        client.work.parent.mkdir(exist_ok=True)
        await asyncio.to_thread(
            subprocess.run, ["git", "clone", "--quiet", clone_url, str(client.work)], env=client.env, check=True
        )
        await client.git("lfs", "install", "--local")
        await client.git("lfs", "track", "*.onnx")
        (client.work / "models").mkdir()
        (client.work / "data").mkdir()
        await asyncio.to_thread(write_grid_regressor, client.work / "models" / "grid.onnx", 4)
        (client.work / "data" / "eval.csv").write_text(csv(x, y))
        (client.work / ".modelship.yml").write_text(CONFIG)
        await client.git("add", "-A")
        await client.git("commit", "--quiet", "-m", "A small grid model")
        await client.git("push", "--quiet", "origin", "HEAD:main")
        await client.git("checkout", "--quiet", "-b", "bigger-grid")
        (client.work / "models" / "grid.onnx").write_bytes(big)
        await client.git("commit", "--quiet", "-am", "A 72-bin grid: 107 MB, in Git LFS")
        await client.git("push", "--quiet", "origin", "bigger-grid")
        pointer = subprocess.run(
            ["git", "--git-dir", str(hub.git.path(MODEL_REPO)), "cat-file", "blob", "bigger-grid:models/grid.onnx"],
            capture_output=True,
            check=True,
        ).stdout
        assert pointer.startswith(b"version https://git-lfs.github.com/spec/v1") and len(pointer) < 200

        number = await hub.open_pr(MODEL_REPO, "bigger-grid", user="alice", title="Bigger grid")
        head_sha = hub.pull(MODEL_REPO, number).head_sha
        await settle(bot, timeout=600)

        # Reviewed on the real bytes: the bot's hash is the object's, the numbers are ONNX Runtime's.
        reviewed = await reviewed_model(bot.service.services.engine, MODEL_REPO, number, head_sha, "grid")
        assert reviewed is not None, [c.body for c in hub.comments.values()]
        assert reviewed.model_sha256 == big_sha
        assert reviewed.metrics["mae"] == pytest.approx(mean_absolute_error(y, expected), rel=1e-6)
        assert reviewed.metrics["rmse"] == pytest.approx(mean_squared_error(y, expected) ** 0.5, rel=1e-6)
        assert reviewed.metrics["r2"] == pytest.approx(r2_score(y, expected), rel=1e-6)

        # Merged: the deploy commit pins the object's sha256, never the pointer's.
        await hub.merge_pr(MODEL_REPO, number)
        await settle(bot, timeout=300)
        shown = subprocess.run(
            ["git", "show", "main:environments/staging/grid/values.yaml"],
            cwd=hub.git.path(DEPLOY_REPO),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        deployed = yaml.safe_load(shown)
        assert deployed["model"]["sha256"] == big_sha and deployed["model"]["path"] == "models/grid.onnx"
        assert deployed["model"].get("artifact", "") == ""  # no registry: the chart's git source serves it

    # The chart as a team without a registry runs it: the pod fetches the pinned revision over git,
    # resolves LFS through devhub's batch API, checks the sha256, then serves.
    registry, _, rest = product_image.partition("/")
    repository, _, tag = rest.rpartition(":")
    port = free_port()
    values = {
        **deployed,
        "replicaCount": 1,
        "image": {"registry": registry, "repository": repository, "tag": tag},
        "modelSource": {"gitUrl": clone_url},
        "server": {"port": port},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }
    rendered = render_chart_sync(CHART, values, release="grid-lfs", namespace="models")
    assert isinstance(rendered, Rendered), rendered
    kube.play(rendered.documents(), name="grid-lfs")
    [pod] = await asyncio.to_thread(kube.wait, "grid-lfs-model-server", "model-server", 1, timeout=180)
    await wait_ready(f"http://{pod.ip}:{port}/v2/health/ready")
    answer = await asyncio.to_thread(post, f"http://{pod.ip}:{port}/predict", {"instances": x.tolist()})
    assert answer["predictions"] == pytest.approx(expected.tolist(), rel=1e-6)
    assert f"verified models/grid.onnx at {deployed['model']['revision']}" in kube.logs(pod.name)
