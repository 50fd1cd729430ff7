"""Rollout status from the Kubernetes API, the way `kubectl rollout status` reads it, plus why pods are stuck.

When an environment names its Deployment (``environments.<env>.kubernetes: {namespace, deployment}``)
and the bot may read it (the chart's ``rollout.namespaces`` Role), a deploy can say more than "not live
yet": how many new replicas are updated and available, that the Deployment exceeded its progress
deadline, and each stuck pod's reason (ImagePullBackOff, CrashLoopBackOff with the model server's own
refusal, e.g. a digest that does not match what the values pin).

``rollout_status`` is pure, over the API objects as JSON; ``KubeRolloutReader`` is the thin blocking
reader (the official client, called from a worker thread) that fetches them. This complements the
Prometheus live check (bot.deploy.live): it reads the cluster's intent, Prometheus what is served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.deploy.rollout import Step
from bot.store.deployments import LIVE, NOT_LIVE

State = Literal["waiting", "progressing", "complete", "failed"]
# Waiting reasons that mean a container will not start without a change (not a slow start).
STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
# Reasons the kubelet alternates between for one cause (a pull that fails and its back-off; a container that
# cannot start and its back-off): one cause to tell, not a new one at every flip.
SAME_CAUSE = {"ErrImagePull": "ImagePullBackOff", "RunContainerError": "CrashLoopBackOff"}
_REFUSAL = "refused to serve"  # what model_server.serve says before it exits on a mismatch


@dataclass(frozen=True)
class StuckPod:
    pod: str
    container: str
    reason: str
    message: str

    def line(self) -> str:
        return f"{self.pod}/{self.container}: {self.reason}" + (f" — {self.message}" if self.message else "")


@dataclass(frozen=True)
class RolloutStatus:
    """One reading of a Deployment's rollout. ``message`` is kubectl's wording."""

    state: State
    message: str
    replicas: int
    updated: int
    available: int
    stuck: tuple[StuckPod, ...] = field(default=())

    @property
    def done(self) -> bool:
        return self.state in ("complete", "failed")

    def summary(self) -> str:
        """One paragraph for a GitHub Deployment status or the dossier (under 140 characters per line)."""
        lines = [self.message, *(f"- {p.line()}" for p in self.stuck)]
        return "\n".join(lines)

    def cause(self) -> str:
        """Why the rollout is not done, in a few words, or "" (a GitHub description keeps 140 characters: this
        leads). Only the first stuck pod is named: the others usually fail the same way."""
        if self.state == "failed":
            head = "ProgressDeadlineExceeded"
            return f"{head}: {self.stuck[0].line()}" if self.stuck else head
        if not self.stuck:
            return ""
        first = self.stuck[0]
        more = f" (+{len(self.stuck) - 1} more stuck)" if len(self.stuck) > 1 else ""
        said = f" — {first.message}" if first.message else ""
        return f"{first.reason}: {first.pod}/{first.container}{said}{more}"

    def cause_key(self) -> str:
        """What identifies the cause from one reading to the next (the live tracker tells each once): the
        stuck containers' reasons, folded where the kubelet alternates (SAME_CAUSE), without the pod names or
        the messages (a back-off's timer changes at every restart; a recreated pod has a new name)."""
        if self.state == "failed":
            return "ProgressDeadlineExceeded"
        return ", ".join(sorted({f"{SAME_CAUSE.get(p.reason, p.reason)} {p.container}" for p in self.stuck}))


def with_rollout(step: Step, status: RolloutStatus) -> Step:
    """The live tracker's step (from Prometheus) with what the Kubernetes API says (pure): the cause first,
    then what Prometheus showed, then kubectl's words; one line, as the dossier's table cell needs.

    Prometheus decides ``live`` (what is served, not what the cluster intends); an exceeded progress deadline
    decides ``failed`` before the bot's own deadline, and with certainty (the API said it, nothing was blind).
    """
    if step.phase == LIVE:
        return step
    parts = [status.cause(), step.detail, status.message]
    detail = " · ".join(p for p in parts if p)
    cause, key = status.cause(), status.cause_key()
    if status.state == "failed":
        return Step(NOT_LIVE, detail, certain=True, cause=cause, cause_key=key)
    return Step(step.phase, detail, step.certain, cause=cause, cause_key=key)


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or () if c.get("type") == kind), None)


