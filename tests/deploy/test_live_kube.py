"""Live tracking with the Kubernetes rollout status: a stuck rollout says why in the GitHub Deployment status
and the dossier; an exceeded progress deadline fails it; a reader that cannot read never stops tracking.

Real parts: the dev kit's Kubernetes API stand-in (the Deployment's status written through its status
subresource as the controller would, pods' waiting reasons as the kubelet would — the pods are bound to
another node so the stand-in's kubelet leaves them alone), the official client through a kubeconfig, devhub
for GitHub, a real database. Prometheus is the scripted edge of tests/deploy/test_live.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes
import pytest
from gidgethub.aiohttp import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config.repo import parse_repo_config
from bot.deploy.kube_rollout import KubeRolloutReader
from bot.deploy.live import LiveTracker
from bot.deploy.records import DeployRecords
from bot.store import deployments
from devkit.devhub import RunningDevHub
from tests.deploy.test_live import NEW, OLD, TEMPLATE, Heard, Replicas
from tests.devkit.devhub.helpers import client, install_app

REPO = "acme/models"


class Configs:
    def __init__(self, namespace: str) -> None:
        self.config = parse_repo_config(
            f"""\
version: 1
models:
  - {{name: churn, path: models/churn.onnx, task: classification, dataset: {{path: data/eval.csv, target: label}}}}
environments:
  staging:
    progress_deadline: 60s
    on_not_live: alert
    kubernetes: {{namespace: {namespace}, deployment: churn}}
deploy: {{repository: acme/deploy}}
"""
        )

    async def read_config(self, repo: str) -> Any:
        return self.config


@pytest.fixture
def kube(kubeconfig: Path) -> Iterator[tuple[Any, str]]:
    """An API client and a fresh namespace holding the model server's Deployment (2 replicas wanted)."""
    api = kubernetes.config.new_client_from_config(str(kubeconfig))
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    namespace = f"live-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    template = {
        "metadata": {"labels": {"app": "churn"}},
        "spec": {"containers": [{"name": "model-server", "image": "ghcr.io/acme/ms:typo"}]},
    }
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "churn"}}, "template": template}
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "churn"}, "spec": spec})
    try:
        yield api, namespace
    finally:
        core.delete_namespace(namespace)
        api.close()


def controller_says(api: Any, namespace: str, *, available: int, progressing: dict[str, str]) -> None:
    """Write the Deployment's status as the deployment controller would (its status subresource)."""
    status = {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "availableReplicas": available,
        "conditions": [{"type": "Progressing", "status": "True", **progressing}],
    }
    kubernetes.client.AppsV1Api(api).patch_namespaced_deployment_status(
        "churn", namespace, {"status": status}, _content_type="application/merge-patch+json"
    )


def pod_waiting(api: Any, namespace: str, name: str, reason: str, message: str) -> None:
    """A pod of the Deployment whose container waits for ``reason``, as the kubelet reports it."""
    core = kubernetes.client.CoreV1Api(api)
    body = {
        "metadata": {"name": name, "labels": {"app": "churn"}},
        "spec": {"nodeName": "elsewhere", "containers": [{"name": "model-server", "image": "ghcr.io/acme/ms:typo"}]},
    }
    core.create_namespaced_pod(namespace, body)
    container = {
        "name": "model-server",
        "image": "ghcr.io/acme/ms:typo",
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": message}},
    }
    status = {"phase": "Pending", "containerStatuses": [container]}
    core.patch_namespaced_pod_status(name, namespace, {"status": status}, _content_type="application/merge-patch+json")


@pytest.fixture
async def gh(devhub: RunningDevHub) -> AsyncIterator[GitHubAPI]:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session, REPO)
        yield client(devhub, session, installed.token)


async def deploy(engine: AsyncEngine, devhub: RunningDevHub, gh: GitHubAPI) -> tuple[int, int, int]:
    """A merged PR's deploy: its GitHub Deployment (in_progress) and the row live tracking follows."""
    await devhub.hub.push(REPO, "ship", {"models/churn.onnx": "new"})
    number = await devhub.hub.open_pr(REPO, "ship")
    github = await gh.post(f"/repos/{REPO}/deployments", data={"ref": "main", "environment": "staging"})
    async with engine.begin() as conn:
        for sha256, commit in ((OLD, "1"), (NEW, "2")):
            row_id = await deployments.record(
                conn,
                track=True,
                repo=REPO,
                environment="staging",
                model="churn",
                version=commit * 40,
                deploy_repo="acme/deploy",
                deploy_commit=commit * 40,
                sha256=sha256,
                state="deployed",
                source_pr=number if sha256 == NEW else None,
                github_deployment_id=github["id"] if sha256 == NEW else None,
            )
    return row_id, int(github["id"]), number


