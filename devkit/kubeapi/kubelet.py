"""The stand-in's kubelet: runs each pod bound to its node on podman through the Docker Engine API.

What a pod gets (each field of its spec, see ``podspec`` for the refusals):

- ``securityContext`` (pod, overridden per container): runAsUser/runAsGroup -> the container's user;
  runAsNonRoot -> checked against that user or the image's USER (CreateContainerConfigError if root
  or not numeric, as the kubelet does); readOnlyRootFilesystem -> a read-only root, with /tmp, /run
  and /var/tmp read-only too (podman would otherwise add writable ones Kubernetes does not have);
  capabilities drop/add; allowPrivilegeEscalation false -> no-new-privileges; seccompProfile
  RuntimeDefault -> the engine's default profile, unset or Unconfined -> unconfined (Kubernetes'
  default without the kubelet's SeccompDefault). The created container is read back and refused
  (CreateContainerError) if the engine dropped any of these.
- ``resources.limits``: cpu -> a CPU quota, memory -> memory and memory+swap limits (so an OOM kill
  is exit 137, reported as OOMKilled), ephemeral-storage -> caps the pod's disk emptyDirs (the root is
  read-only). Every container also gets the node's pod PID limit (the kubelet's podPidsLimit).
- ``volumes[].emptyDir``: a directory on the host shared by the pod's containers; with ``sizeLimit``
  (or medium Memory, or an ephemeral-storage limit) a tmpfs of that size, so writing past it fails.
- ``initContainers`` run one by one to completion before ``containers`` start; a failure fails the pod.
- ``schedulingGates``: a gated pod is never bound to the node (the server's scheduler binds it when its
  last gate is removed), so the kubelet never starts one; ``admit`` refuses one regardless.
- ``activeDeadlineSeconds``: the pod's containers are killed and it fails with reason DeadlineExceeded.
- ``automountServiceAccountToken`` not false: a service-account token (one the stand-in accepts) is
  mounted at /var/run/secrets/kubernetes.io/serviceaccount, as a real kubelet does: the product must
  opt out to keep credentials out of a pod.
- network: a pod selected by a deny-all NetworkPolicy (Ingress and Egress, no rules) has no network
  (NetworkMode none), also when the policy arrives while it runs; other pods get the engine's bridge.

Containers stay (stopped) until their pod is deleted, so their logs can be read; deleting a pod kills
and removes them, unmounts its volumes, removes the images it pulled by digest that no other pod uses
(see ``_remove_unused_images``) and only then removes the pod object.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ctypes
import datetime
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.types import Mount

from devkit.kubeapi.model import NETWORK_POLICIES, NODE_NAME, PODS, now, selector_matches
from devkit.kubeapi.podspec import effective_security, gates, quantity
from devkit.kubeapi.store import Obj, Store

log = logging.getLogger(__name__)
T = TypeVar("T")
LABEL = "io.modelship.kubeapi"  # value: the KubeAPI instance; every container it made carries it
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_POLL_S = 2.0  # a fallback for the engine's event stream, which normally reports an exit at once
_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2


# The stand-in node's podPidsLimit. Below the engine's per-uid process limit (podman's nproc ulimit, 1024
# on the project's service, counts every process of a uid on the host): at 1024 one pod's fork bomb used
# the whole budget of uid 65534, starving every other sandbox pod (forks and threads failing at once).
POD_PIDS_LIMIT = 256


class _Refused(Exception):
    """A container could not be created; ``reason`` is the kubelet's waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class _PodRuntime:
    uid: str
    namespace: str
    name: str
    root: Path
    task: asyncio.Task[None] | None = None
    containers: dict[str, str] = field(default_factory=dict)  # container name -> engine id
    killed: set[str] = field(default_factory=set)  # engine ids the kubelet itself killed
    mounts: list[Path] = field(default_factory=list)  # host tmpfs mounts to undo
    deadline_exceeded: bool = False
    terminating: bool = False
    finished: bool = False
    network: str = "bridge"
    images: set[str] = field(default_factory=set)  # engine image ids its containers were created from


