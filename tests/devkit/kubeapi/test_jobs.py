"""Jobs run for real: the kubelet runs their pods on podman and Kubernetes' status comes back."""

from __future__ import annotations

import contextlib
import json
import socket
import threading

import docker
import kubernetes
import kubernetes_validate
import pytest
from kubernetes.client.exceptions import ApiException

from devkit.kubeapi.kubelet import POD_PIDS_LIMIT
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


def test_a_job_past_its_active_deadline_is_killed_and_fails_with_deadline_exceeded(
    batch: kubernetes.client.BatchV1Api, core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    body = job_body("slow", [sandbox_container(kube_test_image, ["sleep", "120"])], activeDeadlineSeconds=2)
    batch.create_namespaced_job(namespace, body)
    job = eventually(lambda: (j := batch.read_namespaced_job("slow", namespace)) and _condition(j, "Failed") and j, 60)
    failed = _condition(job, "Failed")
    assert failed.reason == "DeadlineExceeded" and job.status.active is None
    assert eventually(lambda: core.list_namespaced_pod(namespace, label_selector="job-name=slow").items == [], 30)


def test_a_pod_past_its_own_active_deadline_fails_with_deadline_exceeded(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    pod = {
        "metadata": {"name": "slow"},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 2,
            "automountServiceAccountToken": False,
            "containers": [sandbox_container(kube_test_image, ["sleep", "120"])],
        },
    }
    core.create_namespaced_pod(namespace, pod)
    done = eventually(lambda: (p := core.read_namespaced_pod("slow", namespace)).status.phase == "Failed" and p, 60)
    assert done.status.reason == "DeadlineExceeded"
    assert done.status.container_statuses[0].state.terminated.exit_code == 137


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("privileged", True),
        ("seLinuxOptions", {"level": "s0:c1"}),
        ("seccompProfile", {"type": "Localhost", "localhostProfile": "x.json"}),
    ],
)
def test_a_security_control_the_kubelet_cannot_enforce_is_refused_with_422_naming_it(
    batch: kubernetes.client.BatchV1Api, namespace: str, kube_test_image: str, field: str, value: object
) -> None:
    container = sandbox_container(kube_test_image, ["true"])
    container["securityContext"][field] = value
    with pytest.raises(ApiException) as refused:
        batch.create_namespaced_job(namespace, job_body("unsafe", [container]))
    status = json.loads(refused.value.body)
    assert refused.value.status == 422
    fields = [c["field"] for c in status["details"]["causes"]]
    assert fields[0].startswith(f"spec.template.spec.containers[0].securityContext.{field}")
    assert batch.list_namespaced_job(namespace).items == []


def _answer_and_close(listener: socket.socket) -> None:
    with contextlib.suppress(OSError):  # ends when the test closes the listener
        while True:
            connection, _ = listener.accept()
            connection.close()