def tracker(engine: AsyncEngine, gh: Any, reader: Any, namespace: str, clock: list[float]) -> LiveTracker:
    async def github_for(repo: str) -> Any:
        return gh

    return LiveTracker(
        engine,
        DeployRecords(engine, web_url="https://github.com", bot_login="modelship[bot]", live_tracking=True),
        configs=Configs(namespace),
        github_for=github_for,
        provider=Replicas(**{OLD: 2}),  # the old replicas keep serving: the new ones never come up
        template=TEMPLATE,
        listeners=[Heard()],
        interval=0.1,
        holder="pod-a",
        clock=lambda: clock[0],
        reader=reader,
    )


async def rollout(engine: AsyncEngine, row_id: int) -> tuple[str, str]:
    async with engine.connect() as conn:
        row = await deployments.latest(conn, REPO, "staging", "churn")
    assert row is not None and row["id"] == row_id
    return row["rollout"], row["rollout_detail"] or ""


def dossier(devhub: RunningDevHub, number: int) -> str:
    [body] = [
        c.body
        for c in devhub.hub.comments.values()
        if c.repo == REPO and c.issue_number == number and "<!-- modelship:deploy -->" in c.body
    ]
    return body


async def test_an_image_that_does_not_pull_is_the_cause_in_the_deployment_status_and_the_dossier(
    engine: AsyncEngine, devhub: RunningDevHub, gh: GitHubAPI, kube: tuple[Any, str]
) -> None:
    api, namespace = kube
    controller_says(api, namespace, available=0, progressing={"reason": "ReplicaSetUpdated"})
    pulling = 'Back-off pulling image "ghcr.io/acme/ms:typo"'
    pod_waiting(api, namespace, "churn-7d-a", "ImagePullBackOff", pulling)
    row_id, github_id, number = await deploy(engine, devhub, gh)
    clock = [time.time()]
    live = tracker(engine, gh, KubeRolloutReader(api), namespace, clock)

    await live.round()
    phase, detail = await rollout(engine, row_id)
    assert phase == "committed"  # still inside the bot's deadline: the cause is said, nothing fails yet
    cause = f"ImagePullBackOff: churn-7d-a/model-server — {pulling}"
    assert detail.startswith(f"{cause} · 0 of 2 ready replicas serve the new file")

    clock[0] += 120  # past progress_deadline: 60s
    await live.round()

    assert (await rollout(engine, row_id))[0] == "failed"
    [*_, last] = devhub.hub.deployments[github_id].statuses
    assert last.state == "failure" and len(last.description) <= 140
    assert last.description.startswith("ImagePullBackOff: churn-7d-a/model-server — Back-off pulling image")
    assert cause in dossier(devhub, number)


async def test_an_exceeded_progress_deadline_fails_the_deploy_before_the_bots_own_deadline(
    engine: AsyncEngine, devhub: RunningDevHub, gh: GitHubAPI, kube: tuple[Any, str]
) -> None:
    api, namespace = kube
    controller_says(api, namespace, available=0, progressing={"reason": "ProgressDeadlineExceeded"})
    row_id, github_id, number = await deploy(engine, devhub, gh)

    await tracker(engine, gh, KubeRolloutReader(api), namespace, [time.time()]).round()

    phase, detail = await rollout(engine, row_id)
    assert phase == "failed" and detail.startswith("ProgressDeadlineExceeded · 0 of 2 ready replicas")
    [*_, last] = devhub.hub.deployments[github_id].statuses
    assert last.state == "failure" and last.description.startswith("ProgressDeadlineExceeded")
    assert "exceeded its progress deadline" in dossier(devhub, number)


