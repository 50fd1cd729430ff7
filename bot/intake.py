"""Webhook intake core: verify GitHub's signature, validate headers and body, plan the jobs.

Pure functions over headers and bytes; the aiohttp handler in bot.web.webhooks only wires them to I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.store.base import utcnow

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# Integers the database stores are signed 64-bit (BIGINT); GitHub's ids fit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# X-GitHub-Event values GitHub sends (the webhook names of GitHub's OpenAPI description). Metrics label
# only these: any other header value would let a sender mint label values (one time series each).
KNOWN_EVENTS = frozenset(
    [
        "branch_protection_configuration",
        "branch_protection_rule",
        "check_run",
        "check_suite",
        "code_scanning_alert",
        "commit_comment",
        "create",
        "custom_property",
        "custom_property_values",
        "delete",
        "dependabot_alert",
        "deploy_key",
        "deployment",
        "deployment_protection_rule",
        "deployment_review",
        "deployment_status",
        "discussion",
        "discussion_comment",
        "fork",
        "github_app_authorization",
        "gollum",
        "installation",
        "installation_repositories",
        "installation_target",
        "issue_comment",
        "issue_dependencies",
        "issues",
        "label",
        "marketplace_purchase",
        "member",
        "membership",
        "merge_group",
        "meta",
        "milestone",
        "org_block",
        "organization",
        "package",
        "page_build",
        "personal_access_token_request",
        "ping",
        "project",
        "project_card",
        "project_column",
        "projects_v2",
        "projects_v2_item",
        "projects_v2_status_update",
        "public",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
        "push",
        "registry_package",
        "release",
        "repository",
        "repository_advisory",
        "repository_dispatch",
        "repository_import",
        "repository_ruleset",
        "repository_vulnerability_alert",
        "secret_scanning_alert",
        "secret_scanning_alert_location",
        "secret_scanning_scan",
        "security_advisory",
        "security_and_analysis",
        "sponsorship",
        "star",
        "status",
        "sub_issues",
        "team",
        "team_add",
        "watch",
        "workflow_dispatch",
        "workflow_job",
        "workflow_run",
    ]
)


def metric_event(event: str) -> str:
    """The metrics label of a verified delivery's event: a name GitHub sends, else ``other``."""
    return event if event in KNOWN_EVENTS else "other"


class WebhookRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def signature_for(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_digest(header: str | None) -> str:
    """The hex digest of a well-formed X-Hub-Signature-256 (lower case), else 401.

    Checked before the body is read: a request without a usable signature costs no body read.
    """
    if not header:
        raise WebhookRejected(401, "missing X-Hub-Signature-256 header (SHA-1 signatures are not accepted)")
    algo, _, digest = header.partition("=")
    if algo != "sha256" or not _HEX64.fullmatch(digest):
        raise WebhookRejected(401, "malformed X-Hub-Signature-256: expected 'sha256=<64 hex digits>'")
    return digest.lower()


def check_digest(computed_hex: str, digest: str) -> None:
    if not hmac.compare_digest(computed_hex, digest):
        raise WebhookRejected(401, "signature does not match: check the webhook secret")


def verify_signature(secret: bytes, body: bytes, header: str | None) -> None:
    """Require X-Hub-Signature-256; SHA-1 (X-Hub-Signature) alone is refused on purpose."""
    digest = signature_digest(header)
    check_digest(hmac.new(secret, body, hashlib.sha256).hexdigest(), digest)


@dataclass(frozen=True)
class Delivery:
    guid: str
    hook_id: str
    event: str
    payload: dict[str, Any]
    body: str
    received_at: datetime = field(default_factory=utcnow)

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None

    @property
    def repository(self) -> str | None:
        return _get_str(self.payload, "repository", "full_name")

    @property
    def installation_id(self) -> int | None:
        inst = self.payload.get("installation")
        value = inst.get("id") if isinstance(inst, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def sender(self) -> str | None:
        return _get_str(self.payload, "sender", "login")

    def serial_key(self) -> str:
        """Jobs of one PR run one at a time; other events serialise per repository."""
        repo = self.repository or f"installation:{self.installation_id}"
        number = None
        for key in ("pull_request", "issue"):
            obj = self.payload.get(key)
            if isinstance(obj, dict) and isinstance(obj.get("number"), int):
                number = obj["number"]
                break
        return f"{repo}#{number}" if number is not None else repo


def _get_str(payload: Mapping[str, Any], *path: str) -> str | None:
    node: Any = payload
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, str) else None


def parse_delivery(secret: bytes, headers: Mapping[str, str], body: bytes) -> Delivery:
    """Authenticate first (401), then validate the request's shape (400)."""
    verify_signature(secret, body, headers.get("X-Hub-Signature-256"))
    return parse_verified(headers, body)


def parse_verified(headers: Mapping[str, str], body: bytes | bytearray) -> Delivery:
    """Validate the shape (400) of a request whose signature was already checked."""
    event = headers.get("X-GitHub-Event", "").strip()
    guid = headers.get("X-GitHub-Delivery", "").strip()
    if not event:
        raise WebhookRejected(400, "missing X-GitHub-Event header")
    if not guid or len(guid) > 64:
        raise WebhookRejected(400, "missing or oversized X-GitHub-Delivery header")
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise WebhookRejected(
            400, f"unsupported content type {content_type or '(none)'!r}: set the webhook to application/json"
        )
    wide = False
    try:
        text = body.decode("utf-8")
        try:
            payload = _DECODER.decode(text)
        except _WideInt:
            wide = True
            payload = json.loads(text)  # parse again to name the field in the answer
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: pathological nesting must be a client error, never a 500.
        raise WebhookRejected(400, f"body is not valid JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body must be a JSON object")
    if wide and (where := _int_out_of_range(payload)) is not None:
        # One such value must fail its own request (400), never the database batch it would join.
        raise WebhookRejected(400, f"{where} is outside the signed 64-bit integer range")
    hook_id = headers.get("X-GitHub-Hook-ID", "")[:64]
    return Delivery(guid=guid, hook_id=hook_id, event=event[:64], payload=payload, body=text)


class _WideInt(ValueError):
    pass


def _checked_int(digits: str) -> int:
    # The JSON parser hands over every integer literal, so wide ones are caught while parsing; a
    # regular expression over the whole body would cost ~10x the parse.
    value = int(digits)
    if len(digits) > 18 and not INT64_MIN <= value <= INT64_MAX:
        raise _WideInt(digits)
    return value


_DECODER = json.JSONDecoder(parse_int=_checked_int)


def _int_out_of_range(node: Any, path: str = "") -> str | None:
    """The dotted path of the first integer outside the 64-bit range, or None. Iterative: the body's
    nesting was already bounded by json.loads, but a stack is cheaper than recursion here."""
    stack: list[tuple[str, Any]] = [(path, node)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            return where or "body"
    return None


@dataclass(frozen=True)
class Plan:
    """What to do with a verified delivery: its recorded outcome and the jobs to create."""

    outcome: str
    jobs: tuple[str, ...] = ()  # job kinds

    @property
    def queued(self) -> bool:
        return bool(self.jobs)


def plan_delivery(
    delivery: Delivery,
    *,
    app_slug: str,
    repo_allowed: Callable[[str], bool],
    handled: Callable[[Delivery], bool],
) -> Plan:
    """Decide, without I/O, whether a delivery becomes work. Guard clauses say why it does not."""
    if delivery.event == "ping":
        return Plan("ignored:ping")
    if delivery.sender == f"{app_slug}[bot]":
        return Plan("ignored:own-event")  # our own comments and pushes must never trigger us (loops)
    if delivery.event.startswith("installation"):
        return Plan("queued", ("webhook",))  # installation bookkeeping is repository-independent
    if delivery.repository is not None and not repo_allowed(delivery.repository):
        return Plan("ignored:repo-not-allowed")
    if not handled(delivery):
        return Plan("ignored:unhandled")
    return Plan("queued", ("webhook",))
