"""The Kubernetes sandbox's objects and checks, as pure functions: Job, NetworkPolicy, read-back, frames.

One sandbox run is one Job (``backoffLimit: 0``) whose pod has two containers:

- ``inputs`` (init, trusted): the product image with the review inputs as one extra layer, pulled by
  the kubelet by digest (bot.sandbox.kube_inputs); it copies them into the ``inputs`` emptyDir. The
  pod itself needs no network and no credentials for that: the node pulls images, not the pod.
- ``sandbox`` (untrusted): the runner image, ``python -m pipelines.framed … -- python -m
  pipelines.review …``, with the inputs mounted read-only, memory-backed size-limited emptyDirs for
  /scratch, /tmp and /out, and its results written to its log as frames (pipelines.framed).

Both run as uid 65534 with a read-only root, every capability dropped, no privilege escalation and
seccomp RuntimeDefault; the pod mounts no service-account token and gets no service links; a
NetworkPolicy selecting every sandbox pod denies all ingress and egress. Whatever the API server
stored (an admission webhook may rewrite a pod) is read back and compared with ``missing_controls``
while the pod is still held by the scheduling gate ``GATE`` (spec.schedulingGates, GA in Kubernetes
1.30: a gated pod is not scheduled, so no container of it starts); only a pod with every control is
released, one that lost a control is deleted with its Job without ever having run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.sandbox.runner import OUTPUT_DIR, SCRATCH_DIR, MiB, SandboxSpec

NOBODY = 65534
MANAGED_BY = ("app.kubernetes.io/managed-by", "modelship")
SANDBOX_LABEL = "modelship.dev/sandbox"  # value "run": what the NetworkPolicy selects
RUN_LABEL = "modelship.dev/run"
OWNER_LABEL = "modelship.dev/owner"  # the bot instance that created the Job (orphan cleanup)
NETWORK_POLICY = "modelship-sandbox-deny-all"
# The scheduling gate every sandbox pod is created with: it stays Pending and unbound (no node, nothing
# started) until the bot has read it back and removed the gate (kube_runner), so a pod an admission
# webhook weakened never runs.
GATE = "modelship.dev/read-back"
INPUTS_DIR = "/inputs"
STAGED_DIR = "/modelship-review"  # where the inputs layer puts the files in the init container's image
INIT, SANDBOX = "inputs", "sandbox"
_FRAME = re.compile(r"^MODELSHIP-FRAME (\d+) ([0-9a-f]{64}) (.+)$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class KubeSandboxSettings:
    """The operator's Kubernetes sandbox settings (MODELSHIP_KUBERNETES_*), never a repository's."""

    namespace: str = "modelship-sandbox"
    runtime_class: str | None = None  # e.g. gVisor's "gvisor"
    ttl_after_finished_s: int = 300
    start_grace_s: int = 300  # pull + inputs copy, on top of the run's own timeout (activeDeadlineSeconds)
    out_bytes: int = 512 * MiB
    keep_bytes: int = 1024 * MiB
    keep_files: int = 32
    init_cpu: str = "500m"
    init_memory_bytes: int = 256 * MiB


def job_name(run_id: str) -> str:
    name = f"modelship-sbx-{run_id}"
    if len(name) > 52 or not _NAME.match(name):  # 63 minus the job controller's pod-name suffix
        raise ValueError(f"run id {run_id!r} does not make a valid Job name")
    return name


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NOBODY,
        "runAsGroup": NOBODY,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def framed_argv(spec: SandboxSpec, settings: KubeSandboxSettings) -> list[str]:
    """The untrusted container's command: the spec's, under the frame-writing supervisor."""
    argv = [
        "python",
        "-m",
        "pipelines.framed",
        "--out",
        OUTPUT_DIR,
        "--output-cap",
        str(spec.output_cap_bytes),
        "--result-cap",
        str(spec.result_cap_bytes),
    ]
    if spec.keep:
        argv += [
            "--keep",
            spec.keep,
            "--keep-files",
            str(settings.keep_files),
            "--keep-bytes",
            str(settings.keep_bytes),
        ]
    return [*argv, "--", *spec.argv]


def frame_budget(spec: SandboxSpec, settings: KubeSandboxSettings) -> int:
    """The most log bytes an honest run writes: two streams, the result and the kept files, base64."""
    payload = 2 * spec.output_cap_bytes + spec.result_cap_bytes + (settings.keep_bytes if spec.keep else 0)
    return math.ceil(payload * 4 / 3 * 77 / 76) + 64 * 1024 + 256 * (settings.keep_files + 8)


def job_manifest(
    spec: SandboxSpec,
    *,
    run_id: str,
    owner: str,
    inputs_image: str,
    inputs_bytes: int,
    settings: KubeSandboxSettings,
) -> dict[str, Any]:
    """The hardened Job for one spec (pure). ``inputs_image`` is pinned by digest."""
    if "@sha256:" not in inputs_image:
        raise ValueError(f"the inputs image {inputs_image!r} must be pinned by digest")
    labels = {MANAGED_BY[0]: MANAGED_BY[1], SANDBOX_LABEL: "run", RUN_LABEL: run_id, OWNER_LABEL: owner}
    scratch = str(spec.scratch_bytes)
    memory_volume = {"medium": "Memory"}  # a tmpfs, charged to the pod's memory like the Docker backend's
    volumes = [
        {"name": "inputs", "emptyDir": {"sizeLimit": str(inputs_bytes)}},
        {"name": "scratch", "emptyDir": {**memory_volume, "sizeLimit": scratch}},
        {"name": "tmp", "emptyDir": {**memory_volume, "sizeLimit": scratch}},
        {"name": "out", "emptyDir": {**memory_volume, "sizeLimit": str(settings.out_bytes)}},
    ]
    sandbox: dict[str, Any] = {
        "name": SANDBOX,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "command": framed_argv(spec, settings),
        "env": [{"name": k, "value": v} for k, v in sorted(spec.env.items())],
        "securityContext": _security_context(),
        "resources": {
            "limits": _limits(spec.cpus, spec.memory_bytes, spec.scratch_bytes),
            "requests": _limits(spec.cpus, spec.memory_bytes, spec.scratch_bytes),
        },
        "volumeMounts": [
            {"name": "inputs", "mountPath": INPUTS_DIR, "readOnly": True},
            {"name": "scratch", "mountPath": SCRATCH_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "out", "mountPath": OUTPUT_DIR},
        ],
    }
    if spec.workdir:
        sandbox["workingDir"] = spec.workdir
    init_limits = _limits(0, settings.init_memory_bytes, 16 * MiB) | {"cpu": settings.init_cpu}
    init = {
        "name": INIT,
        "image": inputs_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "bot.sandbox.kube_inputs", "--from", STAGED_DIR, "--to", INPUTS_DIR],
        "securityContext": _security_context(),
        "resources": {"limits": init_limits, "requests": init_limits},
        "volumeMounts": [{"name": "inputs", "mountPath": INPUTS_DIR}],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "shareProcessNamespace": False,
        "terminationGracePeriodSeconds": 1,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NOBODY,
            "runAsGroup": NOBODY,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": [init],
        "containers": [sandbox],
        "volumes": volumes,
        "schedulingGates": [{"name": GATE}],  # the Job controller copies it to the pod
    }
    if settings.runtime_class:
        pod_spec["runtimeClassName"] = settings.runtime_class
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(run_id), "namespace": settings.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "activeDeadlineSeconds": math.ceil(spec.timeout_s) + settings.start_grace_s,
            "ttlSecondsAfterFinished": settings.ttl_after_finished_s,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


def _limits(cpus: float, memory: int, ephemeral: int) -> dict[str, str]:
    limits = {"memory": str(memory), "ephemeral-storage": str(ephemeral)}
    if cpus:
        limits["cpu"] = f"{round(cpus * 1000)}m"
    return limits


def network_policy(namespace: str) -> dict[str, Any]:
    """Deny all ingress and egress for every sandbox pod of ``namespace`` (pure)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NETWORK_POLICY, "namespace": namespace, "labels": {MANAGED_BY[0]: MANAGED_BY[1]}},
        "spec": {"podSelector": {"matchLabels": {SANDBOX_LABEL: "run"}}, "policyTypes": ["Ingress", "Egress"]},
    }


