"""What each sink receives for an event: a Slack message, or the signed generic webhook request. Pure.

Every value in an event comes from the bot's own records (repository, environment, model, versions,
reasons it wrote); Slack's control characters are escaped all the same, so a model name cannot mention
a channel or forge a link.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

EVENT_HEADER = "X-Modelship-Event"
DELIVERY_HEADER = "X-Modelship-Delivery"


@dataclass(frozen=True)
class Event:
    key: str  # unique per event: receivers dedupe on it (it is the body's "id" and X-Modelship-Delivery)
    kind: str
    created_at: str
    data: Mapping[str, Any]


def webhook_body(event: Event) -> bytes:
    """The generic webhook's JSON body (stable key order, so the signature covers exactly these bytes)."""
    doc = {"id": event.key, "event": event.kind, "created_at": event.created_at, "data": dict(event.data)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()


def webhook_request(event: Event, secret: bytes, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one generic webhook delivery, signed at ``timestamp`` (the time of this attempt)."""
    body = webhook_body(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Modelship-Notify",
        EVENT_HEADER: event.kind,
        DELIVERY_HEADER: event.key,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    return body, headers


def _esc(value: Any) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(value: Any) -> str:
    return _esc(str(value or "")[:7])


def slack_text(event: Event) -> str:
    """One line (and a reason) per event, in Slack's mrkdwn."""
    d = event.data
    repo, env, model = _esc(d.get("repo", "")), _esc(d.get("environment", "")), _esc(d.get("model", ""))
    where = f"*{model}* `{_short(d.get('version'))}` in *{env}* ({repo})"
    kind = event.kind
    if kind == "review.finished":
        verdict = "passed" if d.get("passed") else "failed"
        text = f"Review of {repo}#{_esc(d.get('number'))} at `{_short(d.get('head_sha'))}` {verdict}"
        gates = d.get("failed_gates") or []
        return text + "".join(f"\n• {_esc(g)}" for g in gates)
    if kind == "deploy.committed":
        return f"Deploy committed: {where}, {_esc(d.get('deploy_repo', ''))}@`{_short(d.get('deploy_commit'))}`"
    if kind == "deploy.live":
        return f"Live: {where}"
    if kind == "deploy.failed":
        return f"Deploy failed: {where}: {_esc(d.get('reason', ''))}"
    if kind == "rollback.opened":
        return f"Rollback PR opened for {where}: {_esc(d.get('pr_url') or '')} ({_esc(d.get('reason', ''))})"
    if kind == "rollback.merged":
        return f"Rollback merged for {where}: {_esc(d.get('restored_version', ''))[:7]} restored and pinned"
    if kind == "guard.alert":
        return f"Guard alert for {where}: {_esc(d.get('reason', ''))}"
    return f"{_esc(kind)}: {where}"


def slack_body(event: Event) -> bytes:
    return json.dumps({"text": slack_text(event)}).encode()
