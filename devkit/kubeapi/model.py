"""The API machinery the stand-in shares: resource kinds, Status errors, selectors, names, time (pure)."""

from __future__ import annotations

import datetime
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NODE_NAME = "kubeapi-node"


@dataclass(frozen=True)
class Kind:
    group: str  # "" is the core group
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    generation: bool = True  # metadata.generation counts spec changes

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How Kubernetes names the resource in messages: ``jobs.batch``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


NAMESPACES = Kind("", "v1", "Namespace", "namespaces", namespaced=False, generation=False)
PODS = Kind("", "v1", "Pod", "pods", generation=False)
JOBS = Kind("batch", "v1", "Job", "jobs")
NETWORK_POLICIES = Kind("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies")
DEPLOYMENTS = Kind("apps", "v1", "Deployment", "deployments")
KINDS = {(k.group, k.version, k.plural): k for k in (NAMESPACES, PODS, JOBS, NETWORK_POLICIES, DEPLOYMENTS)}


class ApiError(Exception):
    """An error the API answers with a ``Status`` object (404 NotFound, 409 AlreadyExists/Conflict, …)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        kind: Kind | None = None,
        name: str | None = None,
        causes: list[tuple[str, str, str]] | None = None,  # (reason, field, message)
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.kind, self.name, self.causes = kind, name, causes or []

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.kind is not None:
            details["kind"] = self.kind.plural
            if self.kind.group:
                details["group"] = self.kind.group
        if self.causes:
            details["causes"] = [{"reason": r, "field": f, "message": m} for r, f, m in self.causes]
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', kind=kind, name=name)


def invalid(kind: Kind, name: str, causes: list[tuple[str, str]], reason: str = "FieldValueInvalid") -> ApiError:
    """422 Invalid naming each (field, message), as the API server words it."""
    text = "; ".join(f"{f}: {m}" if f else m for f, m in causes)
    label = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    return ApiError(
        422,
        "Invalid",
        f'{label} "{name}" is invalid: {text}',
        kind=kind,
        name=name,
        causes=[(reason, f, m) for f, m in causes],
    )


def success_status(kind: Kind, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    details = {"name": meta["name"], "kind": kind.plural, "uid": meta["uid"]}
    if kind.group:
        details["group"] = kind.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # what the API server's generateName draws from


def generated_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_SUFFIX, k=5))


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def name_problem(name: str, *, label: bool) -> str | None:
    """Why ``name`` is not a valid object name (a DNS-1123 label or subdomain), or None."""
    if label:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            return (
                f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case alphanumeric '
                "characters or '-', start and end with an alphanumeric character, at most 63 characters"
            )
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        return (
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return None


# --- label and field selectors ---------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        return not present or value not in self.values  # notin


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def parse_selector(text: str | None, *, what: str = "labelSelector") -> list[Requirement]:
    """A label selector string (``app=x,tier!=db,env in (a,b),!legacy``) or a 400 naming the bad part."""
    if not text:
        return []
    requirements = []
    for part in _split_top(text):
        match = _REQUIREMENT.match(part)
        if not match:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part.strip()!r} in {what}")
        negate, key, op, value, set_op, set_values = match.groups()
        if negate:
            if op or set_op:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {part.strip()!r} in {what}")
            requirements.append(Requirement(key, "!"))
        elif op:
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        elif set_op:
            values = tuple(v.strip() for v in set_values.split(",") if v.strip())
            requirements.append(Requirement(key, set_op, values))
        else:
            requirements.append(Requirement(key, "exists"))
    return requirements


FIELDS = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
}


def parse_field_selector(text: str | None) -> list[Requirement]:
    requirements = parse_selector(text, what="fieldSelector")
    for req in requirements:
        if req.key not in FIELDS or req.op not in ("=", "!="):
            raise ApiError(
                400,
                "BadRequest",
                f'"{req.key}" is not a known field selector: only {", ".join(sorted(FIELDS))} with = or !=',
            )
    return requirements


@dataclass(frozen=True)
class Filter:
    """Which objects a list or watch returns."""

    namespace: str | None = None
    labels: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj["metadata"]
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        if not all(r.matches(labels) for r in self.labels):
            return False
        values = {r.key: FIELDS[r.key](obj) for r in self.fields}
        return all(r.matches(values) for r in self.fields)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions); an empty one selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}[expr["operator"]]
        if not Requirement(expr["key"], op, tuple(expr.get("values") or ())).matches(labels):
            return False
    return True
