"""Jobs run for real: the kubelet runs their pods on podman and Kubernetes' status comes back."""

from __future__ import annotations

import kubernetes
import pytest

from tests.devkit.kubeapi.conftest import eventually, job_body, sandbox_container

pytestmark = pytest.mark.slow


def _condition(job: kubernetes.client.V1Job, kind: str) -> kubernetes.client.V1JobCondition | None:
    return next((c for c in job.status.conditions or () if c.type == kind and c.status == "True"), None)


def test_a_job_that_echoes_completes_and_its_log_reads_back(
    batch: kubernetes.client.BatchV1Api, core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    body = job_body("echo", [sandbox_container(kube_test_image, ["sh", "-c", "echo hello from the pod; id -u"])])
    batch.create_namespaced_job(namespace, body)

    job = eventually(
        lambda: (j := batch.read_namespaced_job("echo", namespace)) and _condition(j, "Complete") and j, 60
    )
    assert job.status.succeeded == 1 and job.status.completion_time is not None
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=echo").items
    assert len(pods) == 1 and pods[0].status.phase == "Succeeded"
    terminated = pods[0].status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert core.read_namespaced_pod_log(pods[0].metadata.name, namespace) == "hello from the pod\n65534\n"
