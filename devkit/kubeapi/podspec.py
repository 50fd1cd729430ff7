"""What the stand-in kubelet can enforce of a pod spec, and the defaults the API server fills in (pure).

The kubelet runs pods on podman through the Docker Engine API. Every field it can enforce there is
listed below with how; a pod that sets anything else (to a non-default value) is refused at creation
with a 422 naming the field, so a test can never pass because a control was silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.utils.quantity import parse_quantity

Problem = tuple[str, str]  # (field path, why)
Check = Callable[[Any, str], list[Problem]]


def _any(_value: Any, _path: str) -> list[Problem]:
    return []


def _only(*allowed: Any, why: str = "") -> Check:
    def check(value: Any, path: str) -> list[Problem]:
        if value in allowed:
            return []
        want = " or ".join(repr(a) for a in allowed)
        return [(path, f"Unsupported value: {value!r}: the kubeapi stand-in's kubelet supports only {want}{why}")]

    return check


def _fields(allowed: Mapping[str, Check]) -> Check:
    def check(value: Any, path: str) -> list[Problem]:
        problems: list[Problem] = []
        for key, item in (value or {}).items():
            where = f"{path}.{key}"
            if key in allowed:
                problems += allowed[key](item, where)
            elif item not in (None, False, [], {}, ""):
                problems.append((where, "Forbidden: the kubeapi stand-in's kubelet cannot enforce this field"))
        return problems

    return check


def _each(check: Check) -> Check:
    def each(value: Any, path: str) -> list[Problem]:
        return [p for i, item in enumerate(value or ()) for p in check(item, f"{path}[{i}]")]

    return each


def _seccomp(value: Any, path: str) -> list[Problem]:
    return _fields({"type": _only("RuntimeDefault", "Unconfined", why=" (Localhost profiles are not loaded)")})(
        value, path
    )


RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _resources(value: Any, path: str) -> list[Problem]:
    problems: list[Problem] = []
    for section in ("limits", "requests"):
        for name in (value or {}).get(section) or {}:
            if name not in RESOURCES:
                problems.append(
                    (
                        f"{path}.{section}.{name}",
                        "Forbidden: the kubeapi stand-in's kubelet cannot enforce this resource",
                    )
                )
    for key in value or {}:
        if key not in ("limits", "requests") and value[key]:
            problems.append((f"{path}.{key}", "Forbidden: the kubeapi stand-in's kubelet cannot enforce this field"))
    return problems


def _env(value: Any, path: str) -> list[Problem]:
    return _fields({"name": _any, "value": _any})(value, path)


_CONTAINER_SECURITY = _fields(
    {
        "runAsUser": _any,
        "runAsGroup": _any,
        "runAsNonRoot": _any,
        "readOnlyRootFilesystem": _any,
        "allowPrivilegeEscalation": _any,
        "capabilities": _fields({"add": _any, "drop": _any}),
        "privileged": _only(False, None),
        "seccompProfile": _seccomp,
        "procMount": _only("Default", None),
    }
)

_CONTAINER = _fields(
    {
        "name": _any,
        "image": _any,
        "command": _any,
        "args": _any,
        "workingDir": _any,
        "env": _each(_env),
        "resources": _resources,
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": _each(_fields({"name": _any, "mountPath": _any, "readOnly": _any})),
        "imagePullPolicy": _any,
        "terminationMessagePath": _any,
        "terminationMessagePolicy": _any,
        "ports": _any,  # informational: the pod's address is what clients use
    }
)

_POD_SECURITY = _fields(
    {
        "runAsUser": _any,
        "runAsGroup": _any,
        "runAsNonRoot": _any,
        "supplementalGroups": _any,
        "supplementalGroupsPolicy": _only("Merge", None),
        "seccompProfile": _seccomp,
    }
)

_VOLUME = _fields(
    {
        "name": _any,
        "emptyDir": _fields({"medium": _only("", "Memory", None), "sizeLimit": _any}),
    }
)

POD_SPEC = _fields(
    {
        "containers": _each(_CONTAINER),
        "initContainers": _each(_CONTAINER),
        "restartPolicy": _only("Never", why=" (each container runs once)"),
        "activeDeadlineSeconds": _any,
        "automountServiceAccountToken": _any,
        "serviceAccountName": _any,
        "serviceAccount": _any,
        "securityContext": _POD_SECURITY,
        "volumes": _each(_VOLUME),
        "terminationGracePeriodSeconds": _any,
        "dnsPolicy": _any,  # no cluster DNS exists here; what the pod resolves is the engine's default
        "schedulerName": _only("default-scheduler"),
        "enableServiceLinks": _any,  # there are no Services, so no service environment variables
        "nodeName": _any,
        "priority": _any,
        "preemptionPolicy": _any,
        "tolerations": _any,  # the one node has no taints: every toleration is satisfied
        "schedulingGates": _any,  # a gated pod is never bound, so the kubelet never sees it (gate_problems)
    }
)


def unenforceable(spec: Mapping[str, Any], path: str = "spec") -> list[Problem]:
    """Each field of a pod spec the stand-in kubelet cannot enforce, named (empty: it can run it)."""
    problems = POD_SPEC(spec, path)
    for i, container in enumerate([*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]):
        where = f"{path}.{'initContainers' if i < len(spec.get('initContainers') or ()) else 'containers'}"
        index = i if i < len(spec.get("initContainers") or ()) else i - len(spec.get("initContainers") or ())
        limits = (container.get("resources") or {}).get("limits") or {}
        if "ephemeral-storage" in limits and not effective_security(spec, container).get("readOnlyRootFilesystem"):
            problems.append(
                (
                    f"{where}[{index}].resources.limits.ephemeral-storage",
                    "Forbidden: the kubeapi stand-in's kubelet caps ephemeral storage only with "
                    "readOnlyRootFilesystem: true (its writable layer cannot be sized on this engine)",
                )
            )
        for key in ("cpu", "memory", "ephemeral-storage"):
            for section in ("limits", "requests"):
                raw = ((container.get("resources") or {}).get(section) or {}).get(key)
                if raw is not None:
                    try:
                        parse_quantity(raw)
                    except ValueError:
                        problems.append((f"{where}[{index}].resources.{section}.{key}", f"Invalid value: {raw!r}"))
    for i, volume in enumerate(spec.get("volumes") or ()):
        size = (volume.get("emptyDir") or {}).get("sizeLimit")
        if size is not None:
            try:
                parse_quantity(size)
            except ValueError:
                problems.append((f"{path}.volumes[{i}].emptyDir.sizeLimit", f"Invalid value: {size!r}"))
    return problems


def effective_security(spec: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's security context with the pod's values underneath, as the kubelet merges them."""
    pod = spec.get("securityContext") or {}
    merged = {k: pod[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile") if k in pod}
    merged.update({k: v for k, v in (container.get("securityContext") or {}).items() if v is not None})
    return merged


def quantity(value: Any) -> float:
    return float(parse_quantity(value))


# --- scheduling gates (GA in 1.30) -----------------------------------------------------------------

_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SCHEDULING_GATED = "Scheduling is blocked due to non-empty scheduling gates"


def gates(spec: Mapping[str, Any]) -> list[str]:
    return [str(g.get("name")) for g in spec.get("schedulingGates") or ()]


def _qualified_name_problem(name: str) -> str | None:
    prefix, _, rest = name.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _PREFIX.match(prefix))) or not rest or len(rest) > 63:
        return f"Invalid value: {name!r}: a qualified name must be an optional DNS subdomain prefix and '/' and a name"
    if not _QUALIFIED_NAME.match(rest):
        return (
            f"Invalid value: {name!r}: name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return None


def gate_problems(spec: Mapping[str, Any], path: str) -> list[Problem]:
    """Pod validation of ``schedulingGates`` (validateSchedulingGates) and of nodeName beside them."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, name in enumerate(gates(spec)):
        if problem := _qualified_name_problem(name):
            problems.append((f"{path}.schedulingGates[{i}].name", problem))
        if name in seen:
            problems.append((f"{path}.schedulingGates[{i}].name", f"Duplicate value: {name!r}"))
        seen.add(name)
    if seen and spec.get("nodeName"):
        problems.append((f"{path}.nodeName", "Forbidden: cannot be set until all schedulingGates have been cleared"))
    return problems


def added_gate_problems(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[Problem]:
    """A pod update may only remove scheduling gates (validateOnlyDeletedSchedulingGates)."""
    before = set(gates(old))
    return [
        (
            f"{path}.schedulingGates[{i}].name",
            f"Forbidden: only deletion is allowed, but found new scheduling gate {name!r}",
        )
        for i, name in enumerate(gates(new))
        if name not in before
    ]


# --- API server defaulting -----------------------------------------------------------------------


def default_container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image", ""))
    latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
    if "@" not in image:
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    else:
        container.setdefault("imagePullPolicy", "IfNotPresent")
    container.setdefault("resources", {})
    limits = (container["resources"].get("limits")) or {}
    if limits:  # a limit with no request requests the limit
        requests = container["resources"].setdefault("requests", {})
        for key, value in limits.items():
            requests.setdefault(key, value)


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        default_container(container)
    for volume in spec.get("volumes") or ():
        if "emptyDir" in volume and volume["emptyDir"] is None:
            volume["emptyDir"] = {}
