"""The reviewed bytes ship, end to end: a PR is reviewed in the real sandbox, the kept `onnx_optimized`
variant is published to the real registry with its evidence, the merge commits values pinning its digest,
and what Helm renders from those committed values runs under `podman kube play` and serves those bytes.

Then the failure modes of the same path: a redelivered merge pushes and commits nothing again, and a
registry that stays down during a merge is retried, then fails visibly (PR comment, Deployment status)
with no commit.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import secrets
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import requests
from sqlalchemy import select

from bot.artifacts.publish import kept_run
from bot.artifacts.registry import Backoff, OciRegistry
from bot.context import need
from bot.deploy.helm import Rendered, render_chart_sync
from bot.deploy.manifest import current_ref
from bot.store.review_models import Review
from bot.store.reviews import ReviewRecord, record_from_json, save_review
from contract import oci
from devkit.demo import retrain_sample, sample_files
from devkit.devhub import RunningDevHub
from devkit.kube import KubePlay
from devkit.processes import free_port
from tests.fixtures.bot import RunningBot, bot_running

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-model-repo"
CHART = ROOT / "charts" / "model-server"
BOT = "modelship[bot]"
VALUES = "environments/staging/churn/values.yaml"
# requires: [] — publishing is this test's subject, and the sample's retrain may fail a gate, which would
# hold the merge back (review gating has its own test: tests/e2e/test_deploy_gating.py).
CONFIG_TAIL = """
environments:
  staging: {{auto: true, requires: []}}
deploy: {{repository: {deploy}}}
"""


def deploy_values(image: str, port: int) -> str:
    """The platform team's staging file before the first deploy: the image, the registry, a free port."""
    registry, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    return (
        "# Staging: owned by the platform team; Modelship writes the model block.\n"
        "replicaCount: 1  # podman publishes containerPorts on the host: one replica\n"
        f"image:\n  registry: {registry}\n  repository: {repository}\n  tag: {tag!r}\n"
        "modelSource:\n  insecure: true  # the local registry speaks plain HTTP\n"
        f"server:\n  port: {port}\n"
    )


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=bare, check=True, capture_output=True, text=True).stdout


def commits(devhub: RunningDevHub, repo: str) -> list[str]:
    return git(devhub.hub.git.path(repo), "rev-list", "main").split()


def deploy_comment(devhub: RunningDevHub, repo: str, number: int) -> str:
    [body] = [
        c.body
        for c in devhub.hub.comments.values()
        if c.repo == repo and c.issue_number == number and "<!-- modelship:deploy -->" in c.body
    ]
    return body


def review_comment(devhub: RunningDevHub, repo: str, number: int) -> str:
    [body] = [
        c.body
        for c in devhub.hub.comments.values()
        if c.repo == repo and c.issue_number == number and "<!-- modelship:review -->" in c.body
    ]
    return body


def eval_rows(count: int = 8) -> list[list[float]]:
    with (SAMPLE / "data" / "eval.csv").open() as f:
        rows = itertools.islice(csv.DictReader(f), count)
        return [[float(v) for k, v in row.items() if k != "label"] for row in rows]


def read_back(reference: str, digest: str) -> dict[str, Any]:
    ref = oci.Reference.parse(reference)
    answer = requests.get(
        f"http://{ref.registry}/v2/{ref.repository}/manifests/{digest}",
        headers={"Accept": oci.MANIFEST_MEDIA_TYPE},
        timeout=10,
    )
    answer.raise_for_status()
    manifest: dict[str, Any] = answer.json()
    return manifest


def blob(reference: str, digest: str) -> bytes:
    ref = oci.Reference.parse(reference)
    answer = requests.get(f"http://{ref.registry}/v2/{ref.repository}/blobs/{digest}", timeout=10)
    answer.raise_for_status()
    return answer.content


class CountingRegistry(OciRegistry):
    """The bot's registry client, counting model pushes and requests (to prove what did not happen)."""

    pushes = 0
    requests = 0

    async def push_model(self, model_file: Path, **kwargs: Any) -> Any:
        type(self).pushes += 1
        return await super().push_model(model_file, **kwargs)

    def _request(self, *args: Any, **kwargs: Any) -> Any:
        type(self).requests += 1
        return super()._request(*args, **kwargs)


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return retrain_sample(tmp_path_factory.mktemp("retrain") / "repo", 20, 3)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubePlay]:
    played = KubePlay(tmp_path / "kube")
    yield played
    played.down()


