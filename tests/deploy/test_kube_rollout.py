"""Rollout status read like `kubectl rollout status`, with the reasons pods are stuck (pure)."""

from __future__ import annotations

from typing import Any

from bot.deploy.kube_rollout import rollout_status, stuck_pods, with_rollout
from bot.deploy.render import stuck_status
from bot.deploy.rollout import Step, cause_news


def deployment(
    *, generation: int = 2, observed: int = 2, want: int = 2, replicas: int = 2, updated: int = 2, available: int = 2
) -> dict[str, Any]:
    return {
        "metadata": {"name": "churn", "generation": generation},
        "spec": {"replicas": want, "selector": {"matchLabels": {"app": "churn"}}},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
        },
    }


def pod(name: str, container: dict[str, Any], *, init: bool = False) -> dict[str, Any]:
    kind = "initContainerStatuses" if init else "containerStatuses"
    return {"metadata": {"name": name}, "status": {"phase": "Pending", kind: [container]}}


def test_a_finished_rollout_reads_as_kubectl_says_it() -> None:
    status = rollout_status(deployment())
    assert status.state == "complete" and status.done
    assert status.message == 'deployment "churn" successfully rolled out'


def test_each_waiting_stage_of_kubectl_rollout_status() -> None:
    assert rollout_status(deployment(generation=3)).message == "Waiting for deployment spec update to be observed..."
    assert rollout_status(deployment(updated=1, replicas=3)).message == (
        'Waiting for deployment "churn" rollout to finish: 1 out of 2 new replicas have been updated...'
    )
    assert rollout_status(deployment(replicas=3)).message == (
        'Waiting for deployment "churn" rollout to finish: 1 old replicas are pending termination...'
    )
    waiting = rollout_status(deployment(available=1))
    assert waiting.state == "progressing" and not waiting.done
    assert (
        waiting.message == 'Waiting for deployment "churn" rollout to finish: 1 of 2 updated replicas are available...'
    )


