"""Kubernetes' published schemas (1.33, strict: unknown fields are errors), as bundled by kubernetes-validate.

One registry of the ~700 definitions is built once; a validator per definition is cached. Errors are
returned as ``(field path, message)`` pairs with Kubernetes' own path spelling
(``spec.template.spec.containers[0].image``), so a 422 Status can name the field.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.33.0"
_DIR = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
_DEFS_ID = "https://kubernetes.io/api/_definitions.json"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"


@functools.cache
def _definitions() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((_DIR / "_definitions.json").read_text())
    return document


@functools.cache
def _registry() -> Registry:
    return Resource.from_contents(_definitions()) @ Registry()


@functools.cache
def definition_for(group: str, version: str, kind: str) -> str:
    """The definition name of a group/version/kind, e.g. ("batch", "v1", "Job") -> io.k8s.api.batch.v1.Job."""
    for name, schema in _definitions()["$defs"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            if (gvk.get("group", ""), gvk["version"], gvk["kind"]) == (group, version, kind):
                if name.startswith("io.k8s.apimachinery.pkg.apis.meta.v1.") and kind not in ("Status", "DeleteOptions"):
                    continue  # meta's WatchEvent/DeleteOptions are listed under every group
                return str(name)
    raise KeyError(f"no schema for {group or 'core'}/{version} {kind} in Kubernetes {KUBERNETES_VERSION}")


@functools.cache
def _validator(definition: str) -> jsonschema.protocols.Validator:
    if definition not in _definitions()["$defs"]:
        raise KeyError(f"no definition {definition} in Kubernetes {KUBERNETES_VERSION}")
    schema = {"$ref": f"{_DEFS_ID}#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(
        schema, registry=_registry(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def errors(document: Any, definition: str) -> list[tuple[str, str]]:
    """Every violation of ``definition`` in ``document`` as (field path, message), most specific first."""
    found = []
    for error in _validator(definition).iter_errors(document):
        leaves = _leaves(error)
        for leaf in leaves:
            found.append((field_path(leaf.absolute_path), _message(leaf)))
    return sorted(set(found))


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    # a oneOf/anyOf failure is reported by its most relevant branch, not "is not valid under any"
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        return [best] if best is not None else [error]
    return [error]


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown field {', '.join(repr(e) for e in extra)}"
    return error.message[:300]
