"""What the Kubernetes backend says when the cluster, not the PR, keeps a sandbox from running (pure): an image
that will not pull, a pod that cannot be scheduled, a pod deleted under the run."""

from __future__ import annotations

from typing import Any

from bot.sandbox.kube_runner import not_started, pod_removed, pull_problem


def pod(name: str = "run-1", *, deleting: bool = False, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status}


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


def test_an_image_that_will_not_pull_names_the_setting_of_the_image_that_failed() -> None:
    runner = pod(containerStatuses=[waiting("sandbox", "ErrImagePull", "manifest unknown")])
    assert pull_problem(runner, "reg/runner:1") == (
        "sandbox image 'reg/runner:1' could not be pulled by the cluster (ErrImagePull: manifest unknown); "
        "set MODELSHIP_SANDBOX_IMAGE to an image the cluster's nodes can pull"
    )
    inputs = pod(initContainerStatuses=[waiting("inputs", "ImagePullBackOff", "Back-off pulling image")])
    said = pull_problem(inputs, "reg/runner:1")
    assert said is not None and said.startswith("the review inputs image could not be pulled by the cluster")
    assert "MODELSHIP_REGISTRY" in said
    assert pull_problem(pod(containerStatuses=[waiting("sandbox", "ContainerCreating")]), "reg/runner:1") is None


def test_a_pod_that_cannot_be_scheduled_says_the_schedulers_words() -> None:
    unschedulable = pod(
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory.",
            }
        ],
    )
    assert not_started(unschedulable) == (
        "Pending; not scheduled (Unschedulable): 0/3 nodes are available: 3 Insufficient memory."
    )
    creating = pod(phase="Pending", containerStatuses=[waiting("sandbox", "ContainerCreating")])
    assert not_started(creating) == "Pending; container sandbox waiting: ContainerCreating"
    assert not_started({}) == "no status"


def test_a_pod_deleted_replaced_or_terminating_under_the_run_is_removed() -> None:
    assert not pod_removed([pod("run-1", phase="Running")], "run-1")
    assert pod_removed([], "run-1")  # gone
    assert pod_removed([pod("run-1", deleting=True)], "run-1")  # evicted, drained: terminating
    assert pod_removed([pod("run-2", phase="Pending")], "run-1")  # the Job made another: the run is lost