def policy_problems(policy: Mapping[str, Any] | None) -> list[str]:
    """Why a NetworkPolicy read back from the cluster does not deny everything for sandbox pods."""
    if policy is None:
        return [f"NetworkPolicy {NETWORK_POLICY} is missing"]
    spec = policy.get("spec") or {}
    problems = []
    if (spec.get("podSelector") or {}).get("matchLabels") != {SANDBOX_LABEL: "run"}:
        problems.append(f"NetworkPolicy {NETWORK_POLICY} does not select {SANDBOX_LABEL}=run pods")
    if set(spec.get("policyTypes") or ()) != {"Ingress", "Egress"}:
        problems.append(f"NetworkPolicy {NETWORK_POLICY} does not cover both Ingress and Egress")
    if spec.get("ingress") or spec.get("egress"):
        problems.append(f"NetworkPolicy {NETWORK_POLICY} allows traffic (ingress/egress rules)")
    return problems


def _quantity(value: Any) -> Decimal | None:
    if value is None:
        return None
    text = str(value)
    suffixes = {"m": Decimal("0.001"), "k": Decimal(1000), "M": Decimal(1000**2), "G": Decimal(1000**3)}
    suffixes |= {"Ki": Decimal(1024), "Mi": Decimal(1024**2), "Gi": Decimal(1024**3), "Ti": Decimal(1024**4)}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            try:
                return Decimal(text[: -len(suffix)]) * suffixes[suffix]
            except InvalidOperation:
                return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def missing_controls(
    pod_spec: Mapping[str, Any], labels: Mapping[str, str], wanted: Mapping[str, Any], *, gated: bool = True
) -> list[str]:
    """What a pod (or Job template) read back from the API lacks against the manifest we sent (pure).

    ``pod_spec``/``labels``: what the API server stored; ``wanted``: ``job_manifest``'s pod template.
    ``gated``: the pod must still be held by ``GATE`` (False once the bot itself removed it).
    Empty means every control is in place.
    """
    want_spec = wanted["spec"]
    problems: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    for key, value in wanted["metadata"]["labels"].items():
        need(labels.get(key) == value, f"label {key}={value} is missing (the NetworkPolicy selects on it)")
    need(pod_spec.get("automountServiceAccountToken") is False, "automountServiceAccountToken is not false")
    need(pod_spec.get("enableServiceLinks") is False, "enableServiceLinks is not false")
    for host in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        need(not pod_spec.get(host), f"{host} is set")
    need(
        pod_spec.get("runtimeClassName") == want_spec.get("runtimeClassName"),
        f"runtimeClassName is {pod_spec.get('runtimeClassName')!r}, not {want_spec.get('runtimeClassName')!r}",
    )
    need(pod_spec.get("restartPolicy") == "Never", "restartPolicy is not Never")
    if gated:
        need(
            GATE in gate_names(pod_spec),
            f"scheduling gate {GATE} is missing (the pod could start before the bot read it back)",
        )
    pod_context = pod_spec.get("securityContext") or {}
    want_volumes = {v["name"]: v for v in want_spec["volumes"]}
    volumes = {v.get("name"): v for v in pod_spec.get("volumes") or ()}
    need(set(volumes) == set(want_volumes), f"volumes are {sorted(map(str, volumes))}, not {sorted(want_volumes)}")
    for name, volume in want_volumes.items():
        got = (volumes.get(name) or {}).get("emptyDir")
        want = volume["emptyDir"]
        need(
            got is not None
            and got.get("medium", "") == want.get("medium", "")
            and _quantity(got.get("sizeLimit")) == _quantity(want["sizeLimit"]),
            f"volume {name} is not an emptyDir of {want['sizeLimit']} bytes"
            + (" in memory" if want.get("medium") else ""),
        )
    for kind in ("initContainers", "containers"):
        want_list = want_spec[kind]
        got_list = pod_spec.get(kind) or []
        need(
            [c.get("name") for c in got_list] == [c["name"] for c in want_list],
            f"{kind} are {[c.get('name') for c in got_list]}, not {[c['name'] for c in want_list]}",
        )
        for want_c, got_c in zip(want_list, got_list, strict=False):
            problems += [f"container {want_c['name']}: {p}" for p in _container_problems(got_c, want_c, pod_context)]
    return problems