def rollout_status(
    deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]] = (), logs: Mapping[str, str] | None = None
) -> RolloutStatus:
    """The rollout of ``deployment`` as kubectl reads it, with the reasons its ``pods`` are stuck (pure).

    ``logs`` maps ``pod/container`` to the tail of the last terminated instance's log (what the reader
    fetched for crash-looping containers), used when the kubelet kept no termination message.
    """
    name = deployment.get("metadata", {}).get("name", "?")
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    want = int(spec.get("replicas", 1))
    replicas, updated = int(status.get("replicas") or 0), int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    stuck = tuple(stuck_pods(pods, logs or {}))

    def result(state: State, message: str) -> RolloutStatus:
        return RolloutStatus(state, message, want, updated, available, stuck)

    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    if generation > int(status.get("observedGeneration") or 0):
        return result("waiting", "Waiting for deployment spec update to be observed...")
    progressing = _condition(status, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return result("failed", f'deployment "{name}" exceeded its progress deadline')
    if updated < want:
        return result(
            "progressing",
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new replicas have been '
            "updated...",
        )
    if replicas > updated:
        return result(
            "progressing",
            f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old replicas are pending '
            "termination...",
        )
    if available < updated:
        return result(
            "progressing",
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas are '
            "available...",
        )
    return result("complete", f'deployment "{name}" successfully rolled out')


def stuck_pods(pods: Sequence[Mapping[str, Any]], logs: Mapping[str, str]) -> list[StuckPod]:
    """Each container of ``pods`` waiting for a reason that will not pass on its own (pure)."""
    found = []
    for pod in pods:
        pod_name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status") or {}
        for kind in ("initContainerStatuses", "containerStatuses"):
            for c in status.get(kind) or ():
                waiting = (c.get("state") or {}).get("waiting") or {}
                reason = waiting.get("reason")
                if reason not in STUCK_REASONS:
                    continue
                last = (c.get("lastState") or {}).get("terminated") or {}
                key = f"{pod_name}/{c.get('name')}"
                message = refusal(last.get("message") or "") or refusal(logs.get(key, ""))
                if not message:
                    message = (waiting.get("message") or last.get("message") or _last_line(logs.get(key, "")))[:300]
                found.append(StuckPod(pod_name, str(c.get("name")), str(reason), message.strip()))
    return found


def refusal(text: str) -> str:
    """The model server's own reason for refusing to start, from a log or termination message."""
    for line in reversed(text.strip().splitlines()):
        if _REFUSAL in line:
            return line[line.index(_REFUSAL) :][:300].strip()
    return ""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def selector(deployment: Mapping[str, Any]) -> str:
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class KubeRolloutReader:
    """Reads a Deployment, its pods and the logs of crash-looping containers (``get``/``list`` only)."""

    def __init__(self, api: Any, *, log_lines: int = 20) -> None:
        from kubernetes import client

        self._api = api
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._log_lines = log_lines

    async def status(self, namespace: str, deployment: str) -> RolloutStatus:
        return await asyncio.to_thread(self._status, namespace, deployment)

    def _status(self, namespace: str, name: str) -> RolloutStatus:
        deployment = self._api.sanitize_for_serialization(self._apps.read_namespaced_deployment(name, namespace))
        listed = self._core.list_namespaced_pod(namespace, label_selector=selector(deployment))
        pods = [self._api.sanitize_for_serialization(p) for p in listed.items]
        logs: dict[str, str] = {}
        for pod in pods:
            for c in (pod.get("status") or {}).get("containerStatuses") or ():
                waiting = (c.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") == "CrashLoopBackOff":
                    pod_name = pod["metadata"]["name"]
                    logs[f"{pod_name}/{c['name']}"] = self._previous_log(namespace, pod_name, c["name"])
        return rollout_status(deployment, pods, logs)

    def _previous_log(self, namespace: str, pod: str, container: str) -> str:
        try:
            text: str = self._core.read_namespaced_pod_log(
                pod, namespace, container=container, previous=True, tail_lines=self._log_lines, limit_bytes=16384
            )
        except Exception:  # no previous instance (yet), or no pods/log access: the reason alone still says a lot
            return ""
        return text