def isolated(store: Store, pod: Obj) -> bool:
    """Whether a deny-all NetworkPolicy (ingress and egress) selects the pod."""
    labels = pod["metadata"].get("labels") or {}
    for policy in store.items(NETWORK_POLICIES):
        if policy["metadata"].get("namespace") != pod["metadata"].get("namespace"):
            continue
        spec = policy.get("spec") or {}
        types = set(spec.get("policyTypes") or ())
        if {"Ingress", "Egress"} <= types and selector_matches(spec.get("podSelector"), labels):
            return True
    return False


def _engine_time(value: str | None) -> str | None:
    if not value or value.startswith("0001-"):
        return None
    return value[:19] + "Z"


class Kubelet:
    def __init__(
        self,
        store: Store,
        client: docker.DockerClient,
        *,
        instance: str,
        workdir: Path,
        pod_pids_limit: int = POD_PIDS_LIMIT,
        issue_token: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.instance = instance
        self.workdir = workdir
        self.pod_pids_limit = pod_pids_limit
        self.issue_token = issue_token or (lambda _sa: secrets.token_urlsafe(32))
        self.pods: dict[str, _PodRuntime] = {}
        # Engine calls block; a pool of its own so many pods cannot starve the default executor.
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="kubelet")
        self._exits: dict[str, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: Any = None
        self._stopping = False
        # One pull at a time, as the real kubelet's default (serializeImagePulls: true): podman's service
        # wedged its image store with eight concurrent pulls of images sharing the product image's layers.
        self._pull_lock = threading.Lock()
        # Images the kubelet pulled by digest (a run's review inputs): removed with the last pod using them.
        self._pulled: set[str] = set()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._events = self.client.events(
            decode=True, filters={"type": "container", "label": [f"{LABEL}={self.instance}"]}
        )
        threading.Thread(target=self._read_events, name="kubelet-events", daemon=True).start()

    def _read_events(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when closed at stop()
            for event in self._events:
                if (event.get("status") or event.get("Action")) == "die" and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._exited, event.get("id") or event.get("Actor", {}).get("ID"))

    def _exited(self, cid: str | None) -> None:
        future = self._exits.get(cid or "")
        if future is not None and not future.done():
            future.set_result(None)

    async def stop(self) -> None:
        self._stopping = True
        for runtime in list(self.pods.values()):
            if runtime.task is not None:
                runtime.task.cancel()
        await self._call(self._remove_all)
        for runtime in list(self.pods.values()):
            await self._call(self._release_volumes, runtime)
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _remove_all(self) -> None:
        # sparse: a full list inspects each container, and one a cancelled pod task removes meanwhile is a 500
        label = {"label": f"{LABEL}={self.instance}"}
        for container in self.client.containers.list(all=True, sparse=True, filters=label):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True, v=True)

    # --- pods -------------------------------------------------------------------------------

    def admit(self, pod: Obj) -> None:
        """Start running a pod just bound to this node."""
        meta = pod["metadata"]
        if gates(pod["spec"]):
            # Unreachable through the API (a gated pod is never bound; nodeName beside gates is a 422): a
            # stand-in bug must not start a pod something still holds.
            log.error("kubelet: refusing gated pod %s/%s: %s", meta["namespace"], meta["name"], gates(pod["spec"]))
            return
        runtime = _PodRuntime(meta["uid"], meta["namespace"], meta["name"], self.workdir / "pods" / meta["uid"])
        self.pods[runtime.uid] = runtime
        runtime.task = asyncio.get_running_loop().create_task(self._run(runtime), name=f"kubelet {meta['name']}")

    async def terminate(self, pod: Obj) -> None:
        """Kill and remove the pod's containers and volumes, then remove the pod object (deletion)."""
        meta = pod["metadata"]
        runtime = self.pods.get(meta["uid"])
        if runtime is not None:
            runtime.terminating = True
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            await self._kill_all(runtime, stop_timeout=int(grace))
            if runtime.task is not None:
                runtime.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runtime.task
            await self._call(self._remove_pod_containers, runtime)
            await self._call(self._release_volumes, runtime)
            self.pods.pop(runtime.uid, None)
            await self._call(self._remove_unused_images, runtime.images)
        current = self.store.get(PODS, meta["namespace"], meta["name"])
        if current is not None and current["metadata"]["uid"] == meta["uid"]:
            self.store.remove(PODS, meta["namespace"], meta["name"])

    async def network_changed(self, namespace: str) -> None:
        """A NetworkPolicy appeared: running pods it now isolates lose their network at once."""
        for runtime in list(self.pods.values()):
            pod = self.store.get(PODS, runtime.namespace, runtime.name)
            if (
                runtime.namespace != namespace
                or runtime.network == "none"
                or pod is None
                or not isolated(self.store, pod)
            ):
                continue
            runtime.network = "none"
            for cid in list(runtime.containers.values()):
                await self._call(self._disconnect, cid)

    def _disconnect(self, cid: str) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            container = self.client.containers.get(cid)
            for network in list((container.attrs.get("NetworkSettings") or {}).get("Networks") or {}):
                self.client.networks.get(network).disconnect(cid, force=True)

    async def _kill_all(self, runtime: _PodRuntime, stop_timeout: int = 0) -> None:
        for cid in list(runtime.containers.values()):
            runtime.killed.add(cid)
            await self._call(self._stop, cid, stop_timeout)

    def _stop(self, cid: str, timeout: int) -> None:
        with contextlib.suppress(docker.errors.DockerException):
            container = self.client.containers.get(cid)
            if container.status in ("running", "created", "paused"):
                if timeout > 0:
                    container.stop(timeout=min(timeout, 30))
                else:
                    container.kill()

    def _remove_unused_images(self, images: set[str]) -> None:
        """Remove the images pulled by digest for a deleted pod that no other pod uses.

        A real kubelet keeps pulled images until its image garbage collection frees disk (by usage,
        past imageGCHighThresholdPercent); the stand-in's node is the developer's machine, and every
        sandbox run pulls a fresh inputs image, so it removes them as soon as nothing uses them.
        """
        in_use = {i for runtime in self.pods.values() for i in runtime.images}
        for image_id in sorted((images & self._pulled) - in_use):
            try:
                self.client.api.remove_image(image_id)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # e.g. a container outside the stand-in uses it
                log.warning("kubelet: could not remove image %s: %s", image_id, exc)
                continue
            self._pulled.discard(image_id)

    def _remove_pod_containers(self, runtime: _PodRuntime) -> None:
        found = self.client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL}.pod={runtime.uid}"})
        for container in found:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True, v=True)
        for cid in runtime.containers.values():
            self._exits.pop(cid, None)

    # --- the pod worker -------------------------------------------------------------------------

    def _set_status(self, runtime: _PodRuntime, change: Callable[[dict[str, Any]], None]) -> bool:
        def apply(pod: Obj) -> None:
            change(pod.setdefault("status", {}))

        pod = self.store.get(PODS, runtime.namespace, runtime.name)
        if pod is None or pod["metadata"]["uid"] != runtime.uid:
            return False
        self.store.mutate(PODS, runtime.namespace, runtime.name, apply)
        return True

    def _pod(self, runtime: _PodRuntime) -> Obj | None:
        pod = self.store.get(PODS, runtime.namespace, runtime.name)
        return pod if pod is not None and pod["metadata"]["uid"] == runtime.uid else None

    async def _run(self, runtime: _PodRuntime) -> None:
        pod = self._pod(runtime)
        if pod is None:
            return
        spec = pod["spec"]
        inits, mains = spec.get("initContainers") or [], spec["containers"]
        started = now()

        def pending(status: dict[str, Any]) -> None:
            status.update(
                phase="Pending",
                hostIP="127.0.0.1",
                hostIPs=[{"ip": "127.0.0.1"}],
                startTime=started,
                qosClass=_qos(spec),
                conditions=_conditions(scheduled=True, initialized=not inits, ready=False, at=started),
            )
            if inits:
                status["initContainerStatuses"] = [_waiting(c, "PodInitializing") for c in inits]
            status["containerStatuses"] = [
                _waiting(c, "PodInitializing" if inits else "ContainerCreating") for c in mains
            ]

        self._set_status(runtime, pending)
        deadline = spec.get("activeDeadlineSeconds")
        watchdog = asyncio.get_running_loop().create_task(self._deadline(runtime, deadline)) if deadline else None
        try:
            await self._call(self._prepare_volumes, runtime, pod)
            runtime.network = "none" if isolated(self.store, pod) else "bridge"
            for index, container in enumerate(inits):
                code = await self._run_one(runtime, pod, container, "initContainerStatuses", index)
                if code != 0:
                    self._finish(runtime, "Failed")
                    return
            self._set_status(
                runtime,
                lambda s: s.update(conditions=_conditions(scheduled=True, initialized=True, ready=False, at=now())),
            )
            codes = await asyncio.gather(
                *(
                    self._run_one(runtime, pod, c, "containerStatuses", i, all_ready=len(mains))
                    for i, c in enumerate(mains)
                )
            )
            self._finish(runtime, "Succeeded" if all(c == 0 for c in codes) else "Failed")
        except _Refused:
            return  # the container waits with its reason, as a kubelet's would; the deadline still applies
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an engine error: the pod fails visibly instead of hanging
            log.exception("kubelet: pod %s/%s failed", runtime.namespace, runtime.name)
            message = str(exc)[:500]
            self._set_status(runtime, lambda s: s.update(phase="Failed", reason="KubeletError", message=message))
        finally:
            if watchdog is not None and not runtime.deadline_exceeded:
                watchdog.cancel()

    def _finish(self, runtime: _PodRuntime, phase: str) -> None:
        runtime.finished = True

        def change(status: dict[str, Any]) -> None:
            if runtime.deadline_exceeded:
                status.update(
                    phase="Failed",
                    reason="DeadlineExceeded",
                    message="Pod was active on the node longer than the specified deadline",
                )
            else:
                status["phase"] = phase
            status["conditions"] = _conditions(
                scheduled=True, initialized=True, ready=False, at=now(), reason="PodCompleted"
            )

        self._set_status(runtime, change)

    async def _deadline(self, runtime: _PodRuntime, seconds: int) -> None:
        await asyncio.sleep(seconds)
        if runtime.finished or runtime.terminating:
            return
        runtime.deadline_exceeded = True
        await self._kill_all(runtime)
        if runtime.task is not None and not runtime.containers:
            runtime.task.cancel()  # still pulling or creating: nothing to wait for
            self._finish(runtime, "Failed")

    async def _run_one(
        self, runtime: _PodRuntime, pod: Obj, container: dict[str, Any], which: str, index: int, all_ready: int = 0
    ) -> int:
        name = container["name"]

        def waiting(reason: str, message: str) -> Callable[[dict[str, Any]], None]:
            def change(status: dict[str, Any]) -> None:
                status[which][index] = _waiting(container, reason, message)

            return change

        while True:
            if runtime.deadline_exceeded or runtime.terminating:
                raise _Refused("DeadlineExceeded", "")
            try:
                cid, image_id = await self._create(runtime, pod, container)
                break
            except _Refused as refused:
                self._set_status(runtime, waiting(refused.reason, refused.message))
                if refused.reason not in ("ErrImagePull", "ImagePullBackOff"):
                    raise
                await asyncio.sleep(5)  # back off, then pull again, as the kubelet does
        if runtime.deadline_exceeded or runtime.terminating:
            runtime.killed.add(cid)
            await self._call(self._stop, cid, 0)
            raise _Refused("DeadlineExceeded", "")
        exit_future = asyncio.get_running_loop().create_future()
        self._exits[cid] = exit_future
        await self._call(self._start, cid)
        started = now()
        if runtime.network == "bridge" and isolated(self.store, pod):  # a policy arrived while it started
            runtime.network = "none"
            await self._call(self._disconnect, cid)
        ip = await self._call(self._address, cid)

        def running(status: dict[str, Any]) -> None:
            entry = _base(container, cid, image_id)
            entry.update(ready=True, started=True, state={"running": {"startedAt": started}})
            status[which][index] = entry
            if ip and not status.get("podIP"):
                status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
            if which == "containerStatuses":
                ready = all(c.get("ready") for c in status[which])
                status["phase"] = "Running"
                status["conditions"] = _conditions(scheduled=True, initialized=True, ready=ready, at=now())

        self._set_status(runtime, running)
        state = await self._wait(cid, exit_future)
        code = int(state.get("ExitCode") or 0)
        killed = cid in runtime.killed
        oom = bool(state.get("OOMKilled")) or (code == 137 and not killed)
        reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")

        def terminated(status: dict[str, Any]) -> None:
            entry = _base(container, cid, image_id)
            entry.update(
                ready=False,
                started=False,
                state={
                    "terminated": {
                        "exitCode": code,
                        "reason": reason,
                        "startedAt": _engine_time(state.get("StartedAt")) or started,
                        "finishedAt": _engine_time(state.get("FinishedAt")) or now(),
                        "containerID": f"podman://{cid}",
                    }
                },
            )
            status[which][index] = entry

        self._set_status(runtime, terminated)
        log.debug("kubelet: %s/%s container %s exited %s", runtime.namespace, runtime.name, name, code)
        return code

    async def _wait(self, cid: str, exit_future: asyncio.Future[None]) -> dict[str, Any]:
        # The engine's event stream reports an exit at once, but podman's file-backed events can miss the
        # first ones after the stream opens: ask the engine too, soon at first, then every _POLL_S.
        interval = 0.1
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exit_future), interval)
            interval = min(interval * 2, _POLL_S)
            state = await self._call(self._state, cid)
            if state.get("Status") not in ("created", "running", "paused", "restarting", "configured"):
                self._exits.pop(cid, None)
                return state

    def _state(self, cid: str) -> dict[str, Any]:
        try:
            return dict(self.client.api.inspect_container(cid).get("State") or {})
        except docker.errors.NotFound:
            return {"Status": "removed", "ExitCode": 137}

    def _start(self, cid: str) -> None:
        self.client.api.start(cid)

    def _address(self, cid: str) -> str:
        networks = (self.client.api.inspect_container(cid).get("NetworkSettings") or {}).get("Networks") or {}
        return next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")

    # --- creating one container ----------------------------------------------------------------

    async def _create(self, runtime: _PodRuntime, pod: Obj, container: dict[str, Any]) -> tuple[str, str]:
        image = await self._call(self._image, container["image"], container.get("imagePullPolicy", "IfNotPresent"))
        runtime.images.add(str(image.get("Id", "")))
        kwargs, expected = self._create_kwargs(runtime, pod, container, image)
        created = await self._call(self._create_unless_terminating, runtime, kwargs)
        cid = created["Id"]
        runtime.containers[container["name"]] = cid
        attrs = await self._call(self.client.api.inspect_container, cid)
        if problems := _missing(attrs, expected):
            await self._call(self.client.api.remove_container, cid, force=True)
            runtime.containers.pop(container["name"], None)
            raise _Refused("CreateContainerError", "the engine did not apply: " + "; ".join(problems))
        return cid, str(image.get("Id", ""))

    def _create_unless_terminating(self, runtime: _PodRuntime, kwargs: dict[str, Any]) -> dict[str, Any]:
        # A pod deleted while its container was being created: the awaiting task is cancelled and would
        # never learn the id, so the thread itself removes what it made (terminate lists by label before).
        created: dict[str, Any] = self.client.api.create_container(**kwargs)
        if runtime.terminating:
            with contextlib.suppress(docker.errors.DockerException):
                self.client.api.remove_container(created["Id"], force=True)
            raise _Refused("Terminating", "the pod is being deleted")
        return created

    def _image(self, ref: str, policy: str) -> dict[str, Any]:
        if policy != "Always":
            with contextlib.suppress(docker.errors.ImageNotFound):
                return dict(self.client.api.inspect_image(ref))
            if policy == "Never":
                raise _Refused("ErrImageNeverPull", f'Container image "{ref}" is not present with pull policy of Never')
        # podman's own pull endpoint: the Docker one cannot skip TLS for the plain-HTTP test registry
        try:
            with self._pull_lock:
                return self._pull(ref, recheck=policy != "Always")
        except requests.exceptions.RequestException as exc:
            raise _Refused("ErrImagePull", f"pulling {ref}: {exc}") from exc

    def _pull(self, ref: str, *, recheck: bool) -> dict[str, Any]:
        if recheck:  # pulled meanwhile by a pod ahead in line
            with contextlib.suppress(docker.errors.ImageNotFound):
                return dict(self.client.api.inspect_image(ref))
        try:
            response = self.client.api.post(
                self.client.api.base_url + "/v4.0.0/libpod/images/pull",
                params={"reference": ref, "tlsVerify": "false", "quiet": "true"},
                stream=True,
            )
            body = b"".join(response.iter_content(65536)).decode("utf-8", "replace")
        except requests.exceptions.RequestException as exc:
            raise _Refused("ErrImagePull", f"pulling {ref}: {exc}") from exc
        if response.status_code != 200 or '"error"' in body:
            raise _Refused("ErrImagePull", f"pulling {ref}: {body.strip()[-500:]}")
        try:
            pulled = dict(self.client.api.inspect_image(ref))
        except docker.errors.ImageNotFound as exc:
            raise _Refused("ErrImagePull", f"pulling {ref}: not found after the pull") from exc
        if "@sha256:" in ref:
            self._pulled.add(str(pulled.get("Id", "")))
        return pulled

    def _create_kwargs(
        self, runtime: _PodRuntime, pod: Obj, container: dict[str, Any], image: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        spec = pod["spec"]
        security = effective_security(spec, container)
        user = _user(security, image)
        limits = (container.get("resources") or {}).get("limits") or {}
        read_only = bool(security.get("readOnlyRootFilesystem"))
        caps = security.get("capabilities") or {}
        security_opt = []
        if security.get("allowPrivilegeEscalation") is False:
            security_opt.append("no-new-privileges")
        seccomp = (security.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            security_opt.append("seccomp=unconfined")  # Kubernetes' default: Unconfined unless asked
        mounts: list[Mount] = []
        covered: set[str] = set()
        for mount in container.get("volumeMounts") or ():
            source = runtime.root / "volumes" / mount["name"]
            mounts.append(Mount(mount["mountPath"], str(source), type="bind", read_only=bool(mount.get("readOnly"))))
            covered.add(mount["mountPath"].rstrip("/"))
        if spec.get("automountServiceAccountToken") is not False:
            mounts.append(Mount(SA_DIR, str(runtime.root / "serviceaccount"), type="bind", read_only=True))
        tmpfs = {}
        if read_only:  # podman adds writable /tmp, /run, /var/tmp to a read-only root; Kubernetes has none
            tmpfs = {p: "ro,size=4k,nosuid,nodev,noexec" for p in ("/tmp", "/run", "/var/tmp") if p not in covered}
        memory = int(quantity(limits["memory"])) if "memory" in limits else None
        host_config = self.client.api.create_host_config(
            network_mode="none" if runtime.network == "none" else None,
            read_only=read_only,
            cap_drop=list(caps.get("drop") or ()) or None,
            cap_add=list(caps.get("add") or ()) or None,
            security_opt=security_opt or None,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(quantity(limits["cpu"]) * 1e9) if "cpu" in limits else None,
            pids_limit=self.pod_pids_limit,
            mounts=mounts,
            tmpfs=tmpfs or None,
            group_add=[str(g) for g in (spec.get("securityContext") or {}).get("supplementalGroups") or ()] or None,
        )
        kwargs: dict[str, Any] = {
            "image": image["Id"],
            "entrypoint": container.get("command") or None,
            "command": container.get("args") or ([] if container.get("command") else None),
            "environment": {e["name"]: e.get("value", "") for e in container.get("env") or ()},
            "working_dir": container.get("workingDir"),
            "user": user,
            "hostname": pod["metadata"]["name"][:63],
            "host_config": host_config,
            "network_disabled": runtime.network == "none",
            "labels": {
                LABEL: self.instance,
                f"{LABEL}.pod": runtime.uid,
                f"{LABEL}.container": container["name"],
                f"{LABEL}.namespace": runtime.namespace,
            },
            "detach": True,
        }
        expected = {
            "user": user,
            "read_only": read_only,
            "no_new_privileges": "no-new-privileges" in security_opt,
            "cap_drop": set(caps.get("drop") or ()),
            "memory": memory,
            "nano_cpus": host_config.get("NanoCpus"),
            "network_none": runtime.network == "none",
            "pids": self.pod_pids_limit,
        }
        return kwargs, expected

    # --- volumes --------------------------------------------------------------------------------

    def _prepare_volumes(self, runtime: _PodRuntime, pod: Obj) -> None:
        spec = pod["spec"]
        containers = [*(spec.get("initContainers") or ()), *spec["containers"]]
        memory = sum(quantity(((c.get("resources") or {}).get("limits") or {}).get("memory", 0)) for c in containers)
        ephemeral = sum(
            quantity(((c.get("resources") or {}).get("limits") or {}).get("ephemeral-storage", 0)) for c in containers
        )
        for volume in spec.get("volumes") or ():
            path = runtime.root / "volumes" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            empty = volume.get("emptyDir") or {}
            size = quantity(empty["sizeLimit"]) if empty.get("sizeLimit") else 0.0
            if empty.get("medium") == "Memory":
                size = size or memory
            else:
                size = min(s for s in (size, ephemeral) if s) if (size or ephemeral) else 0.0
            if size:
                _mount_tmpfs(path, int(size))
                runtime.mounts.append(path)
            os.chmod(path, 0o777)  # an emptyDir is world-writable, as the kubelet makes it
        if spec.get("automountServiceAccountToken") is not False:
            sa = runtime.root / "serviceaccount"
            sa.mkdir(parents=True, exist_ok=True)
            (sa / "token").write_text(self.issue_token(spec.get("serviceAccountName", "default")))
            (sa / "namespace").write_text(runtime.namespace)
            (sa / "ca.crt").write_text("")
            for item in (sa, *sa.iterdir()):
                os.chmod(item, 0o755 if item.is_dir() else 0o644)

    def _release_volumes(self, runtime: _PodRuntime) -> None:
        for path in runtime.mounts:
            _unmount(path)
        runtime.mounts.clear()
        shutil.rmtree(runtime.root, ignore_errors=True)

    # --- logs -----------------------------------------------------------------------------------

    def container_id(self, pod: Obj, container: str) -> str | None:
        runtime = self.pods.get(pod["metadata"]["uid"])
        return runtime.containers.get(container) if runtime is not None else None

    def log_chunks(
        self, cid: str, *, tail: int | None, timestamps: bool, since: int | None, follow: bool = False
    ) -> Iterator[bytes]:
        """The container's stdout and stderr as the engine kept them (blocking: run it in a thread);
        with ``follow``, until the container exits."""
        kwargs: dict[str, Any] = {
            "stdout": True,
            "stderr": True,
            "stream": True,
            "follow": follow,
            "timestamps": timestamps,
        }
        if tail is not None:
            kwargs["tail"] = tail
        if since is not None:
            kwargs["since"] = datetime.datetime.now() - datetime.timedelta(seconds=since)
        yield from self.client.api.logs(cid, **kwargs)


def _user(security: dict[str, Any], image: dict[str, Any]) -> str:
    uid, gid = security.get("runAsUser"), security.get("runAsGroup")
    image_user = str((image.get("Config") or {}).get("User") or "")
    if security.get("runAsNonRoot"):
        if uid is None:
            name = image_user.split(":")[0] or "0"  # no USER in the image: root
            if not name.isdigit():
                raise _Refused(
                    "CreateContainerConfigError",
                    f"container has runAsNonRoot and image has non-numeric user ({name or 'root'}), "
                    "cannot verify user is non-root",
                )
            if int(name) == 0:
                raise _Refused("CreateContainerConfigError", "container has runAsNonRoot and image will run as root")
        elif int(uid) == 0:
            raise _Refused("CreateContainerConfigError", "container's runAsUser breaks non-root policy")
    if uid is None and gid is None:
        return image_user
    base = str(uid) if uid is not None else (image_user.split(":")[0] or "0")
    return f"{base}:{gid}" if gid is not None else base


def _missing(attrs: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What the created container lacks of what the kubelet asked for (read back from inspect)."""
    host, config = attrs.get("HostConfig") or {}, attrs.get("Config") or {}
    problems = []
    if expected["user"] and config.get("User") != expected["user"]:
        problems.append(f"user is {config.get('User')!r}, not {expected['user']!r}")
    if bool(host.get("ReadonlyRootfs")) != expected["read_only"]:
        problems.append("readOnlyRootFilesystem")
    options = [str(s).replace("=", ":") for s in host.get("SecurityOpt") or ()]
    if expected["no_new_privileges"] and not any(s.startswith("no-new-privileges") for s in options):
        problems.append("allowPrivilegeEscalation: false (no-new-privileges)")
    if "ALL" in expected["cap_drop"]:
        from bot.sandbox.docker_engine import DEFAULT_CAPS  # podman reports ALL expanded into these

        dropped = set(host.get("CapDrop") or ())
        if not ("ALL" in dropped or dropped >= DEFAULT_CAPS):
            problems.append("capabilities.drop: ALL")
    if expected["memory"] is not None and host.get("Memory") != expected["memory"]:
        problems.append(f"memory limit is {host.get('Memory')}, not {expected['memory']}")
    if expected["nano_cpus"] and host.get("NanoCpus") != expected["nano_cpus"]:
        problems.append(f"CPU limit is {host.get('NanoCpus')} nano-CPUs, not {expected['nano_cpus']}")
    if expected["network_none"] and host.get("NetworkMode") != "none":
        problems.append(f"network mode is {host.get('NetworkMode')!r}, not 'none'")
    if host.get("PidsLimit") != expected["pids"]:
        problems.append(f"pids limit is {host.get('PidsLimit')}, not {expected['pids']}")
    return problems


def _mount_tmpfs(path: Path, size: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"size={size},mode=0777".encode()
    if libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount a {size}-byte tmpfs for an emptyDir at {path}: {os.strerror(err)}")


def _unmount(path: Path) -> None:
    ctypes.CDLL(None, use_errno=True).umount2(str(path).encode(), _MNT_DETACH)


def _qos(spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec["containers"]]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) is not None
        and (r.get("requests") or {}).get(k, (r.get("limits") or {})[k]) == (r.get("limits") or {})[k]
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _conditions(
    *, scheduled: bool, initialized: bool, ready: bool, at: str, reason: str | None = None
) -> list[dict[str, Any]]:
    def condition(kind: str, ok: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": at,
        }
        if not ok and reason:
            entry["reason"] = reason
        elif not ok and kind in ("Ready", "ContainersReady"):
            entry["reason"] = "ContainersNotReady"
        elif not ok and kind == "Initialized":
            entry["reason"] = "ContainersNotInitialized"
        return entry

    return [
        condition("PodReadyToStartContainers", True),
        condition("Initialized", initialized),
        condition("Ready", ready),
        condition("ContainersReady", ready),
        condition("PodScheduled", scheduled),
    ]


def _base(container: dict[str, Any], cid: str, image_id: str) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": image_id,
        "containerID": f"podman://{cid}",
        "restartCount": 0,
        "ready": False,
        "started": False,
        "lastState": {},
        "state": {},
    }


def _waiting(container: dict[str, Any], reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "restartCount": 0,
        "ready": False,
        "started": False,
        "lastState": {},
        "state": {"waiting": state},
    }


def bound_here(pod: Obj) -> bool:
    return (pod.get("spec") or {}).get("nodeName") == NODE_NAME


__all__ = ["LABEL", "Kubelet", "bound_here", "copy", "isolated"]
