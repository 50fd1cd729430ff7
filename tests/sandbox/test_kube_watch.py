"""A run's pods followed by a watch (bot.sandbox.kube_watch) on the dev kit's API stand-in: every change
arrives without polling, a compacted history (410 Expired) is listed again, a deleted pod disappears."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.sandbox.kube_runner import KubeClients, connect
from bot.sandbox.kube_watch import RunPods

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture(loop_scope="session")
async def namespace(kubeconfig: Path) -> AsyncIterator[tuple[KubeClients, str]]:
    clients = connect(kubeconfig)
    name = f"watch-{secrets.token_hex(4)}"
    clients.core.create_namespace({"metadata": {"name": name}})
    yield clients, name
    clients.core.delete_namespace(name)
    clients.close()


async def until(watched: RunPods, check: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = await watched.pods(1.0)
        if check(pods):
            return pods
    raise AssertionError(f"not seen within {timeout:g}s")


@pytest.mark.asyncio(loop_scope="session")
async def test_a_watched_pod_is_followed_to_its_end_across_a_compaction_and_its_deletion(
    namespace: tuple[KubeClients, str], kube_test_image: str, kubeapi: Any
) -> None:
    clients, ns = namespace
    watched = RunPods(clients.core, clients.api, ns, "run=w1", timeout_s=2)
    try:
        assert await watched.pods(1.0) == []  # listed: nothing yet
        pod = {
            "metadata": {"name": "w1", "labels": {"run": "w1"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": kube_test_image, "command": ["sleep", "3"]}],
            },
        }
        other = {**pod, "metadata": {"name": "other", "labels": {"run": "other"}}}
        await asyncio.to_thread(clients.core.create_namespaced_pod, ns, other)  # not this run's
        await asyncio.to_thread(clients.core.create_namespaced_pod, ns, pod)
        running = await until(watched, lambda pods: any(p["status"].get("phase") == "Running" for p in pods))
        assert [p["metadata"]["name"] for p in running] == ["w1"]
        kubeapi.compact()  # the next watch call from the old resourceVersion gets 410 Expired: listed again
        done = await until(watched, lambda pods: pods and pods[0]["status"].get("phase") == "Succeeded")
        assert done[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        await asyncio.to_thread(clients.core.delete_namespaced_pod, "w1", ns, grace_period_seconds=0)
        await until(watched, lambda pods: pods == [])
    finally:
        watched.close()
        await asyncio.to_thread(clients.core.delete_namespaced_pod, "other", ns, grace_period_seconds=0)


@pytest.mark.asyncio(loop_scope="session")
async def test_an_api_error_reaches_the_caller(namespace: tuple[KubeClients, str]) -> None:
    from kubernetes import client

    clients, ns = namespace
    configuration = client.Configuration()
    configuration.host = clients.api.configuration.host
    configuration.api_key = {"authorization": "Bearer not-a-token"}
    api = client.ApiClient(configuration)
    watched = RunPods(client.CoreV1Api(api), api, ns, "run=x")
    try:
        with pytest.raises(Exception) as raised:
            await until(watched, lambda pods: False, timeout=10)
        assert getattr(raised.value, "status", None) == 401
    finally:
        watched.close()
        api.close()
