"""The Kubernetes Job backend for real: the official client, the dev kit's API stand-in (or the cluster
MODELSHIP_TEST_KUBECONFIG names), its podman kubelet, the session's registry and product image."""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import kubernetes
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from bot.artifacts.registry import Backoff, OciRegistry
from bot.sandbox import kube_jobs
from bot.sandbox.kube_inputs import write_layer
from bot.sandbox.kube_runner import KubernetesJobRunner, connect
from bot.sandbox.runner import Mount, SandboxSpec
from devkit.kubeapi import KubeAPI
from devkit.kubeapi.kubelet import LABEL
from devkit.kubeapi.model import Kind
from tests.fixtures.kubeapi import REAL_CLUSTER

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Kube:
    clients: Kube
    namespace: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.clients, name)


@pytest_asyncio.fixture(loop_scope="session")
async def clients(kubeconfig: Path) -> AsyncIterator[Kube]:
    made = connect(kubeconfig)
    namespace = f"sbx-{secrets.token_hex(4)}"
    made.core.create_namespace({"metadata": {"name": namespace}})
    yield Kube(made, namespace)
    made.core.delete_namespace(namespace)
    made.close()


class Registry(OciRegistry):
    """The session's registry, remembering what the runner pushed (to look for it afterwards)."""

    def __init__(self, host: str) -> None:
        super().__init__(host, insecure=True)
        self.pushed: list[str] = []

    async def push_image_layer(self, base_image: str, layer: Path, diff_id: str, **kwargs: Any) -> str:
        image = await super().push_image_layer(base_image, layer, diff_id, **kwargs)
        self.pushed.append(image)
        return image


def runner(
    clients: Kube, registry_host: str, image: str, owner: str = "", registry: OciRegistry | None = None
) -> KubernetesJobRunner:
    return KubernetesJobRunner(
        clients.clients,
        registry or OciRegistry(registry_host, insecure=True),
        inputs_base=image,
        owner=owner or f"test-{secrets.token_hex(3)}",
        settings=kube_jobs.KubeSandboxSettings(namespace=clients.namespace),
    )


def leftovers(clients: Kube) -> list[str]:
    namespace = clients.namespace
    jobs = clients.batch.list_namespaced_job(namespace).items
    pods = clients.core.list_namespaced_pod(namespace).items
    return [f"job/{j.metadata.name}" for j in jobs] + [f"pod/{p.metadata.name}" for p in pods]


def one_input(tmp_path: Path, image: str, *argv: str, timeout_s: int) -> SandboxSpec:
    """A run of ``argv`` on ``image`` with one small input file (what every review run has at least)."""
    (tmp_path / "spec.json").write_text("{}")
    inputs = (Mount(tmp_path / "spec.json", "/inputs/spec.json"),)
    return SandboxSpec(image=image, argv=argv, inputs=inputs, timeout_s=timeout_s)


