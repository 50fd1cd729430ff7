"""A bot SIGKILLed mid-review on the Kubernetes backend: its sandbox Job and the review inputs it pushed
outlive it, the restarted bot deletes both at start (and nothing else in the inputs repository), reruns
the review, and nothing is left in the namespace or the registry afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from bot.artifacts.registry import OciRegistry
from bot.sandbox.kube_inputs import write_layer
from bot.sandbox.kube_jobs import inputs_repository, owned_inputs_tag
from devkit.devhub import RunningDevHub
from devkit.processes import free_port
from tests.e2e.conftest import TINY_DATA, yaml_config, yaml_model
from tests.e2e.test_crash_recovery import _serve
from tests.fixtures.devhub import WEBHOOK_SECRET
from tests.fixtures.sandbox_backend import kubernetes_leftovers

REPO = "acme/sleepy"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("sandbox_backend", ["kubernetes"], indirect=True, scope="module"),
]


async def _until(check: Any, timeout: float, what: str) -> Any:
    for _ in range(int(timeout * 4)):
        if value := await asyncio.to_thread(check):
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:g}s")


async def test_a_bot_killed_mid_review_leaves_no_job_after_its_restart(
    devhub: RunningDevHub, tmp_path: Path, sandbox_settings: dict[str, Any]
) -> None:
    hub = devhub.hub
    app_id, key = await hub.create_app(slug="modelship")
    train = "python -c 'import time; time.sleep(20)'"
    base = {
        ".modelship.yml": yaml_config(
            [yaml_model("sleepy", train=train)], sandbox="{cpus: 1, memory: 1g, timeout: 120s}"
        ),
        "data/eval.csv": TINY_DATA,
    }
    await hub.create_repo(REPO, base)
    await hub.install("acme", [REPO])
    hub.set_permission(REPO, "alice", "write")
    port = free_port()
    env = {
        **os.environ,
        "MODELSHIP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MODELSHIP_GITHUB_APP_ID": str(app_id),
        "MODELSHIP_GITHUB_PRIVATE_KEY": key,
        "MODELSHIP_GITHUB_API_URL": devhub.api_url,
        "MODELSHIP_DATA_DIR": str(tmp_path),
        "MODELSHIP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "MODELSHIP_PORT": str(port),
        "MODELSHIP_JOB_LEASE_SECONDS": "3",
        **{
            f"MODELSHIP_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in sandbox_settings.items()
        },
    }
    namespace = sandbox_settings["kubernetes_namespace"]
    api = kubernetes.config.new_client_from_config(str(sandbox_settings["kubernetes_kubeconfig"]))
    core, batch = kubernetes.client.CoreV1Api(api), kubernetes.client.BatchV1Api(api)
    hub.sender.url = f"http://127.0.0.1:{port}/webhooks/github"
    log = tmp_path / "serve.log"
    first = await _serve(env, port, log)
    try:
        await hub.push(REPO, "change", {"data/eval.csv": TINY_DATA + b"0.3,0.7,0\n"}, message="More data")
        await hub.open_pr(REPO, "change", title="More data")

        def running_pods() -> list[str]:
            pods = core.list_namespaced_pod(namespace).items
            return [p.metadata.labels["job-name"] for p in pods if p.status and p.status.phase == "Running"]

        orphans = set(await _until(running_pods, 180, "a sandbox pod running"))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    jobs = {j.metadata.name for j in batch.list_namespaced_job(namespace).items}
    assert orphans <= jobs, "the killed bot's Jobs outlive it until a restart"
    registry = OciRegistry(sandbox_settings["registry"], insecure=True)
    repository = inputs_repository(sandbox_settings["kubernetes_inputs_image"])
    orphaned_inputs = [t for t in await registry.tags(repository) if owned_inputs_tag(t, namespace)]
    assert orphaned_inputs, "the killed bot's review inputs outlive it until a restart"
    layer = tmp_path / "unrelated.tar.gz"
    with layer.open("wb") as out:
        diff_id, _ = write_layer([], out)
    unrelated = await registry.push_image_layer(  # in the same repository, with the owner's prefix: not ours
        sandbox_settings["kubernetes_inputs_image"], layer, diff_id, repository=repository, tag=f"{namespace}-keep"
    )

    second = await _serve(env, port, log)
    try:
        await _until(
            lambda: not orphans & {j.metadata.name for j in batch.list_namespaced_job(namespace).items},
            15,
            "orphans deleted",
        )
        assert "deleted 1 orphaned Job" in log.read_text() or "orphaned Job(s)" in log.read_text()
        # The review's job is leased again and runs to its end; its own Job is deleted with it.
        await _until(
            lambda: any(r.status == "completed" for r in hub.check_runs.values() if r.repo == REPO), 240, "review done"
        )
        await _until(lambda: not kubernetes_leftovers(core, batch, namespace), 60, "nothing left")
        tags = await registry.tags(repository)
        assert not set(orphaned_inputs) & set(tags), "the restart deleted the orphaned review inputs"
        assert not [t for t in tags if owned_inputs_tag(t, namespace)], "the rerun's inputs are deleted too"
        assert f"{namespace}-keep" in tags and await registry.has_manifest(unrelated), "nothing else is touched"
        await registry.delete_manifest(unrelated)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
        api.close()