def test_a_pod_under_a_deny_all_network_policy_has_no_network(
    core: kubernetes.client.CoreV1Api,
    api_client: kubernetes.client.ApiClient,
    namespace: str,
    kube_test_image: str,
    docker_client: docker.DockerClient,
) -> None:
    gateway = docker_client.networks.get("podman").attrs["IPAM"]["Config"][0]["Gateway"]
    with socket.socket() as listener:  # something to reach on the host, from the pod's network
        listener.bind(("0.0.0.0", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        threading.Thread(target=_answer_and_close, args=(listener,), daemon=True).start()
        probe = (
            f"ls /sys/class/net | tr '\\n' ' '; echo; "
            f"nc -w 3 {gateway} {port} </dev/null && echo reached || echo unreachable"
        )
        kubernetes.client.NetworkingV1Api(api_client).create_namespaced_network_policy(
            namespace,
            {
                "metadata": {"name": "sandbox-deny-all"},
                "spec": {"podSelector": {"matchLabels": {"sandbox": "yes"}}, "policyTypes": ["Ingress", "Egress"]},
            },
        )
        logs = {}
        for name, labels in (("open", {"sandbox": "no"}), ("isolated", {"sandbox": "yes"})):
            spec = {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [sandbox_container(kube_test_image, ["sh", "-c", probe])],
            }
            core.create_namespaced_pod(namespace, {"metadata": {"name": name, "labels": labels}, "spec": spec})
        for name in ("open", "isolated"):
            eventually(
                lambda n=name: core.read_namespaced_pod(n, namespace).status.phase in ("Succeeded", "Failed"), 60
            )
            logs[name] = core.read_namespaced_pod_log(name, namespace)
    assert logs["open"].split("\n")[0].split() == ["eth0", "lo"] and "reached" in logs["open"]
    assert logs["isolated"].split("\n")[0].split() == ["lo"] and "unreachable" in logs["isolated"]


def test_foreground_deletion_removes_the_pods_then_the_job_and_their_containers(
    batch: kubernetes.client.BatchV1Api,
    core: kubernetes.client.CoreV1Api,
    namespace: str,
    kube_test_image: str,
    docker_client: docker.DockerClient,
) -> None:
    batch.create_namespaced_job(namespace, job_body("long", [sandbox_container(kube_test_image, ["sleep", "300"])]))
    pod = eventually(
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod(namespace, label_selector="job-name=long").items
                if p.status.phase == "Running"
            ),
            None,
        ),
        60,
    )
    batch.delete_namespaced_job("long", namespace, propagation_policy="Foreground")
    deleting = batch.read_namespaced_job("long", namespace)  # still there: its pod is not gone yet
    assert deleting.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in deleting.metadata.finalizers

    def job_gone() -> bool:
        try:
            batch.read_namespaced_job("long", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(job_gone, 60)
    assert core.list_namespaced_pod(namespace, label_selector="job-name=long").items == []
    left = docker_client.containers.list(all=True, filters={"label": f"io.modelship.kubeapi.pod={pod.metadata.uid}"})
    assert left == []


def test_init_containers_run_first_and_share_a_size_capped_empty_dir(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    mount = [{"name": "scratch", "mountPath": "/scratch"}]
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}],
        "initContainers": [
            sandbox_container(
                kube_test_image, ["sh", "-c", "echo first > /scratch/order"], name="one", volumeMounts=mount
            ),
            sandbox_container(
                kube_test_image, ["sh", "-c", "echo second >> /scratch/order"], name="two", volumeMounts=mount
            ),
        ],
        "containers": [
            sandbox_container(
                kube_test_image,
                [
                    "sh",
                    "-c",
                    "cat /scratch/order; head -c 2000000 /dev/zero > /scratch/big || echo capped; "
                    "touch /outside 2>/dev/null || echo read-only; "
                    "cat /var/run/secrets/kubernetes.io/serviceaccount/token 2>/dev/null || echo no-token",
                ],
                volumeMounts=mount,
            )
        ],
    }
    core.create_namespaced_pod(namespace, {"metadata": {"name": "staged"}, "spec": spec})
    done = eventually(
        lambda: (p := core.read_namespaced_pod("staged", namespace)).status.phase == "Succeeded" and p, 60
    )
    assert [s.state.terminated.reason for s in done.status.init_container_statuses] == ["Completed", "Completed"]
    lines = [line for line in core.read_namespaced_pod_log("staged", namespace, container="main").split("\n") if line]
    assert [line for line in lines if "I/O error" not in line and "No space" not in line] == [
        "first",
        "second",
        "capped",
        "read-only",
        "no-token",
    ]


def test_tens_of_megabytes_of_log_come_back_intact(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    size = 30 * 1024 * 1024
    command = ["sh", "-c", f"head -c {size} /dev/zero | tr '\\0' x; echo; echo end"]
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [sandbox_container(kube_test_image, command)],
    }
    core.create_namespaced_pod(namespace, {"metadata": {"name": "loud"}, "spec": spec})
    eventually(lambda: core.read_namespaced_pod("loud", namespace).status.phase == "Succeeded", 120)
    text = core.read_namespaced_pod_log("loud", namespace)
    assert len(text) == size + 5 and text.endswith("x\nend\n") and set(text[:size]) == {"x"}
    assert core.read_namespaced_pod_log("loud", namespace, tail_lines=1) == "end\n"


