"""What charts/model-server renders really runs: Helm's SDK renders it, `podman kube play` runs it
unchanged, and the pod serves exactly the artifact the values pin, or refuses to start and says why."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest

from bot.artifacts.registry import ModelArtifact, OciRegistry
from bot.deploy.helm import Rendered, render_chart_sync
from devkit.kube import KubePlay, PlayedContainer
from devkit.onnx_models import IRIS_SETOSA, IRIS_VIRGINICA, write_iris_classifier, write_regressor

pytestmark = pytest.mark.slow
CHART = Path(__file__).resolve().parents[2] / "charts" / "model-server"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[KubePlay]:
    played = KubePlay(tmp_path / "kube")
    yield played
    played.down()


def values(image: str, artifact: ModelArtifact, *, sha256: str | None = None, replicas: int = 1) -> dict[str, Any]:
    registry, _, rest = image.partition("/")
    repository, _, tag = rest.rpartition(":")
    return {
        "environment": "staging",
        "replicaCount": replicas,
        "image": {"registry": registry, "repository": repository, "tag": tag},
        "modelSource": {"insecure": True},
        "model": {
            "name": "iris",
            "repository": "acme/iris-model",
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "path": "models/iris.onnx",
            "sha256": sha256 or artifact.file_sha256,
            "variant": "onnx",
            "artifact": artifact.reference,
        },
    }


def render(vals: dict[str, Any], release: str) -> list[dict[str, Any]]:
    rendered = render_chart_sync(CHART, vals, release=release, namespace="models")
    assert isinstance(rendered, Rendered), rendered
    documents = rendered.documents()
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert "initContainers" not in deployment["spec"]["template"]["spec"]  # podman cannot run them: nor do we
    return documents


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def wait_serving(container: PlayedContainer, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{container.ip}:8080/v2/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{container.name} not ready after {timeout}s")
        time.sleep(0.25)


async def test_the_rendered_chart_serves_the_pinned_artifact_and_predicts_as_the_file_does(
    registry: OciRegistry, product_image: str, kube: KubePlay, tmp_path: Path
) -> None:
    model = tmp_path / "iris.onnx"
    write_iris_classifier(model)
    artifact = await registry.push_model(
        model, model_repo="acme/iris-model", model="iris", revision="0123456789abcdef", variant="onnx"
    )
    # One replica: podman 4.3 publishes every containerPort on the host, so a second one cannot bind.
    kube.play(render(values(product_image, artifact), "iris-ok"), name="iris-ok")
    pods = kube.wait("iris-ok-model-server", "model-server", 1)
    rows = np.array([IRIS_SETOSA, IRIS_VIRGINICA], dtype=np.float32)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    expected = [str(label) for label in session.run(None, {session.get_inputs()[0].name: rows})[0].tolist()]
    for pod in pods:
        wait_serving(pod)
        answer = post(f"http://{pod.ip}:8080/predict", {"instances": rows.tolist()})
        assert answer["predictions"] == expected, answer
        with urllib.request.urlopen(f"http://{pod.ip}:8080/metrics", timeout=5) as scraped:
            metrics = scraped.read().decode()
        assert 'env="staging"' in metrics and 'model="iris"' in metrics
    assert "verified" in kube.logs(pods[0].name)


async def test_values_pinned_to_other_bytes_make_the_pod_refuse_and_say_why(
    registry: OciRegistry, product_image: str, kube: KubePlay, tmp_path: Path
) -> None:
    """A values file edited by hand to another file's sha256 (or a tag re-pushed with other bytes behind
    the pinned digest's back): the server never serves, and its log names the mismatch."""
    model, other = tmp_path / "iris.onnx", tmp_path / "other.onnx"
    write_iris_classifier(model)
    write_regressor(other)
    artifact = await registry.push_model(
        model, model_repo="acme/iris-model", model="iris", revision="0123456789abcdef", variant="onnx"
    )
    tampered = await registry.push_model(
        other, model_repo="acme/iris-model", model="iris", revision="0123456789abcdef", variant="onnx"
    )
    assert tampered.tag == artifact.tag  # the tag now names other bytes; the values still pin a digest
    vals = values(product_image, tampered, sha256=artifact.file_sha256)
    kube.play(render(vals, "iris-bad"), name="iris-bad")
    logs = kube.first_exit("iris-bad-model-server", "model-server")
    assert "refused to serve" in logs and f"does not match the pinned {artifact.file_sha256}" in logs, logs
    # The pod never answered: nothing listened long enough to be ready.
    assert all(not c.running or c.restarts for c in kube.containers("iris-bad-model-server", "model-server"))
