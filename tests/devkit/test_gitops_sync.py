"""The dev kit's GitOps sync: a commit to a values file in the deploy repository becomes running pods of
the chart Helm renders (podman kube play), serving the pinned sha256; a change rolls them, a deletion
removes them, and Prometheus scrapes them with the labels the guard's PromQL selects on."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.artifacts.registry import ModelArtifact, OciRegistry
from bot.guard.templates import load_templates
from devkit import kube
from devkit.devhub import RunningDevHub
from devkit.gitops_sync import GitOpsSync, Pod, _fraction, _values_pattern
from devkit.onnx_models import IRIS_SETOSA, write_iris_classifier, write_regressor
from devkit.processes import Prometheus

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = "acme/deploy"
VALUES = "environments/staging/iris/values.yaml"


def values(image: str, artifact: ModelArtifact, revision: str, replicas: int = 2) -> str:
    registry, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    return yaml.safe_dump(
        {
            "environment": "staging",
            "replicaCount": replicas,
            "image": {"registry": registry, "repository": repository, "tag": tag},
            "modelSource": {"insecure": True},
            "model": {
                "name": "iris",
                "repository": "acme/iris-model",
                "revision": revision,
                "path": "models/iris.onnx",
                "sha256": artifact.file_sha256,
                "variant": "onnx",
                "artifact": artifact.reference,
            },
        }
    )


def predict(pod: Pod, rows: list[list[float]]) -> Any:
    body = json.dumps({"instances": rows}).encode()
    request = urllib.request.Request(f"{pod.url}/predict", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["predictions"]


async def wait_pods(sync: GitOpsSync, check: Any, what: str, timeout: float = 120) -> list[Pod]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = sync.pods("staging", "iris")
        if check(pods):
            return pods
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{what}: pods {sync.pods('staging', 'iris')}; errors {sync.errors} {sync.last_error}")


async def wait_removed(sync: GitOpsSync, names: set[str], timeout: float = 30) -> None:
    """Until podman has none of these pods left (the sync removes them in the background)."""
    deadline = time.monotonic() + timeout
    while set(kube.pods_labelled(f"modelship.dev/gitops-sync={sync.name}")) & names:
        assert time.monotonic() < deadline, f"pods still there after {timeout}s: {names}"
        await asyncio.sleep(0.5)


@pytest.fixture
async def deploy_sync(devhub: RunningDevHub, prometheus: Prometheus, tmp_path: Path) -> AsyncIterator[GitOpsSync]:
    hub = devhub.hub
    await hub.create_repo(DEPLOY, {"README.md": b"# deploy\n"}, private=True)
    await hub.create_app()
    installation = await hub.install("acme", [DEPLOY])
    clone_url = f"{devhub.base_url}/{DEPLOY}.git"
    sync = GitOpsSync(
        clone_url, tmp_path / "sync", token=lambda: hub.issue_token(installation).value, prometheus=prometheus
    )
    sync.start()
    try:
        yield sync
    finally:
        await asyncio.to_thread(sync.stop)
        await asyncio.to_thread(sync.down)


@pytest.mark.slow
async def test_a_values_commit_becomes_pods_serving_its_sha256_and_a_change_rolls_them(
    deploy_sync: GitOpsSync,
    devhub: RunningDevHub,
    registry: OciRegistry,
    product_image: str,
    prometheus: Prometheus,
    tmp_path: Path,
) -> None:
    sync, hub = deploy_sync, devhub.hub
    iris, regressor = tmp_path / "iris.onnx", tmp_path / "regressor.onnx"
    write_iris_classifier(iris)
    write_regressor(regressor)
    push = dict(model_repo="acme/iris-model", model="iris", variant="onnx")
    v1 = await registry.push_model(iris, revision="1" * 40, **push)
    v2 = await registry.push_model(regressor, revision="2" * 40, **push)

    commit1 = await hub.push(DEPLOY, "main", {VALUES: values(product_image, v1, "1" * 40)}, message="deploy v1")
    applied = await asyncio.to_thread(sync.wait_rolled_out, "staging", "iris", sha256=v1.file_sha256)
    assert applied.commit == commit1 and applied.path == VALUES
    assert applied.seen_at <= (applied.applied_at or 0) <= (applied.rolled_out_at or 0)
    first = sync.pods("staging", "iris")
    assert len(first) == 2 and all(p.ready and p.sha256 == v1.file_sha256 for p in first), first
    # Two replicas of one Deployment on the same containerPort: each on its own pod IP.
    assert len({p.ip for p in first}) == 2 and {p.port for p in first} == {8080}
    for pod in first:
        assert predict(pod, [IRIS_SETOSA]) == ["0"]
        assert f"(file sha256 {v1.file_sha256})" in sync.logs(pod)

    # Prometheus scrapes each pod as its prometheus.io annotations say, with the labels the guard selects on.
    up = f'up{{job="kubernetes-pods",namespace="staging",env="staging",model="iris",pod="{first[0].name}"}} == 1'
    await asyncio.to_thread(prometheus.wait_for, up, 20)
    served = 'modelship_model_requests_total{{model="iris",env="staging",version="{}",status="200"}} > 0'
    await asyncio.to_thread(prometheus.wait_for, f"count({served.format('1' * 40)}) == 2", 20)
    scraped = await asyncio.to_thread(prometheus.query, served.format("1" * 40))
    assert {s["metric"]["pod"] for s in scraped} == {p.name for p in first}
    assert not any("exported_env" in s["metric"] for s in scraped)
    # The guard's own template over the pods' series: an error rate of 0 (not "no data").
    error_rate = load_templates(ROOT / "config" / "promql")["error_rate"]
    query = error_rate.render(model="iris", version="1" * 40, env="staging", window="30s")
    # (rate() needs an increase between two scrapes: requests after the first scrape of each pod)
    deadline = time.monotonic() + 20
    while True:
        for pod in first:
            predict(pod, [IRIS_SETOSA])
        rates = [float(s["value"][1]) for s in await asyncio.to_thread(prometheus.query, query)]
        if (rates and not math.isnan(rates[0])) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert rates == [0.0], rates

    # A rollout held after one new pod: one replica on the new sha256, one still on the old.
    sync.pause("staging", "iris", new_pods=1)
    await hub.push(DEPLOY, "main", {VALUES: values(product_image, v2, "2" * 40)}, message="deploy v2")
    mixed = await wait_pods(
        sync,
        lambda pods: (
            sorted((p.sha256, p.ready) for p in pods) == sorted([(v1.file_sha256, True), (v2.file_sha256, True)])
        ),
        "one old and one new replica",
    )
    old = next(p for p in mixed if p.sha256 == v1.file_sha256)
    new = next(p for p in mixed if p.sha256 == v2.file_sha256)
    assert predict(old, [IRIS_SETOSA]) == ["0"] and predict(new, [[3.0]]) == [pytest.approx(7.0, abs=1e-3)]
    await asyncio.sleep(2)  # held: still one of each
    assert {p.name for p in sync.pods("staging", "iris")} == {old.name, new.name}

    sync.resume("staging", "iris")
    commit2 = sync.applied("staging", "iris")
    applied = await asyncio.to_thread(sync.wait_rolled_out, "staging", "iris", sha256=v2.file_sha256)
    assert commit2 is not None and applied.commit == commit2.commit
    second = sync.pods("staging", "iris")
    assert len(second) == 2 and all(p.sha256 == v2.file_sha256 and p.ready for p in second)
    assert not {p.name for p in second} & {p.name for p in first}
    await wait_removed(sync, {p.name for p in first})
    assert any(what == f"removing {old.name}" for _, _, _, what in sync.events)

    # The values file deleted: its pods go, and so do their scrape targets.
    await hub.push(DEPLOY, "main", {VALUES: None}, message="undeploy")
    await wait_pods(sync, lambda pods: not pods, "the pods of the deleted values")
    gone = sync.applied("staging", "iris")
    assert gone is not None and gone.deleted
    await wait_removed(sync, {p.name for p in second})


@pytest.mark.slow
async def test_values_helm_refuses_leave_the_running_pods_alone_and_are_reported(
    deploy_sync: GitOpsSync, devhub: RunningDevHub
) -> None:
    await devhub.hub.push(DEPLOY, "main", {VALUES: "replicaCount: lots\n"}, message="typo")
    await asyncio.to_thread(deploy_sync.trigger)
    deadline = time.monotonic() + 20
    while ("staging", "iris") not in deploy_sync.errors and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert "Helm refused" in deploy_sync.errors[("staging", "iris")]
    assert "replicaCount" in deploy_sync.errors[("staging", "iris")]
    assert deploy_sync.pods() == [] and deploy_sync.applied("staging", "iris") is None


def test_the_values_layout_and_the_rolling_update_arithmetic_read_as_kubernetes_and_deploy_do() -> None:
    match = _values_pattern("environments/{env}/{model}/values.yaml").match("environments/prod/churn/values.yaml")
    assert match is not None and (match["env"], match["model"]) == ("prod", "churn")
    assert _values_pattern("environments/{env}/{model}/values.yaml").match("environments/a/b/c/values.yaml") is None
    assert _fraction("25%", 2, up=True) == 1 and _fraction("25%", 2, up=False) == 0 and _fraction(1, 9, up=False) == 1


def test_a_pod_for_podman_publishes_no_port_runs_no_probe_and_keeps_its_emptydirs_to_itself() -> None:
    template = {
        "metadata": {"labels": {"app": "x"}, "annotations": {"prometheus.io/port": "8080"}},
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9, "hostPort": 9}],
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                    "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}},
                    "volumeMounts": [{"name": "models", "mountPath": "/models"}, {"name": "cfg", "mountPath": "/c"}],
                }
            ],
            "volumes": [{"name": "models", "emptyDir": {}}, {"name": "cfg", "secret": {"secretName": "s"}}],
        },
    }
    pod = kube.podman_pod(template, name="p-1", labels={"sync": "me"})
    container = pod["spec"]["containers"][0]
    assert pod["kind"] == "Pod" and pod["metadata"]["labels"] == {"app": "x", "sync": "me"}
    assert container["ports"] == [{"containerPort": 9, "hostPort": 9}]  # asked for on the node: kept
    assert "readinessProbe" not in container and "livenessProbe" not in container
    assert [m["name"] for m in container["volumeMounts"]] == ["p-1-models", "cfg"]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["p-1-models", "cfg"]
    assert template["spec"]["volumes"][0]["name"] == "models"  # the rendered template is left as it was