def test_an_exceeded_progress_deadline_fails_the_rollout() -> None:
    stalled = deployment(updated=1, available=0)
    stalled["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    status = rollout_status(stalled)
    assert status.state == "failed" and status.message == 'deployment "churn" exceeded its progress deadline'


def test_an_image_that_does_not_pull_is_named_with_the_kubelets_message() -> None:
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "ghcr.io/acme/ms:typo"'}
    stuck = stuck_pods([pod("churn-7d-abc", {"name": "model-server", "state": {"waiting": waiting}})], {})
    assert [p.line() for p in stuck] == [
        'churn-7d-abc/model-server: ImagePullBackOff — Back-off pulling image "ghcr.io/acme/ms:typo"'
    ]


def test_a_crash_loop_names_the_model_servers_own_refusal_from_the_termination_message_or_the_log() -> None:
    refused = "Error: refused to serve: model.onnx: sha256 1234… does not match the pinned abcd…"
    crashing = {
        "name": "model-server",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
        "lastState": {"terminated": {"exitCode": 1, "message": refused}},
    }
    from_message = stuck_pods([pod("churn-1", crashing)], {})
    assert from_message[0].message == "refused to serve: model.onnx: sha256 1234… does not match the pinned abcd…"

    crashing["lastState"] = {"terminated": {"exitCode": 1}}
    log = "INFO fetching ghcr.io/acme/m@sha256:ab\n" + refused + "\n"
    from_log = stuck_pods([pod("churn-1", crashing)], {"churn-1/model-server": log})
    assert from_log[0].reason == "CrashLoopBackOff" and from_log[0].message.startswith("refused to serve: model.onnx")


def test_a_slow_start_is_not_stuck_and_the_summary_lists_the_stuck_ones() -> None:
    creating = {"name": "model-server", "state": {"waiting": {"reason": "ContainerCreating"}}}
    pulling_init = {"name": "fetch", "state": {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}}
    status = rollout_status(
        deployment(updated=2, available=0), [pod("churn-a", creating), pod("churn-b", pulling_init, init=True)]
    )
    assert status.summary() == (
        'Waiting for deployment "churn" rollout to finish: 0 of 2 updated replicas are available...\n'
        "- churn-b/fetch: ErrImagePull — manifest unknown"
    )


def test_the_cause_leads_and_names_the_first_stuck_pod_with_a_count_of_the_others() -> None:
    pulling = {"name": "model-server", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
    stuck = rollout_status(deployment(available=0), [pod("churn-a", pulling), pod("churn-b", pulling)])
    assert stuck.cause() == "ImagePullBackOff: churn-a/model-server — not found (+1 more stuck)"
    assert rollout_status(deployment(available=1)).cause() == ""  # a slow rollout has no cause yet


def test_a_rollout_status_is_added_to_the_trackers_step_cause_first_and_on_one_line() -> None:
    pulling = {"name": "model-server", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
    status = rollout_status(deployment(updated=2, available=0), [pod("churn-a", pulling)])
    step = with_rollout(Step("committed", "no replica is up"), status)
    assert step.phase == "committed" and "\n" not in step.detail  # a dossier table cell
    assert step.detail == (
        "ImagePullBackOff: churn-a/model-server — not found · no replica is up · "
        'Waiting for deployment "churn" rollout to finish: 0 of 2 updated replicas are available...'
    )
    blind = with_rollout(Step("committed", "the bot cannot tell: timeout", certain=False), status)
    assert not blind.certain  # the cluster's words do not make Prometheus' blindness certain


def test_an_exceeded_progress_deadline_fails_the_step_with_certainty_but_prometheus_decides_live() -> None:
    stalled = deployment(updated=1, available=0)
    stalled["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    failed = with_rollout(
        Step("rolling_out", "1 of 2 ready replicas serve the new file", certain=False), rollout_status(stalled)
    )
    assert (failed.phase, failed.certain) == ("failed", True)
    assert failed.detail.startswith("ProgressDeadlineExceeded · 1 of 2 ready replicas")

    live = Step("live", "2 of 2 ready replicas serve the new file aaaa")
    assert with_rollout(live, rollout_status(stalled)) == live  # what is served wins over what the API says


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"name": "model-server", "state": {"waiting": {"reason": reason, "message": message}}}


def test_a_stuck_cause_is_news_once_per_distinct_cause_not_at_every_flip_of_the_kubelet() -> None:
    refused = "refused to serve: model.onnx: sha256 1234… does not match the pinned abcd…"
    last = {"terminated": {"exitCode": 1, "message": f"Error: {refused}"}}
    crash = {**waiting("CrashLoopBackOff", "back-off 10s restarting failed container"), "lastState": last}
    readings = [
        [pod("churn-a", waiting("ContainerCreating"))],  # a slow start: nothing to say
        [pod("churn-a", waiting("ImagePullBackOff", 'Back-off pulling image "ms:typo"'))],
        [pod("churn-a", waiting("ErrImagePull", "manifest unknown"))],  # the same cause, the kubelet retrying
        [pod("churn-b", waiting("ImagePullBackOff", 'Back-off pulling image "ms:typo"'))],  # a new pod, same cause
        [pod("churn-c", crash)],  # the image pulls now; the server refuses the file
        [pod("churn-c", {**crash, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}})],
        [pod("churn-c", {"name": "model-server", "state": {"running": {}}})],  # between two back-offs
        [pod("churn-c", crash)],
    ]
    told: str | None = None
    said = []
    for pods in readings:
        step = with_rollout(
            Step("committed", "0 of 2 ready replicas serve the new file"),
            rollout_status(deployment(updated=2, available=0), pods),
        )
        if cause_news(step, told):
            said.append(step.cause)
            told = step.cause_key
    assert said == [
        'ImagePullBackOff: churn-a/model-server — Back-off pulling image "ms:typo"',
        f"CrashLoopBackOff: churn-c/model-server — {refused}",
    ]
    assert told == "CrashLoopBackOff model-server"


def test_a_stuck_cause_is_not_news_once_the_deploy_is_live_or_failed() -> None:
    stuck = rollout_status(deployment(updated=2, available=1), [pod("churn-a", waiting("ImagePullBackOff"))])
    assert cause_news(with_rollout(Step("rolling_out", "1 of 2"), stuck), None)
    assert not cause_news(with_rollout(Step("failed", "not live after 10m"), stuck), None)
    stalled = deployment(updated=1, available=0)
    stalled["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    assert not cause_news(with_rollout(Step("committed", "0 of 2"), rollout_status(stalled)), None)


def test_the_stuck_status_leads_with_the_cause_within_githubs_140_characters() -> None:
    row = {"repo": "acme/models", "deploy_repo": "acme/deploy", "deploy_commit": "c" * 40, "source_pr": 7}
    long = "ImagePullBackOff: churn-a/model-server — " + "Back-off pulling image " * 10 + " · 0 of 2 ready replicas"
    status = stuck_status(row, long, "https://github.com")
    assert status["state"] == "in_progress" and status["log_url"] == "https://github.com/acme/models/pull/7"
    assert len(status["description"]) == 140 and status["description"].endswith("…")
    assert status["description"].startswith("ImagePullBackOff: churn-a/model-server — Back-off pulling image")
