"""The control plane's controllers, in-process: Job, garbage collector, namespace lifecycle, TTL-after-finished.

They react to store events (``Store.listeners``) and write through the same store, so every change they
make is a watch event a client sees, as in a cluster.

- Job (completions 1, parallelism 1): creates a pod ``<job>-xxxxx`` owned by the Job; a failed pod is
  replaced until ``backoffLimit`` is reached (then Failed/BackoffLimitExceeded); a succeeded pod makes
  the Job SuccessCriteriaMet + Complete; ``activeDeadlineSeconds`` kills the Job's pods and fails it
  with DeadlineExceeded; counters active/ready/succeeded/failed/terminating as 1.33 reports them.
- Garbage collector: a dependent (ownerReferences) whose owner is gone is deleted (background); an
  owner deleted with Foreground keeps its ``foregroundDeletion`` finalizer and deletionTimestamp until
  its blocking dependents are gone; Orphan strips the owner reference.
- Namespace: deleting one makes it Terminating, deletes everything in it, then removes it.
- TTL-after-finished: a finished Job is deleted (Foreground) ``ttlSecondsAfterFinished`` seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from devkit.kubeapi import podspec
from devkit.kubeapi.model import (
    JOBS,
    KINDS,
    NAMESPACES,
    NODE_NAME,
    PODS,
    ApiError,
    Kind,
    generated_name,
    now,
    parse_time,
)
from devkit.kubeapi.store import Event, Obj, Store

log = logging.getLogger(__name__)
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def finished(job: Obj) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or ():
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def _condition(kind: str, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    at = now()
    entry: dict[str, Any] = {"type": kind, "status": "True", "lastProbeTime": at, "lastTransitionTime": at}
    if reason:
        entry["reason"] = reason
    if message:
        entry["message"] = message
    return entry


class Controllers:
    def __init__(self, store: Store, delete: Callable[[Kind, str, str, str | None], Awaitable[None]]) -> None:
        self.store = store
        self.delete = delete  # the API's own delete path (kubelet termination, finalizers, …)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: dict[str, asyncio.TimerHandle] = {}
        store.listeners.append(self._on_event)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, ApiError):
            log.error("kubeapi controller failed: %r", exc, exc_info=exc)

    def stop(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        for task in list(self.tasks):
            task.cancel()

    # --- event dispatch ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        kind, obj = event.kind, event.obj
        if kind == JOBS and event.type != "DELETED":
            asyncio.get_running_loop().call_soon(self.sync_job, obj["metadata"]["namespace"], obj["metadata"]["name"])
        if kind == PODS:
            for ref in obj["metadata"].get("ownerReferences") or ():
                if ref.get("kind") == "Job" and ref.get("controller"):
                    asyncio.get_running_loop().call_soon(self.sync_job, obj["metadata"]["namespace"], ref["name"])
        if event.type == "DELETED":
            asyncio.get_running_loop().call_soon(self.collect, obj["metadata"]["uid"])
            for ref in obj["metadata"].get("ownerReferences") or ():
                asyncio.get_running_loop().call_soon(self.owner_check, ref["uid"])
            if kind != NAMESPACES and kind.namespaced:
                asyncio.get_running_loop().call_soon(self.namespace_check, obj["metadata"].get("namespace", ""))
        elif obj["metadata"].get("deletionTimestamp"):
            if FOREGROUND in (obj["metadata"].get("finalizers") or ()):
                asyncio.get_running_loop().call_soon(self.owner_check, obj["metadata"]["uid"])
            if kind == NAMESPACES:
                asyncio.get_running_loop().call_soon(self.namespace_check, obj["metadata"]["name"])

    # --- garbage collector ---------------------------------------------------------------------

    def collect(self, uid: str) -> None:
        """Delete (background) the dependents of an owner that is gone."""
        if self.store.by_uid(uid) is not None:
            return
        for kind, dependent in list(self.store.dependents(uid)):
            meta = dependent["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            owners = [r for r in meta.get("ownerReferences") or () if self.store.by_uid(r["uid"]) is not None]
            if not owners:
                self._spawn(self.delete(kind, meta.get("namespace", ""), meta["name"], "Background"))

    def owner_check(self, uid: str) -> None:
        """An owner being deleted in the foreground: delete its dependents, then release it."""
        owner = self.store.by_uid(uid)
        if owner is None or FOREGROUND not in (owner["metadata"].get("finalizers") or ()):
            return
        blocking = []
        for kind, dependent in list(self.store.dependents(uid)):
            meta = dependent["metadata"]
            ref = next(r for r in meta["ownerReferences"] if r["uid"] == uid)
            if ref.get("blockOwnerDeletion"):
                blocking.append(dependent)
            if not meta.get("deletionTimestamp"):
                self._spawn(self.delete(kind, meta.get("namespace", ""), meta["name"], "Background"))
        if not blocking:
            kind = _kind_of(owner)
            meta = owner["metadata"]

            def release(obj: Obj) -> None:
                obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or () if f != FOREGROUND]

            updated = self.store.mutate(kind, meta.get("namespace", ""), meta["name"], release)
            if updated is not None and not updated["metadata"].get("finalizers"):
                self.store.remove(kind, meta.get("namespace", ""), meta["name"])

    # --- namespaces ----------------------------------------------------------------------------

    def namespace_check(self, name: str) -> None:
        namespace = self.store.get(NAMESPACES, "", name)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        left = [
            (kind, obj)
            for kind in KINDS.values()
            if kind.namespaced
            for obj in self.store.items(kind)
            if obj["metadata"].get("namespace") == name
        ]
        for kind, obj in left:
            if not obj["metadata"].get("deletionTimestamp"):
                self._spawn(self.delete(kind, name, obj["metadata"]["name"], "Background"))
        if not left:
            self.store.remove(NAMESPACES, "", name)

    # --- jobs ----------------------------------------------------------------------------------

    def sync_job(self, namespace: str, name: str) -> None:
        job = self.store.get(JOBS, namespace, name)
        if job is None:
            return
        uid = job["metadata"]["uid"]
        pods = [
            p
            for p in self.store.items(PODS)
            if p["metadata"].get("namespace") == namespace
            and any(r["uid"] == uid and r.get("controller") for r in p["metadata"].get("ownerReferences") or ())
        ]
        spec, status = job["spec"], copy.deepcopy(job.get("status") or {})
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        terminating = sum(
            1
            for p in pods
            if p["metadata"].get("deletionTimestamp") and phases[pods.index(p)] not in ("Succeeded", "Failed")
        )
        active = sum(
            1
            for p, ph in zip(pods, phases, strict=True)
            if ph not in ("Succeeded", "Failed") and not p["metadata"].get("deletionTimestamp")
        )
        succeeded = sum(1 for ph in phases if ph == "Succeeded")
        failed = max(status.get("failed", 0), sum(1 for ph in phases if ph == "Failed"))
        ready = sum(
            1
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or ()
            )
        )
        done = finished(job)
        conditions = status.get("conditions") or []
        deleting = bool(job["metadata"].get("deletionTimestamp"))
        if not done and not deleting:
            target = next((c for c in conditions if c["type"] in ("FailureTarget", "SuccessCriteriaMet")), None)
            if target is None:
                if succeeded >= 1:
                    conditions = [
                        *conditions,
                        _condition(
                            "SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"
                        ),
                    ]
                elif failed > spec.get("backoffLimit", 6):
                    conditions = [
                        *conditions,
                        _condition(
                            "FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                        ),
                    ]
                elif self._past_deadline(job):
                    conditions = [
                        *conditions,
                        _condition(
                            "FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"
                        ),
                    ]
            target = next((c for c in conditions if c["type"] in ("FailureTarget", "SuccessCriteriaMet")), None)
            if target is not None:
                for pod in pods:  # a finished Job's remaining pods are terminated
                    if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not pod[
                        "metadata"
                    ].get("deletionTimestamp"):
                        self._spawn(self.delete(PODS, namespace, pod["metadata"]["name"], "Background"))
                if active == 0 and terminating == 0:
                    final = "Complete" if target["type"] == "SuccessCriteriaMet" else "Failed"
                    conditions = [*conditions, _condition(final, target.get("reason"), target.get("message"))]
                    if final == "Complete":
                        status["completionTime"] = now()
            elif active == 0 and not spec.get("suspend"):
                self._create_pod(job)
                active = 1
            if spec.get("activeDeadlineSeconds") and "deadline:" + uid not in self.timers:
                started = parse_time(status.get("startTime") or job["metadata"]["creationTimestamp"])
                wait = started.timestamp() + spec["activeDeadlineSeconds"] - parse_time(now()).timestamp()
                loop = asyncio.get_running_loop()
                self.timers["deadline:" + uid] = loop.call_later(max(wait, 0) + 0.01, self.sync_job, namespace, name)
        status.update(
            active=active,
            ready=ready,
            succeeded=succeeded,
            failed=failed,
            terminating=terminating,
            uncountedTerminatedPods={},
        )
        for key in ("active", "succeeded", "failed"):
            if not status[key]:
                status.pop(key)
        if conditions:
            status["conditions"] = conditions
        status.setdefault("startTime", job["metadata"]["creationTimestamp"])
        if status != (job.get("status") or {}):
            with contextlib.suppress(ApiError):
                self.store.mutate(JOBS, namespace, name, lambda j: j.__setitem__("status", status))
        if (
            finished({"status": status})
            and "ttl:" + uid not in self.timers
            and spec.get("ttlSecondsAfterFinished") is not None
        ):
            loop = asyncio.get_running_loop()
            self.timers["ttl:" + uid] = loop.call_later(
                spec["ttlSecondsAfterFinished"], lambda: self._spawn(self.delete(JOBS, namespace, name, "Foreground"))
            )

    def _past_deadline(self, job: Obj) -> bool:
        seconds = job["spec"].get("activeDeadlineSeconds")
        if not seconds:
            return False
        started = parse_time((job.get("status") or {}).get("startTime") or job["metadata"]["creationTimestamp"])
        return parse_time(now()).timestamp() >= started.timestamp() + seconds

    def _create_pod(self, job: Obj) -> None:
        meta, template = job["metadata"], job["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": generated_name(meta["name"] + "-"),
                "generateName": meta["name"] + "-",
                "namespace": meta["namespace"],
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template["spec"]),
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        self.admission(PODS, pod)  # the pod is created through the API: admission webhooks see it
        place(pod, self.node)
        created = self.store.create(PODS, pod)
        self.admitted(created)

    admitted: Callable[[Obj], None] = staticmethod(lambda _pod: None)  # set by the server: start the pod
    admission: Callable[[Kind, Obj], None] = staticmethod(lambda _kind, _obj: None)  # set by the server
    node: str | None = NODE_NAME  # the node the scheduler binds to (None: a cluster with no node)


def scheduled_condition(gated: bool = False) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": "PodScheduled",
        "status": "False" if gated else "True",
        "lastProbeTime": None,
        "lastTransitionTime": now(),
    }
    if gated:
        condition.update(reason="SchedulingGated", message=podspec.SCHEDULING_GATED)
    return condition


def place(pod: Obj, node: str | None) -> None:
    """The scheduler's decision on a new pod: one with scheduling gates waits unbound (Pending, PodScheduled
    False, reason SchedulingGated) until its last gate is removed; any other is bound to the one node."""
    spec, status = pod["spec"], pod.setdefault("status", {"phase": "Pending"})
    if podspec.gates(spec):
        status["conditions"] = [scheduled_condition(gated=True)]
    elif node is not None and not spec.get("nodeName"):
        spec["nodeName"] = node


def _kind_of(obj: Obj) -> Kind:
    group, _, version = obj["apiVersion"].rpartition("/")
    return next(k for k in KINDS.values() if k.group == group and k.version == version and k.kind == obj["kind"])