def test_a_container_over_its_memory_limit_is_oom_killed_and_the_job_fails_at_backoff_limit(
    batch: kubernetes.client.BatchV1Api, core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    # dd fills a 64 MiB block buffer: it cannot fit in a 16 MiB limit
    hog = sandbox_container(kube_test_image, ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
    hog["resources"]["limits"]["memory"] = "16Mi"
    batch.create_namespaced_job(namespace, job_body("hog", [hog], backoffLimit=1))
    job = eventually(lambda: (j := batch.read_namespaced_job("hog", namespace)) and _condition(j, "Failed") and j, 90)
    assert _condition(job, "Failed").reason == "BackoffLimitExceeded" and job.status.failed == 2  # one retry
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=hog").items
    reasons = [p.status.container_statuses[0].state.terminated.reason for p in pods]
    assert len(pods) == 2 and reasons == ["OOMKilled", "OOMKilled"]


def test_a_finished_job_is_deleted_with_its_pods_after_ttl_seconds_after_finished(
    batch: kubernetes.client.BatchV1Api, core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    body = job_body("brief", [sandbox_container(kube_test_image, ["true"])], ttlSecondsAfterFinished=1)
    batch.create_namespaced_job(namespace, body)
    eventually(lambda: batch.list_namespaced_job(namespace).items == [], 60)
    assert core.list_namespaced_pod(namespace).items == []


def test_run_as_non_root_with_an_image_that_runs_as_root_leaves_the_container_waiting(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    container = sandbox_container(kube_test_image, ["true"])
    del container["securityContext"]["runAsUser"]  # the busybox image's USER is root
    spec = {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]}
    core.create_namespaced_pod(namespace, {"metadata": {"name": "rooty"}, "spec": spec})

    def waiting() -> object:
        statuses = core.read_namespaced_pod("rooty", namespace).status.container_statuses or []
        state = statuses[0].state.waiting if statuses else None
        return state if state is not None and state.reason == "CreateContainerConfigError" else None

    state = eventually(waiting, 30)
    assert "runAsNonRoot and image will run as root" in state.message
    assert core.read_namespaced_pod("rooty", namespace).status.phase == "Pending"


def test_what_the_server_sends_for_a_finished_job_and_its_pod_validates_against_kubernetes_schema(
    batch: kubernetes.client.BatchV1Api, core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    batch.create_namespaced_job(namespace, job_body("checked", [sandbox_container(kube_test_image, ["true"])]))
    eventually(lambda: _condition(batch.read_namespaced_job("checked", namespace), "Complete"), 60)
    job = batch.read_namespaced_job("checked", namespace, _preload_content=False)
    pods = core.list_namespaced_pod(namespace, _preload_content=False)
    for document in (json.loads(job.data), json.loads(pods.data)):  # the raw JSON, checked independently
        kubernetes_validate.validate(document, "1.33", strict=True)
    assert json.loads(pods.data)["items"][0]["status"]["phase"] == "Succeeded"


def test_a_followed_log_streams_until_the_container_exits_and_limit_bytes_caps_it(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    command = ["sh", "-c", "echo first; sleep 2; echo second"]
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [sandbox_container(kube_test_image, command)],
    }
    core.create_namespaced_pod(namespace, {"metadata": {"name": "talker"}, "spec": spec})
    eventually(lambda: core.read_namespaced_pod("talker", namespace).status.phase == "Running", 60)
    assert core.read_namespaced_pod_log("talker", namespace, follow=True) == "first\nsecond\n"
    assert core.read_namespaced_pod_log("talker", namespace, limit_bytes=3) == "fir"


def test_resource_limits_reach_the_container_cgroup_and_ephemeral_storage_caps_an_empty_dir(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    cgroup = "/sys/fs/cgroup"
    probe = (
        f"cat {cgroup}/cpu/cpu.cfs_quota_us {cgroup}/memory/memory.limit_in_bytes {cgroup}/pids/pids.max; "
        "head -c 20000000 /dev/zero > /scratch/f 2>/dev/null || echo capped"
    )
    container = sandbox_container(
        kube_test_image, ["sh", "-c", probe], volumeMounts=[{"name": "s", "mountPath": "/scratch"}]
    )
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "volumes": [{"name": "s", "emptyDir": {}}],  # no sizeLimit: the 16Mi ephemeral-storage limit caps it
        "containers": [container],
    }
    core.create_namespaced_pod(namespace, {"metadata": {"name": "limits"}, "spec": spec})
    eventually(lambda: core.read_namespaced_pod("limits", namespace).status.phase == "Succeeded", 60)
    # 500m CPU = 50 ms per 100 ms period; 64Mi; the kubelet's pod PID limit
    expected = ["50000", str(64 * 2**20), str(POD_PIDS_LIMIT), "capped"]
    assert core.read_namespaced_pod_log("limits", namespace).split() == expected


def test_an_ephemeral_storage_limit_on_a_writable_root_is_refused_naming_it(
    core: kubernetes.client.CoreV1Api, namespace: str, kube_test_image: str
) -> None:
    container = sandbox_container(kube_test_image, ["true"])
    container["securityContext"]["readOnlyRootFilesystem"] = False
    spec = {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(namespace, {"metadata": {"name": "disk"}, "spec": spec})
    causes = json.loads(refused.value.body)["details"]["causes"]
    assert refused.value.status == 422
    assert [c["field"] for c in causes] == ["spec.containers[0].resources.limits.ephemeral-storage"]
