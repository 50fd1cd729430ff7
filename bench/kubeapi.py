"""The Kubernetes stand-in's own overhead: a Job through devkit.kubeapi vs the same container run directly.

Run: `.venv/bin/python bench/kubeapi.py [--runs 5]` (starts the shared podman service when it is not
running). Rows, each the same busybox `true` with the same controls (nobody, read-only root, no
capabilities, no-new-privileges, 64 MiB, no network), on the same engine in the same run:
  - engine direct: create + start + wait + logs + remove through the Engine API (the Docker backend's path);
  - Job via kubeapi: create Job (+ deny-all NetworkPolicy beforehand) -> watch until Complete -> read
    the pod's log -> delete the Job (Foreground) -> watch until it is gone, all through the official
    client and a kubeconfig (what the Kubernetes backend does).
The difference is what the stand-in adds (HTTP, schema validation, controllers, watch); a real
cluster's scheduling and kubelet sync latencies are not modelled.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.sandbox.docker_engine import connect  # noqa: E402
from devkit.kubeapi import image as busybox  # noqa: E402
from devkit.kubeapi import running_in_thread  # noqa: E402
from devkit.processes import podman_url  # noqa: E402

SECURITY = {
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def direct(client: object, image: str) -> float:
    began = time.perf_counter()
    container = client.containers.create(  # type: ignore[attr-defined]
        image,
        ["true"],
        user="65534:65534",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=64 * 2**20,
        network_mode="none",
    )
    container.start()
    while True:
        container.reload()
        if container.status not in ("created", "running"):
            break
        time.sleep(0.05)
    container.logs()
    container.remove(force=True)
    return time.perf_counter() - began


def via_job(batch: kubernetes.client.BatchV1Api, core: kubernetes.client.CoreV1Api, ns: str, image: str) -> float:
    name = f"b-{uuid.uuid4().hex[:6]}"
    began = time.perf_counter()
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "main",
                "image": image,
                "command": ["true"],
                "securityContext": SECURITY,
                "resources": {"limits": {"memory": "64Mi", "cpu": "1"}},
            }
        ],
    }
    job = {
        "metadata": {"name": name, "labels": {"sandbox": "yes"}},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"sandbox": "yes"}}, "spec": pod_spec}},
    }
    created = batch.create_namespaced_job(ns, job)
    watch = kubernetes.watch.Watch()
    for event in watch.stream(
        batch.list_namespaced_job,
        ns,
        field_selector=f"metadata.name={name}",
        resource_version=created.metadata.resource_version,
        timeout_seconds=60,
    ):
        if any(c.type == "Complete" for c in event["object"].status.conditions or ()):
            watch.stop()
    pod = core.list_namespaced_pod(ns, label_selector=f"job-name={name}").items[0]
    core.read_namespaced_pod_log(pod.metadata.name, ns)
    deleted = batch.delete_namespaced_job(name, ns, propagation_policy="Foreground")
    rv = deleted["metadata"]["resourceVersion"] if isinstance(deleted, dict) and "metadata" in deleted else None
    for event in kubernetes.watch.Watch().stream(
        batch.list_namespaced_job, ns, field_selector=f"metadata.name={name}", resource_version=rv, timeout_seconds=60
    ):
        if event["type"] == "DELETED":
            break
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    client = connect(podman_url())
    image = busybox.build(client)
    with tempfile.TemporaryDirectory() as tmp, running_in_thread(docker_client=client) as api:
        api_client = kubernetes.config.new_client_from_config(str(api.write_kubeconfig(Path(tmp) / "config")))
        core, batch = kubernetes.client.CoreV1Api(api_client), kubernetes.client.BatchV1Api(api_client)
        ns = "bench"
        core.create_namespace({"metadata": {"name": ns}})
        kubernetes.client.NetworkingV1Api(api_client).create_namespaced_network_policy(
            ns,
            {
                "metadata": {"name": "deny"},
                "spec": {"podSelector": {"matchLabels": {"sandbox": "yes"}}, "policyTypes": ["Ingress", "Egress"]},
            },
        )
        direct(client, image)  # warm the image and the engine
        rows = {
            "engine direct": [direct(client, image) for _ in range(args.runs)],
            "Job via kubeapi": [via_job(batch, core, ns, image) for _ in range(args.runs)],
        }
        api_client.close()
    base = statistics.median(rows["engine direct"])
    print(f"{'path':<18}{'median s':>10}{'min s':>8}{'max s':>8}{'x direct':>10}")
    for label, times in rows.items():
        med = statistics.median(times)
        print(f"{label:<18}{med:>10.2f}{min(times):>8.2f}{max(times):>8.2f}{med / base:>10.2f}")


if __name__ == "__main__":
    main()
