"""Watches as the client library consumes them: resourceVersion, ADDED/MODIFIED/DELETED, bookmarks, 410."""

from __future__ import annotations

from pathlib import Path

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from devkit.kubeapi import KubeAPI


@pytest.fixture(scope="module")
def stand_in_kubeconfig(control_plane: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API alone (no kubelet, no podman): these tests need no container engine."""
    return control_plane.write_kubeconfig(tmp_path_factory.mktemp("control-plane") / "config")


def _policy(name: str, labels: dict[str, str]) -> dict:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def test_a_watch_from_a_resource_version_sees_added_modified_deleted_and_bookmarks(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    net = kubernetes.client.NetworkingV1Api(api_client)
    start = net.list_namespaced_network_policy(namespace).metadata.resource_version
    net.create_namespaced_network_policy(namespace, _policy("w", {"watched": "yes"}))
    net.create_namespaced_network_policy(namespace, _policy("other", {"watched": "no"}))
    net.patch_namespaced_network_policy(
        "w",
        namespace,
        {"metadata": {"labels": {"watched": "yes", "n": "2"}}},
        _content_type="application/merge-patch+json",
    )
    net.delete_namespaced_network_policy("w", namespace)

    seen = []
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        net.list_namespaced_network_policy,
        namespace,
        label_selector="watched=yes",
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        seen.append((event["type"], event["raw_object"]["metadata"].get("name")))
        if event["type"] == "BOOKMARK":
            bookmark_rv = int(event["raw_object"]["metadata"]["resourceVersion"])
            watch.stop()
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w"), ("BOOKMARK", None)]
    assert bookmark_rv > int(start)


def test_a_watch_from_a_compacted_resource_version_is_410_gone(
    api_client: kubernetes.client.ApiClient, control_plane: KubeAPI, namespace: str
) -> None:
    net = kubernetes.client.NetworkingV1Api(api_client)
    old = net.list_namespaced_network_policy(namespace).metadata.resource_version
    net.create_namespaced_network_policy(namespace, _policy("x", {}))
    control_plane.compact()
    with pytest.raises(ApiException) as gone:
        for _ in kubernetes.watch.Watch().stream(
            net.list_namespaced_network_policy, namespace, resource_version=old, timeout_seconds=5
        ):
            pass
    assert gone.value.status == 410 and "Expired" in gone.value.reason
