"""Check devhub's traffic against GitHub's official OpenAPI descriptions (a vendored, pruned copy).

Every request devhub receives, every response it sends and every webhook payload it emits goes through
`Contract`; what does not match GitHub's published shape is returned as readable strings, so a test
that relies on an invented field or a wrong type fails instead of passing against a lenient fake.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import referencing
import referencing.jsonschema
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.protocols import Validator
from openapi_schema_validator import (
    OAS30Validator,
    OAS31Validator,
    oas30_format_checker,
    oas31_format_checker,
)

REST_URI = "urn:devhub:github-rest"
WEBHOOKS_URI = "urn:devhub:github-webhooks"
# Statuses some operations do not list; GitHub still answers them with its basic error body.
ERROR_SCHEMA = f"{REST_URI}#/components/schemas/basic-error"


def _load(name: str) -> Any:
    return json.loads(resources.files("devkit.devhub").joinpath("openapi").joinpath(name).read_text())


def _prepare(node: Any, base: str) -> Any:
    """Make a description directly checkable by a JSON Schema validator.

    - local `$ref`s become absolute, so any sub-schema validates on its own against the registry;
    - OpenAPI 3.0 `nullable: true` with an `enum` admits null (GitHub sends null there, and that is
      what `nullable` means, but a plain `enum` check would refuse it);
    - `oneOf` with a `discriminator` becomes a plain `anyOf`: the discriminator is what makes GitHub's
      overlapping alternatives (file / symlink / submodule) unambiguous, and its mapping would not
      resolve against the absolute refs;
    - an `allOf` of "Simple User" and "Enterprise" becomes `anyOf`: GitHub's description of
      `GET /app/installations` inlines the installation's account that way, which no account can
      satisfy (the `installation` component itself says `anyOf`, and GitHub sends a user there).
    """
    if isinstance(node, list):
        return [_prepare(v, base) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (base + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _prepare(v, base))
        for k, v in node.items()
    }
    if out.get("nullable") is True and isinstance(out.get("enum"), list) and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    if [a.get("title") for a in out.get("allOf", ()) if isinstance(a, dict)] == ["Simple User", "Enterprise"]:
        out["anyOf"] = out.pop("allOf")
    if "discriminator" in out and "oneOf" in out:
        del out["discriminator"]
        out["anyOf"] = out.pop("oneOf")
    return out


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    spec: dict[str, Any]


def _template_regex(template: str) -> re.Pattern[str]:
    # `{path}` in the contents API and `{ref}` in git refs may hold slashes; other parameters never do.
    parts = re.split(r"(\{[^}]+\})", template)
    pattern = "".join(
        (".+" if part in ("{path}", "{ref}") else "[^/]+") if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(f"^{pattern}$")


class Contract:
    """Validators for the vendored REST and webhook descriptions, compiled once and cached."""

    def __init__(self) -> None:
        rest = _prepare(_load("rest.json"), REST_URI)
        hooks = _prepare(_load("webhooks.json"), WEBHOOKS_URI)
        self._rest = rest
        self._hooks = hooks
        self._registry: referencing.Registry[Any] = referencing.Registry().with_resources(
            [
                (REST_URI, referencing.Resource.from_contents(rest, referencing.jsonschema.DRAFT4)),
                (WEBHOOKS_URI, referencing.Resource.from_contents(hooks, referencing.jsonschema.DRAFT202012)),
            ]
        )
        # Literal segments first so `/git/ref/{ref}` never loses to a broader template.
        self._operations = sorted(
            (
                (_template_regex(path), Operation(op["operationId"], method.upper(), path, op))
                for path, item in rest["paths"].items()
                for method, op in item.items()
                if method != "parameters"
            ),
            key=lambda pair: (pair[1].template.count("{"), -len(pair[1].template)),
        )
        self._validators: dict[tuple[str, str], Validator] = {}

    # -- lookup ------------------------------------------------------------------------------
    def operation_ids(self) -> set[str]:
        return {op.operation_id for _, op in self._operations}

    def operation(self, method: str, path: str) -> Operation | None:
        for regex, op in self._operations:
            if op.method == method and regex.match(path):
                return op
        return None

    def _validator(self, key: tuple[str, str], schema: Callable[[], Any], oas31: bool) -> Validator:
        validator = self._validators.get(key)
        if validator is None:
            cls = OAS31Validator if oas31 else OAS30Validator
            checker = oas31_format_checker if oas31 else oas30_format_checker
            validator = cls(schema(), registry=self._registry, format_checker=checker)
            self._validators[key] = validator
        return validator

    @staticmethod
    def _errors(validator: Validator, instance: Any, what: str) -> list[str]:
        problems = []
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))[:10]:
            message = _short(error.message) + f" (schema keyword {error.validator!r})"
            if error.context:  # a failed oneOf/anyOf: name the closest alternative's problem, not the blob
                closest = best_match(error.context)
                if closest is not None:
                    reason = _short(closest.message)
                    message = f"matches no alternative; closest fails at {_where(closest)}: {reason}"
            problems.append(f"{what}: {_where(error)}: {message}")
        return problems

    # -- checks ------------------------------------------------------------------------------
    def check_request(self, method: str, path: str, query: dict[str, str], body: Any) -> list[str]:
        op = self.operation(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in GitHub's REST description"]
        what = f"request {op.operation_id} ({method} {path})"
        problems = [
            f"{what}: required query parameter {p['name']!r} missing"
            for p in _parameters(self._rest, op.spec)
            if p.get("in") == "query" and p.get("required") and p["name"] not in query
        ]
        content = op.spec.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None and body is not None:
            validator = self._validator(("req", op.operation_id), lambda: content["schema"], oas31=False)
            problems += self._errors(validator, body, what)
        elif content is not None and op.spec["requestBody"].get("required"):
            problems.append(f"{what}: a JSON body is required")
        return problems

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        op = self.operation(method, path)
        if op is None or status == 304:
            return []
        what = f"response {status} to {op.operation_id} ({method} {path})"
        response = op.spec["responses"].get(str(status))
        if response is not None and "$ref" in response:
            response = _resolve(self._rest, response["$ref"])
        if response is None:
            if status < 400:
                return [f"{what}: status {status} is not documented for this operation"]
            validator = self._validator(("err", ""), lambda: {"$ref": ERROR_SCHEMA}, oas31=False)
            return self._errors(validator, body, what)
        content = response.get("content", {}).get("application/json")
        if content is None:
            return [] if body is None else [f"{what}: GitHub sends no body with this status"]
        key = (f"res{status}", op.operation_id)
        return self._errors(self._validator(key, lambda: content["schema"], oas31=False), body, what)

    def check_webhook(self, name: str, payload: Any) -> list[str]:
        hook = self._hooks["webhooks"].get(name)
        if hook is None:
            return [f"webhook {name!r}: not in GitHub's webhook description"]
        schema = hook["post"]["requestBody"]["content"]["application/json"]["schema"]
        return self._errors(self._validator(("hook", name), lambda: schema, oas31=True), payload, f"webhook {name}")


def _parameters(doc: dict[str, Any], op: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for param in op.get("parameters", []):
        yield _resolve(doc, param["$ref"]) if "$ref" in param else param


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.split("#", 1)[1].lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _where(error: ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "<root>"


def _short(message: str, limit: int = 300) -> str:
    return message if len(message) <= limit else message[: limit // 2] + " … " + message[-limit // 2 :]


@cache
def shared_contract() -> Contract:
    """One compiled contract per process: loading and compiling is the expensive part."""
    return Contract()