@pytest.fixture
async def shipping_bot(
    devhub: RunningDevHub, tmp_path: Path, podman_url: str, runner_image: str, registry_host: str
) -> AsyncIterator[RunningBot]:
    prefix = f"t{secrets.token_hex(4)}"
    async with bot_running(
        devhub,
        tmp_path,
        container_engine_url=podman_url,
        sandbox_mount_runtime=True,
        sandbox_image=runner_image,
        registry=f"{registry_host}/{prefix}",
        registry_insecure=True,
    ) as running:
        deploy = need(running.service.services.deploy, "deploy")
        assert deploy.pins.registry is not None
        # Same client as built from settings; counting what it is asked for.
        deploy.pins.registry.__class__ = CountingRegistry
        yield running


async def test_the_reviewed_variant_ships_by_digest_and_the_rendered_chart_serves_it(
    devhub: RunningDevHub,
    shipping_bot: RunningBot,
    retrained: bytes,
    product_image: str,
    registry_host: str,
    kube: KubePlay,
) -> None:
    hub, bot = devhub.hub, shipping_bot
    repo, deploy = f"acme/pub-{secrets.token_hex(3)}", f"acme/pub-deploy-{secrets.token_hex(3)}"
    port = free_port()
    await hub.create_repo(deploy, {"README.md": "# deploy\n", VALUES: deploy_values(product_image, port)})
    files = sample_files()
    files[".modelship.yml"] += CONFIG_TAIL.format(deploy=deploy).encode()
    await hub.create_repo(repo, files)
    await hub.install("acme", [repo, deploy])
    hub.set_permission(repo, "alice", "write")

    # PR -> review in the sandbox: the kept variant is published by the bot, and the comment says where.
    await hub.push(repo, "retrain", {"models/churn.skops": retrained}, message="Retrain with 20 trees")
    number = await hub.open_pr(repo, "retrain", title="Retrain", user="alice")
    await bot.idle(timeout=300)
    head_sha = hub.pull(repo, number).head_sha
    async with bot.service.services.engine.connect() as conn:
        review = (await conn.execute(select(Review).where(Review.repo == repo, Review.head_sha == head_sha))).one()
    churn = record_from_json(review.summary).models["churn"]
    assert churn.variant == "onnx_optimized", churn
    assert churn.artifact is not None and churn.artifact_error is None, churn
    assert churn.artifact.startswith(f"{registry_host}/{bot.settings.registry.partition('/')[2]}/{repo}@sha256:")
    assert f"published as `{churn.artifact}`" in review_comment(devhub, repo, number)

    # The artifact, read back: the kept bytes under /model/, annotated, with the evidence as a referrer.
    ref = oci.Reference.parse(churn.artifact)
    assert ref.digest is not None
    manifest = read_back(churn.artifact, ref.digest)
    notes = manifest["annotations"]
    assert notes[oci.FILE_SHA256] == churn.variant_sha256 and notes[oci.VARIANT] == "onnx_optimized"
    assert notes[oci.REVISION] == head_sha and notes[oci.PULL_REQUEST] == str(number)
    assert notes[oci.SOURCE] == f"{devhub.base_url}/{repo}" or notes[oci.SOURCE].endswith(f"/{repo}")
    assert notes[oci.VERDICT] in ("passed", "failed") and notes[oci.CREATED] == churn.artifact_created
    kept = kept_run(bot.settings.data_dir, repo, head_sha) / str(churn.variant_artifact)
    assert kept.read_bytes() in blob(churn.artifact, manifest["layers"][0]["digest"])
    registry = OciRegistry(ref.registry, insecure=True)
    [evidence] = await registry.referrers(churn.artifact)
    assert evidence["artifactType"] == oci.EVIDENCE_ARTIFACT_TYPE
    files = {
        layer["annotations"][oci.TITLE]: blob(churn.artifact, layer["digest"])
        for layer in read_back(churn.artifact, evidence["digest"])["layers"]
    }
    assert json.loads(files["report.json"])["reviewed"]["variant_sha256"] == churn.variant_sha256
    assert "<!-- modelship:review -->" in files["comment.md"].decode()

    # Merge -> one deploy commit whose values pin the digest and the file sha256; no second push.
    pushes = CountingRegistry.pushes
    before = commits(devhub, deploy)
    merge_sha = await hub.merge_pr(repo, number, user="alice")
    await bot.idle(timeout=60)
    after = commits(devhub, deploy)
    assert len(after) == len(before) + 1, deploy_comment(devhub, repo, number)
    committed = git(hub.git.path(deploy), "show", f"main:{VALUES}")
    pinned = current_ref(committed)
    assert pinned is not None and (pinned.artifact, pinned.sha256) == (churn.artifact, churn.variant_sha256)
    assert pinned.revision == merge_sha and "owned by the platform team" in committed
    assert f"Artifact:  {churn.artifact}" in git(hub.git.path(deploy), "log", "-1", "--format=%B", "main")
    assert CountingRegistry.pushes == pushes  # the review's artifact was there: looked up, not pushed

    # What Helm renders from the committed file, played by podman, serves exactly those bytes.
    rendered = render_chart_sync(CHART, committed, release="churn-pub", namespace="models")
    assert isinstance(rendered, Rendered), rendered
    kube.play(rendered.documents(), name="churn-pub")
    [pod] = kube.wait("churn-pub-model-server", "model-server", 1, timeout=180)
    await asyncio.to_thread(wait_ready, pod.ip, port)
    assert f"verified {churn.artifact} (file sha256 {churn.variant_sha256})" in kube.logs(pod.name)
    rows = eval_rows()
    answer = post(f"http://{pod.ip}:{port}/predict", {"instances": rows})
    session = onnxruntime.InferenceSession(str(kept), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: np.array(rows, dtype=np.float32)})[0].tolist()
    assert [str(p) for p in answer["predictions"]] == [str(e) for e in expected]
    assert [str(p) for p in answer["predictions"]] == sklearn_predictions(retrained, rows)
    assert answer["version"] == merge_sha

    # A redelivered merge: nothing pushed, nothing committed.
    closed = next(
        d
        for d in reversed(hub.deliveries)
        if (d.event, d.action) == ("pull_request", "closed") and d.payload["repository"]["full_name"] == repo
    )
    await hub.redeliver(closed.guid)
    await asyncio.sleep(0.3)
    await bot.idle(timeout=60)
    assert commits(devhub, deploy) == after and CountingRegistry.pushes == pushes

    # The registry goes down during the next merge: retried, then a visible failure, and no commit.
    deploy_service = need(bot.service.services.deploy, "deploy")
    live = deploy_service.pins.registry
    dead = CountingRegistry(f"127.0.0.1:{free_port()}", insecure=True, backoff=Backoff(attempts=3, first_delay=0.05))
    deploy_service.pins.registry = dead
    runners = bot.service.workers.runners
    review_runner = runners["review"]

    async def no_review(job: Any) -> None:
        """PR #2 stands for a reviewed PR whose record is #1's (its sandbox run adds nothing here)."""

    try:
        requests_before = CountingRegistry.requests
        runners["review"] = no_review  # type: ignore[index]
        await hub.push(repo, "retrain-2", {"models/churn.skops": retrained + b"\n"}, message="Retrain again")
        number2 = await hub.open_pr(repo, "retrain-2", title="Retrain again", user="alice")
        await bot.idle(timeout=60)
        head2 = hub.pull(repo, number2).head_sha
        down = churn.artifact.replace(ref.registry, dead.host)
        await save_review(
            bot.service.services.engine,
            repo=repo,
            number=number2,
            head_sha=head2,
            base_sha=merge_sha,
            conclusion="success",
            # Published to the registry this server is configured with, which is now down.
            record=ReviewRecord(models={"churn": replace(churn, artifact=down)}),
        )
        merge2 = await hub.merge_pr(repo, number2, user="alice")
        await asyncio.sleep(0.3)
        await bot.idle(timeout=120)
    finally:
        deploy_service.pins.registry = live
        runners["review"] = review_runner  # type: ignore[index]
    assert commits(devhub, deploy) == after
    assert CountingRegistry.requests - requests_before >= 3  # every attempt of the back-off reached for it
    body = deploy_comment(devhub, repo, number2)
    assert "could not be found in or published to the registry" in body and dead.host in body, body
    assert "nothing was committed" in body
    [deployment] = [d for d in hub.deployments.values() if d.repo == repo and d.sha == merge2]
    assert deployment.statuses[-1].state in ("failure", "error")
    assert f"registry {dead.host} unreachable" in (deployment.statuses[-1].description or "")


def wait_ready(ip: str, port: int, timeout: float = 90) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{ip}:{port}/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pod at {ip}:{port} was not ready after {timeout}s")
        time.sleep(0.25)


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def sklearn_predictions(model_bytes: bytes, rows: list[list[float]]) -> list[str]:
    """The reviewed scikit-learn model's own predictions (the test may load models; the bot never does)."""
    import skops.io as sio

    model = sio.loads(model_bytes, trusted=sio.get_untrusted_types(data=model_bytes))
    return [str(p) for p in model.predict(np.array(rows)).tolist()]