async def test_a_reader_that_cannot_read_is_said_in_the_detail_and_logged_once_and_tracking_goes_on(
    engine: AsyncEngine,
    devhub: RunningDevHub,
    gh: GitHubAPI,
    kube: tuple[Any, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, _ = kube
    row_id, _, _ = await deploy(engine, devhub, gh)
    live = tracker(engine, gh, KubeRolloutReader(api), "no-such-namespace", [time.time()])

    with caplog.at_level(logging.WARNING, logger="bot.deploy.live"):
        await live.round()
        await live.round()

    phase, detail = await rollout(engine, row_id)
    assert phase == "committed"
    assert detail.startswith("0 of 2 ready replicas") and detail.count("unreadable") == 1  # said once, not per round
    assert "rollout status of no-such-namespace/churn unreadable (404 Not Found)" in detail
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1


def test_the_bot_reads_rollouts_with_the_sandbox_backends_kubernetes_access_and_only_then(
    kube: tuple[Any, str], kubeconfig: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app import rollout_reader
    from bot.settings import Settings

    def settings(**values: Any) -> Settings:
        return Settings(webhook_secret="s", **values)

    assert rollout_reader(settings()) is None  # the Docker backend and no kubeconfig: no Kubernetes access
    reader = rollout_reader(settings(sandbox_backend="kubernetes", kubernetes_kubeconfig=kubeconfig))
    assert isinstance(reader, KubeRolloutReader)
    status = reader._status(kube[1], "churn")  # it really reaches the cluster the kubeconfig names
    assert status.state == "waiting" and status.replicas == 2

    with caplog.at_level(logging.WARNING, logger="bot.app"):
        assert rollout_reader(settings(kubernetes_kubeconfig=tmp_path / "missing")) is None
    assert "no rollout status from Kubernetes" in caplog.text and str(tmp_path / "missing") in caplog.text


def kubelet_says(
    api: Any, namespace: str, name: str, state: dict[str, Any], last: dict[str, Any] | None = None
) -> None:
    """The pod's container now in ``state`` (and ``last`` its previous instance), as the kubelet reports it."""
    container = {
        "name": "model-server",
        "image": "ghcr.io/acme/ms:typo",
        "imageID": "",
        "ready": False,
        "restartCount": 3 if last else 0,
        "state": state,
        **({"lastState": last} if last else {}),
    }
    kubernetes.client.CoreV1Api(api).patch_namespaced_pod_status(
        name, namespace, {"status": {"containerStatuses": [container]}}, _content_type="application/merge-patch+json"
    )


def in_progress(devhub: RunningDevHub, github_id: int) -> list[str]:
    return [s.description for s in devhub.hub.deployments[github_id].statuses if s.state == "in_progress"]


async def test_each_new_stuck_cause_reaches_the_deployment_and_the_dossier_once_across_rounds_and_a_restart(
    engine: AsyncEngine, devhub: RunningDevHub, gh: GitHubAPI, kube: tuple[Any, str]
) -> None:
    api, namespace = kube
    controller_says(api, namespace, available=0, progressing={"reason": "ReplicaSetUpdated"})
    pod_waiting(api, namespace, "churn-7d-a", "ContainerCreating", "")
    row_id, github_id, number = await deploy(engine, devhub, gh)
    clock = [time.time()]
    live = tracker(engine, gh, KubeRolloutReader(api), namespace, clock)

    await live.round()
    assert in_progress(devhub, github_id) == []  # a container being created is not stuck: nothing to say yet

    pulling = 'Back-off pulling image "ghcr.io/acme/ms:typo"'
    kubelet_says(api, namespace, "churn-7d-a", {"waiting": {"reason": "ImagePullBackOff", "message": pulling}})
    told = await live.round()
    assert told.causes == {row_id: f"ImagePullBackOff: churn-7d-a/model-server — {pulling}"}
    [pull] = in_progress(devhub, github_id)
    assert pull.startswith(f"ImagePullBackOff: churn-7d-a/model-server — {pulling} · 0 of 2") and len(pull) <= 140
    assert f"⏳ not serving it yet: ImagePullBackOff: churn-7d-a/model-server — {pulling}" in dossier(devhub, number)

    await live.round()  # the same reading
    kubelet_says(api, namespace, "churn-7d-a", {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}})
    await live.round()  # the kubelet retrying the pull: the same cause
    restarted = tracker(engine, gh, KubeRolloutReader(api), namespace, clock)
    assert (await restarted.round()).causes == {}  # what was told is in the table, not in the old process
    assert in_progress(devhub, github_id) == [pull]

    refused = "refused to serve: model.onnx: sha256 1234 does not match the pinned abcd"
    kubelet_says(
        api,
        namespace,
        "churn-7d-a",
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        {"terminated": {"exitCode": 1, "reason": "Error", "message": f"Error: {refused}"}},
    )
    await restarted.round()
    await restarted.round()
    assert (await rollout(engine, row_id))[0] == "committed"
    [_, crash] = in_progress(devhub, github_id)
    assert crash.startswith(f"CrashLoopBackOff: churn-7d-a/model-server — {refused}")
    assert f"⏳ not serving it yet: CrashLoopBackOff: churn-7d-a/model-server — {refused}" in dossier(devhub, number)
