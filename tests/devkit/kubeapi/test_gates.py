"""Scheduling gates on the stand-in, as Kubernetes 1.30+ has them: a gated pod is created Pending and unbound
(PodScheduled False, SchedulingGated), its kubelet never starts it, gates can only be removed, and the pod
runs once the last one is gone. The Job controller copies the template's gates to its pods."""

from __future__ import annotations

import datetime
import json

import docker
import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from devkit.kubeapi.kubelet import LABEL
from tests.devkit.kubeapi.conftest import eventually, job_body, sandbox_container

pytestmark = pytest.mark.slow
GATE = "example.com/verified"


def containers_ever_created(docker_client: docker.DockerClient, pod_uid: str, since: datetime.datetime) -> list[str]:
    """Every container the engine created for the pod since ``since`` (its event log, not what is left)."""
    events = docker_client.events(
        since=since,
        until=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1),
        filters={"type": "container", "event": "create", "label": f"{LABEL}.pod={pod_uid}"},
        decode=True,
    )
    return [e.get("id") or e.get("Actor", {}).get("ID", "") for e in events]


def _pod_of(core: kubernetes.client.CoreV1Api, namespace: str, job: str) -> kubernetes.client.V1Pod | None:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return pods[0] if pods else None


def test_a_gated_job_pod_waits_unbound_and_unstarted_until_its_last_gate_is_removed(
    batch: kubernetes.client.BatchV1Api,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    kube_test_image: str,
    docker_client: docker.DockerClient,
) -> None:
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    body = job_body(
        "gated",
        [sandbox_container(kube_test_image, ["sh", "-c", "echo released"])],
        pod={"schedulingGates": [{"name": GATE}, {"name": "example.com/quota"}]},
    )
    batch.create_namespaced_job(namespace, body)
    pod = eventually(lambda: _pod_of(core, namespace, "gated"))
    assert [g.name for g in pod.spec.scheduling_gates] == [GATE, "example.com/quota"]  # copied from the template
    assert pod.spec.node_name is None and pod.status.phase == "Pending"
    (scheduled,) = [c for c in pod.status.conditions if c.type == "PodScheduled"]
    assert (scheduled.status, scheduled.reason) == ("False", "SchedulingGated")
    assert scheduled.message == "Scheduling is blocked due to non-empty scheduling gates"

    with pytest.raises(ApiException) as added:  # gates can only be removed after creation
        core.patch_namespaced_pod(
            pod.metadata.name,
            namespace,
            [{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": "example.com/late"}}],
        )
    assert added.value.status == 422
    assert (
        "spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate "
        "'example.com/late'" in json.loads(added.value.body)["message"]
    )

    core.patch_namespaced_pod(pod.metadata.name, namespace, [{"op": "remove", "path": "/spec/schedulingGates/0"}])
    still = core.read_namespaced_pod(pod.metadata.name, namespace)
    assert [g.name for g in still.spec.scheduling_gates] == ["example.com/quota"] and still.spec.node_name is None
    assert containers_ever_created(docker_client, pod.metadata.uid, since) == []  # one gate left: never started

    core.patch_namespaced_pod(pod.metadata.name, namespace, {"spec": {"schedulingGates": None}})
    done = eventually(
        lambda: (p := core.read_namespaced_pod(pod.metadata.name, namespace)).status.phase == "Succeeded" and p, 60
    )
    assert done.spec.node_name == "kubeapi-node" and not done.spec.scheduling_gates
    assert next(c for c in done.status.conditions if c.type == "PodScheduled").status == "True"
    assert core.read_namespaced_pod_log(pod.metadata.name, namespace) == "released\n"
    assert len(containers_ever_created(docker_client, pod.metadata.uid, since)) == 1


def test_a_gated_pod_deleted_before_release_never_ran(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str, docker_client: docker.DockerClient
) -> None:
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "held"},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "schedulingGates": [{"name": GATE}],
                "containers": [sandbox_container(kube_test_image, ["sh", "-c", "echo should not run"])],
            },
        },
    )
    core.delete_namespaced_pod("held", namespace, grace_period_seconds=0)
    eventually(lambda: core.list_namespaced_pod(namespace).items == [])
    assert containers_ever_created(docker_client, pod.metadata.uid, since) == []


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"nodeName": "kubeapi-node"}, "spec.nodeName", "cannot be set until all schedulingGates have been cleared"),
        ({"schedulingGates": [{"name": GATE}, {"name": GATE}]}, "spec.schedulingGates[1].name", "Duplicate value"),
        ({"schedulingGates": [{"name": "not a name"}]}, "spec.schedulingGates[0].name", "Invalid value"),
    ],
)
def test_invalid_scheduling_gates_are_a_422_naming_the_field(
    core: kubernetes.client.CoreV1Api, namespace: str, spec: dict, field: str, message: str
) -> None:
    pod_spec = {"schedulingGates": [{"name": GATE}], "containers": [{"name": "c", "image": "busybox:1"}]} | spec
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, {"metadata": {"name": "bad"}, "spec": pod_spec})
    status = json.loads(refused.value.body)
    assert refused.value.status == 422
    assert any(c["field"] == field and message in c["message"] for c in status["details"]["causes"]), status


def test_a_release_tested_against_a_stale_resource_version_is_refused_and_the_pod_stays_gated(
    core: kubernetes.client.CoreV1Api, namespace: str
) -> None:
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "checked"},
            "spec": {
                "restartPolicy": "Never",
                "schedulingGates": [{"name": GATE}],
                "containers": [{"name": "c", "image": "busybox:1"}],
            },
        },
    )
    read = pod.metadata.resource_version
    core.patch_namespaced_pod("checked", namespace, {"metadata": {"labels": {"changed": "after-the-check"}}})
    release = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": read},
        {"op": "remove", "path": "/spec/schedulingGates/0"},
    ]
    with pytest.raises(ApiException) as stale:
        core.patch_namespaced_pod("checked", namespace, release)
    assert stale.value.status == 422
    assert [g.name for g in core.read_namespaced_pod("checked", namespace).spec.scheduling_gates] == [GATE]