async def eventually(check: Callable[[], Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"not true within {timeout:g}s"
        await asyncio.sleep(0.25)


PROBE = """
import json, os, socket, sys
found = {k: v for k, v in os.environ.items() if any(w in k.upper() for w in ("TOKEN", "SECRET", "PASSWORD", "AUTH"))}
paths = [p for p in ("/var/run/secrets/kubernetes.io/serviceaccount/token", "/run/secrets/kubernetes.io",
                     os.path.expanduser("~/.docker/config.json"), "/root/.docker/config.json") if os.path.exists(p)]
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    network = "reached the registry"
except OSError as exc:
    network = exc.strerror
os.makedirs("/out/variants/m")
open("/out/variants/m/model.onnx", "wb").write(b"onnx bytes")
print("probe done")
json.dump({"repo": open("/inputs/repo/data.csv").read(), "spec": json.load(open("/inputs/spec.json")),
           "credentials": found, "paths": paths, "network": network, "uid": os.getuid()}, open("/out/result.json", "w"))
"""


@pytest.mark.asyncio(loop_scope="session")
async def test_a_run_reads_its_inputs_returns_its_result_and_kept_files_and_leaves_nothing(
    clients: Kube, registry_host: str, product_image: str, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    tree = tmp_path / "repo"
    tree.mkdir()
    (tree / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "spec.json").write_text('{"models": []}')
    host, port = registry_host.split(":")
    spec = SandboxSpec(
        image=product_image,
        argv=("python", "-c", PROBE, host, port),
        inputs=(Mount(tree, "/inputs/repo"), Mount(tmp_path / "spec.json", "/inputs/spec.json")),
        memory_bytes=512 << 20,
        timeout_s=120,
        keep="variants",
        keep_to=tmp_path / "kept",
    )
    registry = Registry(registry_host)
    sandbox = runner(clients, registry_host, product_image, registry=registry)

    result = await sandbox.run(spec)

    assert result.ok, (result.error, result.stderr)
    assert result.stdout == b"probe done\n" and result.exit_code == 0
    document = result.result or {}
    assert document["repo"] == "a,b\n1,2\n" and document["spec"] == {"models": []} and document["uid"] == 65534
    # The credential hunt: no token, no registry credential, no service-account token, no network.
    assert document["credentials"] == {} and document["paths"] == []
    assert document["network"] == "Network is unreachable"
    assert (tmp_path / "kept" / "m" / "model.onnx").read_bytes() == b"onnx bytes"
    policy = clients.networking.read_namespaced_network_policy(kube_jobs.NETWORK_POLICY, clients.namespace)
    assert kube_jobs.policy_problems(clients.api.sanitize_for_serialization(policy)) == []
    await eventually(lambda: not leftovers(clients))
    # Its inputs are gone from the registry (the manifest and its tag) and, on the stand-in, from the node.
    (inputs,) = registry.pushed
    assert inputs.startswith(f"{registry_host}/{sandbox.inputs_repository}@sha256:")
    assert not await registry.has_manifest(inputs)
    assert not [t for t in await registry.tags(sandbox.inputs_repository) if t.startswith(sandbox.owner)]
    if not REAL_CLUSTER:
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(inputs)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_cancelled_run_deletes_its_job_and_pod(
    clients: Kube, registry_host: str, product_image: str, tmp_path: Path
) -> None:
    spec = one_input(
        tmp_path,
        product_image,
        "python",
        "-c",
        "import time; print('started', flush=True); time.sleep(600)",
        timeout_s=600,
    )
    registry = Registry(registry_host)
    sandbox = runner(clients, registry_host, product_image, registry=registry)
    task = asyncio.create_task(sandbox.run(spec))
    await eventually(lambda: any(p.startswith("pod/") for p in leftovers(clients)))
    task.cancel()  # what a superseded review does to its sandbox run
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not leftovers(clients))
    (inputs,) = registry.pushed
    for _ in range(120):  # deleted right after the Job
        if not await registry.has_manifest(inputs):
            break
        await asyncio.sleep(0.25)
    else:
        raise AssertionError(f"the cancelled run's inputs {inputs} are still in the registry")


@pytest.mark.asyncio(loop_scope="session")
async def test_a_restarted_bot_deletes_the_jobs_and_inputs_it_left_and_only_those(
    clients: Kube, registry_host: str, product_image: str, tmp_path: Path
) -> None:
    namespace = clients.namespace
    mine, other = f"bot-a{secrets.token_hex(2)}", f"bot-b{secrets.token_hex(2)}"
    registry = OciRegistry(registry_host, insecure=True)
    repository = kube_jobs.inputs_repository(product_image)
    layer = tmp_path / "inputs.tar.gz"
    with layer.open("wb") as out:
        diff_id, _ = write_layer([], out)
    my_tag, other_tag = (kube_jobs.inputs_tag(owner, secrets.token_hex(6)) for owner in (mine, other))
    unrelated = f"{mine}-release"  # the owner's prefix, but not a tag the sandbox makes
    left: dict[str, str] = {}  # tag -> what a crashed run (or someone else) left in the inputs repository
    for tag in (my_tag, other_tag, unrelated):
        left[tag] = await registry.push_image_layer(
            product_image, layer, diff_id, repository=repository, tag=tag, labels={kube_jobs.INPUTS_LABEL: tag}
        )
    for owner in (mine, other):
        spec = SandboxSpec(image=product_image, argv=("python", "-c", "import time; time.sleep(600)"))
        body = kube_jobs.job_manifest(
            spec,
            run_id=secrets.token_hex(6),
            owner=owner,
            inputs_image=f"{product_image.rsplit(':', 1)[0]}@sha256:{'0' * 64}",
            inputs_bytes=1 << 20,
            settings=kube_jobs.KubeSandboxSettings(namespace=namespace),
        )
        body["spec"]["suspend"] = True  # left as a crashed bot left it; no pod needed to prove the sweep
        clients.batch.create_namespaced_job(namespace, body)

    deleted = await runner(clients, registry_host, product_image, owner=mine).delete_orphans()

    assert len(deleted) == 1
    assert {t for t in await registry.tags(repository) if t in left} == {other_tag, unrelated}
    assert not await registry.has_manifest(left[my_tag])
    assert await registry.has_manifest(left[unrelated]) and await registry.has_manifest(product_image)
    await eventually(
        lambda: (
            [j.metadata.labels[kube_jobs.OWNER_LABEL] for j in clients.batch.list_namespaced_job(namespace).items]
            == [other]
        )
    )
    await runner(clients, registry_host, product_image, owner=other).delete_orphans()
    await eventually(lambda: not leftovers(clients))
    assert {t for t in await registry.tags(repository) if t in left} == {unrelated}
    assert await registry.delete_manifest(left[unrelated])


def test_a_kubeconfig_that_does_not_load_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "config"
    broken.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    with pytest.raises(kubernetes.config.config_exception.ConfigException):
        connect(broken)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_pod_an_admission_webhook_weakened_is_refused_and_its_untrusted_container_never_created(
    kubeapi: KubeAPI, docker_client: docker.DockerClient, registry_host: str, product_image: str, tmp_path: Path
) -> None:
    """The stand-in's mutating admission rewrites the Job's pod as a webhook could; it is held by the bot's
    scheduling gate, so the bot reads it back, names the control and deletes it before anything runs."""
    made = connect(kubeapi.write_kubeconfig(tmp_path / "kubeconfig"))
    namespace = f"sbx-{secrets.token_hex(4)}"
    made.core.create_namespace({"metadata": {"name": namespace}})

    def weaken(kind: Kind, obj: dict[str, Any]) -> None:
        if kind.kind == "Pod" and obj["metadata"].get("namespace") == namespace:
            for container in obj["spec"]["containers"]:
                container["securityContext"]["readOnlyRootFilesystem"] = False

    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    kubeapi.mutating_webhooks.append(weaken)
    try:
        spec = one_input(tmp_path, product_image, "python", "-c", "print('untrusted code ran')", timeout_s=60)
        result = await runner(Kube(made, namespace), registry_host, product_image).run(spec)
    finally:
        kubeapi.mutating_webhooks.remove(weaken)

    assert not result.ok and result.error is not None
    assert result.error == "refused to start the sandbox: container sandbox: readOnlyRootFilesystem is not true"
    await eventually(lambda: not leftovers(Kube(made, namespace)))
    created = docker_client.events(
        since=since,
        until=datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1),
        filters={"type": "container", "event": "create", "label": f"{LABEL}.namespace={namespace}"},
        decode=True,
    )
    assert list(created) == []  # not even the trusted init container: the pod was never bound to the node
    made.core.delete_namespace(namespace)
    made.close()


class DeletesFail(Registry):
    """The session's registry for pushes; deletes go to a port nothing listens on (a registry gone away)."""

    async def delete_manifest(self, reference: str) -> bool:
        gone = OciRegistry("127.0.0.1:9", insecure=True, backoff=Backoff(attempts=1))
        return await gone.delete_manifest(reference.replace(self.host, gone.host, 1))


@pytest.mark.asyncio(loop_scope="session")
async def test_an_inputs_delete_that_fails_is_counted_and_logged_never_a_failed_run(
    clients: Kube, registry_host: str, product_image: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = one_input(
        tmp_path,
        product_image,
        "python",
        "-c",
        "import json; json.dump({'ok': 1}, open('/out/result.json', 'w'))",
        timeout_s=60,
    )
    registry = DeletesFail(registry_host)
    failures = REGISTRY.get_sample_value("modelship_sandbox_inputs_delete_failures_total") or 0.0

    # at WARNING on its own logger: in-process tests of pipelines.quantize leave the root logger at ERROR
    with caplog.at_level(logging.WARNING, logger="bot.sandbox.kube_runner"):
        result = await runner(clients, registry_host, product_image, registry=registry).run(spec)

    assert result.ok and result.result == {"ok": 1}, result.error
    assert REGISTRY.get_sample_value("modelship_sandbox_inputs_delete_failures_total") == failures + 1
    (inputs,) = registry.pushed
    assert f"could not delete the review inputs {inputs} from the registry" in caplog.text
    assert await OciRegistry(registry_host, insecure=True).delete_manifest(inputs)  # it was left: clean up