def _container_problems(got: Mapping[str, Any], want: Mapping[str, Any], pod: Mapping[str, Any]) -> list[str]:
    ctx = {**pod, **(got.get("securityContext") or {})}  # the container's own settings win, as in the kubelet
    problems: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    need(got.get("image") == want["image"], f"image is {got.get('image')!r}, not {want['image']!r}")
    need(list(got.get("command") or ()) == want["command"] and not got.get("args"), "command was changed")
    need(ctx.get("runAsNonRoot") is True, "runAsNonRoot is not true")
    need(ctx.get("runAsUser") == NOBODY, f"runAsUser is {ctx.get('runAsUser')!r}, not {NOBODY}")
    need(ctx.get("runAsGroup") == NOBODY, f"runAsGroup is {ctx.get('runAsGroup')!r}, not {NOBODY}")
    need(ctx.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem is not true")
    need(ctx.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    need(not ctx.get("privileged"), "the container is privileged")
    caps = ctx.get("capabilities") or {}
    need("ALL" in (caps.get("drop") or ()) and not caps.get("add"), "capabilities are not all dropped (drop ALL)")
    need((ctx.get("seccompProfile") or {}).get("type") == "RuntimeDefault", "seccompProfile is not RuntimeDefault")
    need(not got.get("envFrom"), "envFrom was added")
    env = [(e.get("name"), e.get("value"), e.get("valueFrom")) for e in got.get("env") or ()]
    need(env == [(e["name"], e["value"], None) for e in want.get("env", ())], "env was changed")
    limits = (got.get("resources") or {}).get("limits") or {}
    for resource, value in want["resources"]["limits"].items():
        need(
            _quantity(limits.get(resource)) == _quantity(value),
            f"{resource} limit is {limits.get(resource)!r}, not {value}",
        )
    mounts = sorted(
        (m.get("name"), m.get("mountPath"), bool(m.get("readOnly")), m.get("subPath") or "")
        for m in got.get("volumeMounts") or ()
    )
    wanted = sorted((m["name"], m["mountPath"], bool(m.get("readOnly")), "") for m in want["volumeMounts"])
    need(mounts == wanted, f"volume mounts are {mounts}, not {wanted}")
    return problems


def gate_names(pod_spec: Mapping[str, Any]) -> list[str]:
    return [str(g.get("name")) for g in pod_spec.get("schedulingGates") or ()]


def ungate_patch(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch removing ``GATE`` from exactly the pod version that was read back (pure).

    The ``test`` of the resourceVersion makes the API server refuse it (422) if the pod changed since
    it was checked; the caller then reads it back and checks it again.
    """
    index = gate_names(pod["spec"]).index(GATE)
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": pod["metadata"]["resourceVersion"]},
        {"op": "test", "path": f"/spec/schedulingGates/{index}", "value": {"name": GATE}},
        {"op": "remove", "path": f"/spec/schedulingGates/{index}"},
    ]


class FrameError(ValueError):
    """The sandbox's log is not the frames pipelines.framed writes (truncated, forged or garbled)."""


def unframe(log: bytes) -> dict[str, bytes]:
    """The frames of a sandbox's log, each checked against its size and sha256 (pure; log is untrusted)."""
    frames: dict[str, bytes] = {}
    lines = log.split(b"\n")
    i = 0
    while i < len(lines):
        header = lines[i].decode("utf-8", "replace")
        i += 1
        if not header:
            continue
        match = _FRAME.match(header)
        if not match:
            # Say how the stray text ends too: for a crash that is the exception, not "Traceback …".
            stray = [header, *[line.decode("utf-8", "replace") for line in lines[i:] if line.strip()][:200]]
            stray = stray[: next((n for n, text in enumerate(stray) if n and _FRAME.match(text)), len(stray))]
            ending = f"; it ends {stray[-1].strip()[:200]!r}" if len(stray) > 1 else ""
            raise FrameError(f"unexpected log line {header[:80]!r} (not a frame){ending}")
        size, digest, name = int(match[1]), match[2], match[3]
        chunks: list[bytes] = []
        while i < len(lines) and not lines[i].startswith(b"MODELSHIP-END "):
            chunks.append(lines[i])
            i += 1
        if i >= len(lines) or lines[i].decode("utf-8", "replace") != f"MODELSHIP-END {name}":
            raise FrameError(f"frame {name!r} is not closed")
        i += 1
        try:
            data = base64.b64decode(b"".join(chunks), validate=True)
        except (binascii.Error, ValueError):
            raise FrameError(f"frame {name!r} is not base64") from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            raise FrameError(f"frame {name!r} does not match its size and sha256")
        if name in frames:
            raise FrameError(f"frame {name!r} appears twice")
        frames[name] = data
    return frames


def frame_status(frames: Mapping[str, bytes]) -> dict[str, Any]:
    """The supervisor's status frame as a dict, checked for shape (untrusted)."""
    try:
        status = json.loads(frames["status"])
    except (KeyError, ValueError):
        raise FrameError("no readable status frame") from None
    if not isinstance(status, dict) or status.get("flooded") not in (None, "stdout", "stderr"):
        raise FrameError("the status frame is malformed")
    return status


def pod_outcome(pod: Mapping[str, Any]) -> tuple[str, int | None, str | None]:
    """(phase, exit code, reason) of the sandbox container, from the pod status the kubelet reports."""
    status = pod.get("status") or {}
    for c in status.get("containerStatuses") or ():
        if c.get("name") == SANDBOX:
            terminated = (c.get("state") or {}).get("terminated") or {}
            if terminated:
                return status.get("phase") or "", terminated.get("exitCode"), terminated.get("reason")
    return status.get("phase") or "", None, None


_STUCK = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError")


def start_problem(pod: Mapping[str, Any]) -> str | None:
    """Why a pod cannot start (an image that will not pull, an init container that failed), else None."""
    status = pod.get("status") or {}
    for kind in ("initContainerStatuses", "containerStatuses"):
        for c in status.get(kind) or ():
            state = c.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in _STUCK:
                return f"container {c.get('name')}: {waiting['reason']}: {(waiting.get('message') or '')[:300]}"
            terminated = state.get("terminated") or {}
            if kind == "initContainerStatuses" and terminated and terminated.get("exitCode") not in (0, None):
                detail = (terminated.get("message") or terminated.get("reason") or "").strip()[:300]
                return f"the inputs could not be staged (init container exited {terminated['exitCode']}): {detail}"
    if status.get("phase") == "Failed" and status.get("reason"):
        return f"the pod failed: {status['reason']}: {(status.get('message') or '')[:300]}"
    return None


def sandbox_started(pod: Mapping[str, Any]) -> bool:
    for c in (pod.get("status") or {}).get("containerStatuses") or ():
        if c.get("name") == SANDBOX and (
            (c.get("state") or {}).get("running") or (c.get("state") or {}).get("terminated")
        ):
            return True
    return False


INPUTS_REPOSITORY_SUFFIX = "review-inputs"
INPUTS_LABEL = "dev.modelship.review-inputs"  # in the inputs image's config: the run it was pushed for
_RUN_ID = re.compile(r"^[0-9a-f]{12}$")


def inputs_repository(inputs_base: str) -> str:
    """The repository the review inputs are pushed to: ``<the base image's repository>/review-inputs``.

    Dedicated to them, so that the orphan sweep can list its tags and delete only what the sandbox
    pushed; nothing else should be pushed there.
    """
    name = inputs_base.partition("@")[0]
    host, _, path = name.partition("/")
    if ":" in path.rsplit("/", 1)[-1]:
        path = path.rpartition(":")[0]
    if not host or not path:
        raise ValueError(f"{inputs_base!r} is not a registry/repository[:tag] image reference")
    return f"{path}/{INPUTS_REPOSITORY_SUFFIX}"


def inputs_tag(owner: str, run_id: str) -> str:
    """The tag of one run's inputs: the bot instance and the run (an OCI tag: at most 128 of [A-Za-z0-9._-])."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} is not 12 hex digits")
    return f"{valid_owner(owner)}-{run_id}"


def owned_inputs_tag(tag: str, owner: str) -> bool:
    """Whether ``tag`` is one ``inputs_tag(owner, …)`` made: exactly the owner, a dash, a 12-hex run id."""
    prefix = f"{owner}-"
    return tag.startswith(prefix) and bool(_RUN_ID.match(tag[len(prefix) :]))


def label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def owned_by(owner: str) -> dict[str, str]:
    return {MANAGED_BY[0]: MANAGED_BY[1], SANDBOX_LABEL: "run", OWNER_LABEL: owner}


def valid_owner(owner: str) -> str:
    """A label value from an instance name (a pod name, a host name): at most 63 of [A-Za-z0-9._-]."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", owner)[:63].strip("-._")
    if not cleaned:
        raise ValueError(f"{owner!r} does not make a label value")
    return cleaned
