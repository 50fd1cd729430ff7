"""Sandbox backend for Kubernetes: each run is a Job in the sandbox namespace (see bot.sandbox.kube_jobs).

The official ``kubernetes`` client, each call in a worker thread (``asyncio.to_thread``), rather than
kubernetes_asyncio: it is the client the design names and the one every cluster's docs and auth
plugins (exec credentials, in-cluster config) are written for, it matches how the Docker backend drives
its blocking SDK, and a run makes a handful of calls (create, a poll a second, one log read, delete),
so a thread per call costs nothing that matters; a run's pod is watched (bot.sandbox.kube_watch) rather
than polled.

A run: push the inputs layer (bot.sandbox.kube_inputs) -> make sure the deny-all NetworkPolicy is in
place (read back) -> create the Job -> read the Job and then its pod back while the pod is held by the
bot's scheduling gate (kube_jobs.GATE: unbound, nothing started), refuse (delete, never release) a pod
that lost a control, else remove the gate from exactly the version checked -> wait for the sandbox
container to end, bounded by the spec's timeout from the moment it started -> read its log (capped),
check the frames, put result.json and the kept files in a private directory -> the same
``read_result``/``keep_files`` the Docker backend uses -> delete the Job (Foreground: its pod goes
first), shielded, so a cancelled (superseded) review removes it too.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from bot.metrics import SANDBOX_INPUTS_DELETE_FAILURES as INPUTS_DELETE_FAILURES
from bot.sandbox import kube_jobs as kj
from bot.sandbox.docker_engine import REMOVED, OutputLimits, keep_files, read_result
from bot.sandbox.kube_inputs import InputsError, write_layer
from bot.sandbox.kube_watch import RunPods
from bot.sandbox.runner import OUTPUT_DIR, RESULT_FILE, MiB, SandboxResult, SandboxSpec

log = logging.getLogger(__name__)
_WAKE_S = 1.0


class ImagePusher(Protocol):
    """What the runner needs of the registry (bot.artifacts.registry.OciRegistry has it)."""

    async def push_image_layer(
        self, base_image: str, layer: Path, diff_id: str, *, repository: str, tag: str, labels: Mapping[str, str]
    ) -> str: ...

    async def delete_manifest(self, reference: str) -> bool: ...

    async def tags(self, repository: str) -> list[str]: ...

    async def resolve(self, reference: str) -> str | None: ...

    async def image_digest(self, image: str) -> str | None: ...


@dataclass(frozen=True)
class KubeClients:
    """The typed APIs of one ``kubernetes.client.ApiClient`` (in-cluster or from a kubeconfig)."""

    api: Any  # kubernetes.client.ApiClient
    core: Any
    batch: Any
    networking: Any
    apps: Any

    def close(self) -> None:
        self.api.close()


def connect(kubeconfig: Path | None = None, *, context: str | None = None) -> KubeClients:
    """Clients from a kubeconfig file, or the pod's in-cluster service account when ``kubeconfig`` is None."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig is None:
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=configuration)
    configuration.connection_pool_maxsize = 32  # concurrent runs each poll from their own thread
    api = client.ApiClient(configuration)
    return KubeClients(
        api, client.CoreV1Api(api), client.BatchV1Api(api), client.NetworkingV1Api(api), client.AppsV1Api(api)
    )


def _plain(api: Any, obj: Any) -> dict[str, Any]:
    """An API object as the JSON the server sent (camelCase keys), for the pure checks."""
    plain: dict[str, Any] = api.sanitize_for_serialization(obj)
    return plain


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status", None)


