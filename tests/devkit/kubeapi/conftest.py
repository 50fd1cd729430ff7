"""Helpers for the stand-in's tests: clients of the official ``kubernetes`` library through the kubeconfig."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiClient

from devkit.kubeapi import KubeAPI, running_in_thread


@pytest.fixture(scope="session")
def stand_in_kubeconfig(kubeapi: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Always the stand-in's (these tests test it), even when MODELSHIP_TEST_KUBECONFIG names a cluster."""
    return kubeapi.write_kubeconfig(tmp_path_factory.mktemp("stand-in") / "config")


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPI]:
    """A stand-in with no kubelet (no podman needed): for tests of the API alone; pods stay Pending."""
    with running_in_thread() as api:
        yield api
        assert not api.violations, "\n".join(api.violations)


@pytest.fixture(scope="module")
def api_client(stand_in_kubeconfig: Path) -> Iterator[ApiClient]:
    client = kubernetes.config.new_client_from_config(str(stand_in_kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="module")
def core(api_client: ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def batch(api_client: ApiClient) -> kubernetes.client.BatchV1Api:
    return kubernetes.client.BatchV1Api(api_client)


@pytest.fixture
def namespace(core: kubernetes.client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace per test, deleted (with everything in it) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
    eventually(lambda: name not in [n.metadata.name for n in core.list_namespace().items], timeout=60)


def eventually(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g}s: {check}")
        time.sleep(interval)


def sandbox_container(image: str, command: list[str], **extra: Any) -> dict[str, Any]:
    """A container with the product's sandbox controls (all of which the kubelet enforces)."""
    container = {
        "name": "main",
        "image": image,
        "command": command,
        "securityContext": {
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi", "ephemeral-storage": "16Mi"}},
    }
    container.update(extra)
    return container


def job_body(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,  # `sleep` as PID 1 ignores SIGTERM: do not wait 30 s to kill it
        "containers": containers,
    }
    pod_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "kubeapi-test"}},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}, **spec},
    }
