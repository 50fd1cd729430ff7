"""The stand-in's REST surface, driven by the official client: CRUD, Status objects, selectors, schemas."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import kubernetes
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from devkit.kubeapi import KubeAPI


@pytest.fixture(scope="module")
def stand_in_kubeconfig(control_plane: KubeAPI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API alone (no kubelet, no podman): these tests need no container engine."""
    return control_plane.write_kubeconfig(tmp_path_factory.mktemp("control-plane") / "config")


def _status(exc: ApiException) -> dict:
    return json.loads(exc.body)


def _policy(name: str, labels: dict[str, str]) -> dict:
    return {
        "metadata": {"name": name, "labels": {"role": "policy"}},
        "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress", "Egress"]},
    }


def test_objects_are_created_read_listed_and_deleted_with_kubernetes_status_codes(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    net = kubernetes.client.NetworkingV1Api(api_client)
    created = net.create_namespaced_network_policy(namespace, _policy("deny", {"app": "sandbox"}))
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.generation == 1

    with pytest.raises(ApiException) as exists:
        net.create_namespaced_network_policy(namespace, _policy("deny", {"app": "sandbox"}))
    assert exists.value.status == 409 and _status(exists.value)["reason"] == "AlreadyExists"

    stale = created.metadata.resource_version
    created.metadata.labels["edited"] = "yes"
    updated = net.replace_namespaced_network_policy("deny", namespace, created)
    assert int(updated.metadata.resource_version) > int(stale)
    created.metadata.resource_version = stale
    with pytest.raises(ApiException) as conflict:
        net.replace_namespaced_network_policy("deny", namespace, created)
    assert conflict.value.status == 409 and _status(conflict.value)["reason"] == "Conflict"

    assert net.read_namespaced_network_policy("deny", namespace).metadata.labels["edited"] == "yes"
    deleted = net.delete_namespaced_network_policy("deny", namespace)  # client 37 returns the Status as a dict
    assert (deleted["kind"], deleted["status"], deleted["details"]["name"]) == ("Status", "Success", "deny")
    with pytest.raises(ApiException) as missing:
        net.read_namespaced_network_policy("deny", namespace)
    gone = _status(missing.value)
    assert missing.value.status == 404
    assert (gone["kind"], gone["reason"], gone["details"]["name"]) == ("Status", "NotFound", "deny")


def test_creating_in_a_missing_namespace_is_404_naming_it(core: kubernetes.client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_pod(
            "no-such-ns", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        )
    assert missing.value.status == 404 and 'namespaces "no-such-ns" not found' in _status(missing.value)["message"]


def test_label_selectors_choose_what_lists_return(api_client: kubernetes.client.ApiClient, namespace: str) -> None:
    net = kubernetes.client.NetworkingV1Api(api_client)
    for name, labels in (
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "db", "env": "prod"}),
        ("c", {"tier": "web"}),
    ):
        body = _policy(name, {"x": "y"})
        body["metadata"]["labels"] = labels
        net.create_namespaced_network_policy(namespace, body)

    def names(selector: str) -> list[str]:
        return [p.metadata.name for p in net.list_namespaced_network_policy(namespace, label_selector=selector).items]

    assert names("tier=web") == ["a", "c"]
    assert names("tier=web,env=prod") == ["a"]
    assert names("tier!=web") == ["b"]
    assert names("env") == ["a", "b"]
    assert names("!env") == ["c"]
    assert names("tier in (db, cache)") == ["b"]
    assert names("tier notin (db)") == ["a", "c"]
    assert [
        p.metadata.name for p in net.list_namespaced_network_policy(namespace, field_selector="metadata.name=b").items
    ] == ["b"]
    with pytest.raises(ApiException) as bad:
        names("tier===web")
    assert bad.value.status == 400


def _raw(kubeconfig: Path, method: str, path: str, body: object) -> tuple[int, dict]:
    """A request the client library would refuse to send (it validates bodies itself): what the server does."""
    config = yaml.safe_load(kubeconfig.read_text())
    request = urllib.request.Request(
        config["clusters"][0]["cluster"]["server"] + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {config['users'][0]['user']['token']}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_malformed_body_is_a_422_naming_the_field_not_accepted(
    api_client: kubernetes.client.ApiClient, stand_in_kubeconfig: Path, namespace: str
) -> None:
    batch = kubernetes.client.BatchV1Api(api_client)
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bad"},
        "spec": {
            "backoffLimit": "zero",  # an integer in the schema
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x", "commmand": ["typo"]}]}
            },
        },
    }
    code, status = _raw(stand_in_kubeconfig, "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body)
    assert code == 422 and (status["kind"], status["reason"]) == ("Status", "Invalid")
    fields = {c["field"] for c in status["details"]["causes"]}
    assert fields == {"spec.backoffLimit", "spec.template.spec.containers[0]"}
    assert "unknown field 'commmand'" in status["message"]
    assert batch.list_namespaced_job(namespace).items == []

    body["spec"]["backoffLimit"] = 0
    body["spec"]["template"]["spec"]["containers"][0].pop("commmand")
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as always:  # valid for the schema, not for a Job
        batch.create_namespaced_job(namespace, body)
    assert always.value.status == 422
    assert [c["field"] for c in _status(always.value)["details"]["causes"]] == ["spec.template.spec.restartPolicy"]


def test_deployment_status_is_written_through_its_subresource_and_generation_counts_spec_changes(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(api_client)
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}}
    body = {"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}
    created = apps.create_namespaced_deployment(namespace, body)
    assert (created.metadata.generation, created.spec.replicas, created.spec.progress_deadline_seconds) == (1, 1, 600)

    patched = apps.patch_namespaced_deployment(
        "web", namespace, {"spec": {"replicas": 3}}, _content_type="application/merge-patch+json"
    )
    assert (patched.metadata.generation, patched.spec.replicas) == (2, 3)
    status = {
        "status": {
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "stuck"}
            ],
        }
    }
    apps.patch_namespaced_deployment_status("web", namespace, status, _content_type="application/merge-patch+json")
    read = apps.read_namespaced_deployment_status("web", namespace)
    assert read.status.observed_generation == 2 and read.status.conditions[0].reason == "ProgressDeadlineExceeded"
    assert read.metadata.generation == 2  # a status write is not a spec change

    scaled = apps.patch_namespaced_deployment(
        "web", namespace, [{"op": "replace", "path": "/spec/replicas", "value": 1}]
    )
    assert (scaled.metadata.generation, scaled.spec.replicas) == (3, 1)  # a JSON patch (the client's default type)


def test_requests_without_the_kubeconfig_token_are_401(stand_in_kubeconfig: Path) -> None:
    server = yaml.safe_load(stand_in_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{server}/api/v1/namespaces", timeout=5)
    assert denied.value.code == 401
    assert json.loads(denied.value.read())["reason"] == "Unauthorized"