class KubernetesJobRunner:
    """``SandboxRunner`` over Kubernetes Jobs.

    ``inputs_base``: the trusted image the init container runs (the product image, on the registry
    ``registry`` pushes to). ``owner`` labels every Job so that this instance can find its orphans.
    """

    def __init__(
        self,
        clients: KubeClients,
        registry: ImagePusher,
        *,
        inputs_base: str,
        owner: str,
        settings: kj.KubeSandboxSettings | None = None,
        limits: OutputLimits | None = None,
        work_root: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.registry = registry
        self.inputs_base = inputs_base
        self.owner = kj.valid_owner(owner)
        self.limits = limits or OutputLimits()
        self.settings = settings or kj.KubeSandboxSettings(
            out_bytes=self.limits.out_bytes or 512 * MiB,
            keep_bytes=self.limits.keep_bytes,
            keep_files=self.limits.keep_files,
        )
        self._work_root = work_root
        self._clock = clock
        self._policy_checked = False
        self._policy_lock = asyncio.Lock()
        self.inputs_repository = kj.inputs_repository(inputs_base)
        self._deleting: set[asyncio.Task[None]] = set()  # input deletions outliving a cancelled run
        self._watches: dict[str, RunPods] = {}  # run id -> its pods, watched (bot.sandbox.kube_watch)

    # ---- the Protocol ----

    async def run(self, spec: SandboxSpec) -> SandboxResult:
        began = self._clock()
        run_id = secrets.token_hex(6)
        work = Path(tempfile.mkdtemp(prefix="modelship-kube-", dir=self._work_root))
        name: str | None = None
        # Its own task, so that a run cancelled mid-push still learns the digest and deletes what was pushed.
        push = asyncio.ensure_future(self._push_inputs(spec, work, run_id))
        try:
            try:
                image, inputs_bytes = await asyncio.shield(push)
            except (InputsError, OSError) as exc:
                return SandboxResult.failed(f"the review inputs could not be packed: {exc}", self._clock() - began)
            except Exception as exc:  # the registry's errors name the registry and what it said
                return SandboxResult.failed(
                    f"the review inputs could not be pushed to the registry: {exc}", self._clock() - began
                )
            if problems := await self.network_policy_problems():
                return SandboxResult.failed(
                    "refused to start the sandbox: " + "; ".join(problems), self._clock() - began
                )
            manifest = kj.job_manifest(
                spec,
                run_id=run_id,
                owner=self.owner,
                inputs_image=image,
                inputs_bytes=inputs_bytes,
                settings=self.settings,
            )
            name = manifest["metadata"]["name"]
            job = await asyncio.to_thread(self.clients.batch.create_namespaced_job, self.settings.namespace, manifest)
            stored = _plain(self.clients.api, job)
            template = stored["spec"]["template"]
            wanted = manifest["spec"]["template"]
            if problems := kj.missing_controls(template["spec"], template["metadata"].get("labels") or {}, wanted):
                return SandboxResult.failed(
                    "refused to start the sandbox: " + "; ".join(problems), self._clock() - began
                )
            return await self._supervise(spec, name, run_id, wanted, began, work)
        except Exception as exc:
            if _status(exc) is None and not type(exc).__module__.startswith(("kubernetes", "urllib3")):
                raise
            return SandboxResult.failed(_api_error(exc, self.settings.namespace), self._clock() - began)
        finally:
            if (watched := self._watches.pop(run_id, None)) is not None:
                watched.close()
            # Shielded so a cancelled (superseded) review still deletes its Job and pod, then its inputs.
            await asyncio.shield(self._end(name, work, push))

    async def image_identity(self, image: str) -> str | None:
        """The exact images a run would use (the sandbox's and the init container's base), by registry
        digest; None when either cannot be resolved (bot.sandbox.reuse keys reused results by it)."""
        digests = [await self.registry.image_digest(ref) for ref in (image, self.inputs_base)]
        if any(d is None for d in digests):
            return None
        return f"kubernetes {image}@{digests[0]} inputs {self.inputs_base}@{digests[1]}"

    # ---- steps ----

    async def _push_inputs(self, spec: SandboxSpec, work: Path, run_id: str) -> tuple[str, int]:
        layer = work / "inputs.tar.gz"

        def pack() -> tuple[str, int]:
            with layer.open("wb") as out:
                return write_layer(spec.inputs, out)

        diff_id, size = await asyncio.to_thread(pack)
        image = await self.registry.push_image_layer(
            self.inputs_base,
            layer,
            diff_id,
            repository=self.inputs_repository,
            tag=kj.inputs_tag(self.owner, run_id),
            labels={kj.INPUTS_LABEL: run_id},  # a manifest of its own even when two runs' inputs are equal
        )
        layer.unlink()
        # The emptyDir holds the files, a bit less than the tar; headroom for the filesystem's blocks.
        return image, size + 16 * MiB

    async def network_policy_problems(self) -> list[str]:
        """Create the deny-all NetworkPolicy when missing and read it back (once per runner)."""
        async with self._policy_lock:
            if self._policy_checked:
                return []
            namespace = self.settings.namespace
            try:
                found = await asyncio.to_thread(
                    self.clients.networking.read_namespaced_network_policy, kj.NETWORK_POLICY, namespace
                )
            except Exception as exc:
                if _status(exc) != 404:
                    raise
                try:
                    found = await asyncio.to_thread(
                        self.clients.networking.create_namespaced_network_policy,
                        namespace,
                        kj.network_policy(namespace),
                    )
                except Exception as created:
                    if _status(created) == 403:
                        return [
                            f"NetworkPolicy {kj.NETWORK_POLICY} is missing from namespace {namespace} and the bot may "
                            "not create it: install it with the chart (sandbox.networkPolicy) or grant create"
                        ]
                    raise
            problems = kj.policy_problems(_plain(self.clients.api, found))
            self._policy_checked = not problems
            return problems

    async def _supervise(
        self, spec: SandboxSpec, name: str, run_id: str, wanted: Mapping[str, Any], began: float, work: Path
    ) -> SandboxResult:
        selector = f"{kj.RUN_LABEL}={run_id}"
        verified = False
        started: float | None = None
        timed_out = False
        pod: dict[str, Any] = {}
        pod_name = ""
        wait = 0.0
        while True:
            items = await self._run_pods(run_id, selector, wait)
            if pod_name and pod_removed(items, pod_name):
                where = f"pod {self.settings.namespace}/{pod_name}"
                return SandboxResult.failed(REMOVED.format(what="pod", name=where), self._clock() - began)
            if items:
                pod = items[0]
                pod_name = pod["metadata"]["name"]
                if not verified:
                    # The pod is still held by its scheduling gate: nothing of it has started. Check it,
                    # then release exactly the version checked; a pod that lost a control is never released.
                    labels = pod["metadata"].get("labels") or {}
                    if problems := kj.missing_controls(pod["spec"], labels, wanted):
                        return SandboxResult.failed(
                            "refused to start the sandbox: " + "; ".join(problems), self._clock() - began
                        )
                    # None: it changed since it was read; the next poll reads it back and checks it again.
                    released = await asyncio.to_thread(self._ungate, pod)
                    if released is not None:
                        # What the API server stored for the release (admission webhooks see updates too).
                        labels = released["metadata"].get("labels") or {}
                        if problems := kj.missing_controls(released["spec"], labels, wanted, gated=False):
                            return SandboxResult.failed(
                                "refused to start the sandbox: " + "; ".join(problems), self._clock() - began
                            )
                        verified, pod = True, released
                if problem := pull_problem(pod, spec.image):
                    return SandboxResult.failed(problem, self._clock() - began)
                if problem := kj.start_problem(pod):
                    if "init container" in problem:  # the copy's own words, for the operator
                        tail = await asyncio.to_thread(self._init_log, pod_name)
                        problem += f" ({tail})" if tail else ""
                    return SandboxResult.failed(f"the sandbox did not start: {problem}", self._clock() - began)
                if started is None and kj.sandbox_started(pod):
                    started = self._clock()
                phase = (pod.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    break
            now = self._clock()
            if started is not None and now - started > spec.timeout_s:
                timed_out = True
                break
            if started is None and now - began > self.settings.start_grace_s:
                return SandboxResult.failed(
                    f"the sandbox pod did not start within {self.settings.start_grace_s} s "
                    f"(pod {pod_name or 'not created'}: {not_started(pod)})",
                    now - began,
                )
            wait = _WAKE_S  # a change wakes the loop at once; this bounds how late a deadline is noticed
        duration = self._clock() - began
        start_s = (started or self._clock()) - began
        if timed_out:
            await asyncio.to_thread(self._delete, name)
            killed = f"timed out after {spec.timeout_s:g} s (sandbox.timeout); the container was killed"
            return replace(SandboxResult.failed(killed, duration), timed_out=True, container_start_s=start_s)
        _, exit_code, reason = kj.pod_outcome(pod)
        raw = await asyncio.to_thread(self._log, pod_name, kj.frame_budget(spec, self.settings))
        try:
            frames = kj.unframe(raw)
            status = kj.frame_status(frames)
        except kj.FrameError as exc:
            frames, status = {}, {}
            frame_error: str | None = f"the sandbox's output could not be read back: {exc}"
        else:
            frame_error = None
        stdout, stderr = frames.get("stdout", b""), frames.get("stderr", b"")
        flooded = status.get("flooded")
        oom = reason == "OOMKilled" or exit_code == 137
        result, result_error = None, None
        if flooded:
            error: str | None = f"{flooded} exceeded the {_size(spec.output_cap_bytes)} output cap; the run was stopped"
        elif oom:
            error = f"ran out of memory: killed at the {_size(spec.memory_bytes)} limit (sandbox.memory)"
        elif frame_error:
            error = frame_error
        elif exit_code != 0:
            detail = _last_line(stderr)
            error = f"the command exited with code {exit_code}" + (f": {detail}" if detail else "")
        else:
            result, result_error = await asyncio.to_thread(self._materialize, frames, spec, work)
            error = result_error
        return SandboxResult(
            exit_code=exit_code,
            timed_out=False,
            oom_killed=oom,
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=flooded == "stdout",
            stderr_truncated=flooded == "stderr",
            result=result,
            error=error,
            duration_s=duration,
            container_start_s=start_s,
        )

    def _materialize(
        self, frames: Mapping[str, bytes], spec: SandboxSpec, work: Path
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Write the framed result and kept files to a private /out copy; read it as the Docker backend does."""
        out = work / "out"
        out.mkdir(mode=0o700)
        if "result" not in frames:
            refused = frames.get("result-refused", b"").decode("utf-8", "replace")[:300]
            return None, refused or f"the command wrote no {OUTPUT_DIR}/{RESULT_FILE}"
        (out / RESULT_FILE).write_bytes(frames["result"][: spec.result_cap_bytes + 1])
        result, error = read_result(out, spec.result_cap_bytes)
        if error is None and spec.keep and spec.keep_to is not None:
            keep_root = (out / spec.keep).resolve()
            for name, data in frames.items():
                if not name.startswith("keep/"):
                    continue
                rel = Path(name[len("keep/") :])
                target = (keep_root / rel).resolve()
                if rel.is_absolute() or keep_root not in target.parents:
                    continue  # a forged frame naming a path outside keep/
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            cap = min(spec.result_cap_bytes, self.limits.keep_bytes)
            keep_files(
                out / spec.keep,
                spec.keep_to,
                cap,
                max_files=self.limits.keep_files,
                max_total=self.limits.keep_bytes,
            )
        return result, error

    async def _run_pods(self, run_id: str, selector: str, wait: float) -> list[dict[str, Any]]:
        """The run's pods after their next change (or ``wait`` s): watched, not polled (bot.sandbox.kube_watch)."""
        watched = self._watches.get(run_id)
        if watched is None:
            watched = self._watches[run_id] = RunPods(
                self.clients.core, self.clients.api, self.settings.namespace, selector
            )
            wait = _WAKE_S  # the first list
        return await watched.pods(wait)

    def _ungate(self, pod: Mapping[str, Any]) -> dict[str, Any] | None:
        """Remove the bot's scheduling gate from the pod version read back; None if it changed meanwhile."""
        try:
            released = self.clients.core.patch_namespaced_pod(
                pod["metadata"]["name"],
                self.settings.namespace,
                kj.ungate_patch(pod),
                _content_type="application/json-patch+json",
            )
        except Exception as exc:
            if _status(exc) in (409, 422):  # the resourceVersion test failed: someone changed the pod
                log.info("sandbox: pod %s changed before its release; reading it back again", pod["metadata"]["name"])
                return None
            raise
        return _plain(self.clients.api, released)

    def _init_log(self, pod: str) -> str:
        """The last line the trusted init container wrote (it never sees untrusted code)."""
        try:
            text: str = self.clients.core.read_namespaced_pod_log(
                pod, self.settings.namespace, container=kj.INIT, tail_lines=5, limit_bytes=4096
            )
        except Exception:  # the reason alone still says what failed
            return ""
        return _last_line(text.encode())

    def _log(self, pod: str, cap: int) -> bytes:
        response = self.clients.core.read_namespaced_pod_log(
            pod, self.settings.namespace, container=kj.SANDBOX, limit_bytes=cap, _preload_content=False
        )
        try:
            data: bytes = response.read(cap + 1)
        finally:
            response.release_conn()
        return data[:cap]

    def _delete(self, name: str) -> None:
        from kubernetes import client

        try:
            self.clients.batch.delete_namespaced_job(
                name,
                self.settings.namespace,
                body=client.V1DeleteOptions(propagation_policy="Foreground", grace_period_seconds=0),
            )
        except Exception as exc:
            if _status(exc) != 404:
                raise

    async def _end(self, name: str | None, work: Path, push: asyncio.Future[tuple[str, int]]) -> None:
        """Delete the run's Job, its work directory and its inputs manifest (whatever ended the run)."""
        await asyncio.to_thread(self._cleanup, name, work)
        if push.done():
            await self._delete_inputs(push)
            return

        def pushed(done: asyncio.Future[tuple[str, int]]) -> None:  # cancelled mid-push: delete once it lands
            task = asyncio.ensure_future(self._delete_inputs(done))
            self._deleting.add(task)
            task.add_done_callback(self._deleting.discard)

        push.add_done_callback(pushed)

    async def _delete_inputs(self, push: asyncio.Future[tuple[str, int]]) -> None:
        """Delete the run's inputs manifest from the registry; a failure is logged and counted, never fatal."""
        if push.cancelled() or push.exception() is not None:
            return  # nothing was pushed (or what was is unknown: the start-up sweep finds it by its tag)
        image = push.result()[0]
        try:
            await self.registry.delete_manifest(image)
        except Exception as exc:
            INPUTS_DELETE_FAILURES.inc()
            log.warning("sandbox: could not delete the review inputs %s from the registry: %s", image, exc)

    def _cleanup(self, name: str | None, work: Path) -> None:
        if name is not None:
            try:
                self._delete(name)
            except Exception as exc:  # never mask the run's own outcome; the orphan sweep gets it later
                log.error("sandbox: could not delete Job %s: %s", name, _api_error(exc, self.settings.namespace))
        shutil.rmtree(work, ignore_errors=True)

    # ---- orphans ----

    async def delete_orphans(self) -> list[str]:
        """Delete every sandbox Job this instance labelled and every inputs manifest it tagged (a restart's
        leftovers); the Jobs' names."""
        selector = kj.label_selector(kj.owned_by(self.owner))

        def sweep() -> list[str]:
            jobs = self.clients.batch.list_namespaced_job(self.settings.namespace, label_selector=selector)
            names = [j.metadata.name for j in jobs.items]
            for name in names:
                self._delete(name)
            return names

        names = await asyncio.to_thread(sweep)
        if names:
            log.warning("sandbox: deleted %d orphaned Job(s) of %s: %s", len(names), self.owner, ", ".join(names))
        await self.delete_orphaned_inputs()
        return names

    async def delete_orphaned_inputs(self) -> list[str]:
        """Delete the inputs manifests this instance tagged in the inputs repository (a crash's leftovers).

        Only tags ``kube_jobs.inputs_tag`` makes for this owner are touched; nothing else in the
        repository, and nothing outside it. A failure is logged and counted: the next start tries again.
        """
        deleted: list[str] = []
        host = self.inputs_base.partition("/")[0]
        try:
            tags = [t for t in await self.registry.tags(self.inputs_repository) if kj.owned_inputs_tag(t, self.owner)]
            for tag in tags:
                digest = await self.registry.resolve(f"{host}/{self.inputs_repository}:{tag}")
                if digest is not None and await self.registry.delete_manifest(
                    f"{host}/{self.inputs_repository}@{digest}"
                ):
                    deleted.append(tag)
        except Exception as exc:
            INPUTS_DELETE_FAILURES.inc()
            log.warning("sandbox: could not sweep orphaned review inputs of %s: %s", self.owner, exc)
        if deleted:
            log.warning(
                "sandbox: deleted %d orphaned review input manifest(s) of %s: %s",
                len(deleted),
                self.owner,
                ", ".join(deleted),
            )
        return deleted


_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def pull_problem(pod: Mapping[str, Any], image: str) -> str | None:
    """An image of the run's pod that will not pull, said with the setting that names it: the runner image
    (MODELSHIP_SANDBOX_IMAGE) or the inputs image the bot pushed (to MODELSHIP_REGISTRY)."""
    status = pod.get("status") or {}
    for c in (*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())):
        waiting = (c.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason not in _PULL_REASONS:
            continue
        said = f"{reason}: {(waiting.get('message') or '').strip()[:300]}"
        if c.get("name") == kj.SANDBOX:
            return (
                f"sandbox image {image!r} could not be pulled by the cluster ({said}); set MODELSHIP_SANDBOX_IMAGE "
                "to an image the cluster's nodes can pull"
            )
        return (
            f"the review inputs image could not be pulled by the cluster ({said}); the cluster's nodes must be able "
            "to pull from MODELSHIP_REGISTRY"
        )
    return None


def not_started(pod: Mapping[str, Any]) -> str:
    """Why a pod has not started yet, as the scheduler and the kubelet say it: a Job that cannot be scheduled
    (too little CPU or memory on every node, a taint, a quota) waits Pending with the scheduler's message."""
    status = pod.get("status") or {}
    said = [str(status.get("phase") or "no status")]
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            said.append(
                f"not scheduled ({condition.get('reason') or 'Unschedulable'}): {condition.get('message') or ''}"
            )
    for c in (*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())):
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            said.append(f"container {c.get('name')} waiting: {waiting['reason']}")
    return "; ".join(s.strip() for s in said)[:500]


def pod_removed(pods: list[dict[str, Any]], seen: str) -> bool:
    """Whether the run's pod ``seen`` was deleted under it (evicted, drained, deleted by hand): gone, being
    deleted, or replaced by the Job with another pod. The bot deletes its pods only after it stops watching."""
    return not pods or any(p["metadata"]["name"] != seen or p["metadata"].get("deletionTimestamp") for p in pods)


def _api_error(exc: BaseException, namespace: str) -> str:
    status = _status(exc)
    if status is None:
        return f"Kubernetes API unreachable ({type(exc).__name__}); check MODELSHIP_KUBERNETES_KUBECONFIG"
    reason = getattr(exc, "reason", "")
    if status == 403:
        return (
            f"the Kubernetes API refused (403 {reason}) in namespace {namespace}: the bot's Role needs jobs "
            "create/get/list/watch/delete, pods get/list/watch/patch and pods/log get (charts/modelship installs it)"
        )
    if status == 404:
        return f"namespace {namespace} not found (MODELSHIP_KUBERNETES_NAMESPACE)"
    body = str(getattr(exc, "body", "") or "")[:300]
    return f"the Kubernetes API answered {status} {reason}: {body}"


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"


def _last_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:300] if lines else ""
