"""Intake core: GitHub's signature rules, header and body validation, and the job plan."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.intake import (
    Delivery,
    WebhookRejected,
    metric_event,
    parse_delivery,
    plan_delivery,
    signature_for,
    verify_signature,
)

SECRET = b"s3cret"


def headers(body: bytes, **extra: str) -> dict[str, str]:
    h = {
        "X-Hub-Signature-256": signature_for(SECRET, body),
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Hook-ID": "42",
        "Content-Type": "application/json",
    }
    h.update(extra)
    return {k: v for k, v in h.items() if v != ""}


def test_githubs_published_test_vector() -> None:
    sig = signature_for(b"It's a Secret to Everybody", b"Hello, World!")
    assert sig == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_signature(b"It's a Secret to Everybody", b"Hello, World!", sig)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha1=0123456789abcdef0123456789abcdef01234567",
        "sha256=abc",
        "sha256=" + "g" * 64,
        "sha256=" + "0" * 64,
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ],
)
def test_missing_malformed_wrong_or_sha1_signatures_are_401(header: str | None) -> None:
    with pytest.raises(WebhookRejected) as exc:
        verify_signature(SECRET, b"{}", header)
    assert exc.value.status == 401


@pytest.mark.parametrize(
    ("body", "extra", "needle"),
    [
        (b"{}", {"X-GitHub-Event": ""}, "X-GitHub-Event"),
        (b"{}", {"X-GitHub-Delivery": ""}, "X-GitHub-Delivery"),
        (b"{}", {"Content-Type": "application/x-www-form-urlencoded"}, "content type"),
        (b"{not json", {}, "not valid JSON"),
        (b"[1, 2]", {}, "JSON object"),
        (b"\xff\xfe", {}, "not valid JSON"),
        (b"[" * 10_000 + b"]" * 10_000, {}, "not valid JSON"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, {}, "not valid JSON"),
    ],
)
def test_bad_requests_are_400_with_a_reason(body: bytes, extra: dict[str, str], needle: str) -> None:
    with pytest.raises(WebhookRejected) as exc:
        parse_delivery(SECRET, headers(body, **extra), body)
    assert exc.value.status == 400
    assert needle in exc.value.message


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"installation": {"id": 10**20}}, "installation.id"),
        ({"pull_request": {"labels": [{"id": 1}, {"id": -(2**63) - 1}]}}, "pull_request.labels[1].id"),
        ({"installation": {"id": 2**63}}, "installation.id"),
    ],
)
def test_integers_beyond_64_bits_are_400_naming_the_field(payload: dict, field: str) -> None:
    body = json.dumps(payload).encode()
    with pytest.raises(WebhookRejected) as exc:
        parse_delivery(SECRET, headers(body), body)
    assert exc.value.status == 400
    assert exc.value.message.startswith(field + " ")


def test_the_largest_64_bit_integers_and_long_digit_strings_pass() -> None:
    payload = {"installation": {"id": 2**63 - 1}, "low": -(2**63), "text": "1" * 40, "f": 1e20}
    body = json.dumps(payload).encode()
    assert parse_delivery(SECRET, headers(body), body).installation_id == 2**63 - 1


def test_metric_labels_are_github_event_names_or_other() -> None:
    assert metric_event("pull_request") == "pull_request"
    assert metric_event("pull_request_x") == "other"
    assert metric_event("") == "other"


def _delivery(event: str, payload: dict) -> Delivery:
    body = json.dumps(payload).encode()
    return parse_delivery(SECRET, headers(body, **{"X-GitHub-Event": event}), body)


PR = {
    "action": "opened",
    "number": 3,
    "pull_request": {"number": 3},
    "repository": {"full_name": "acme/churn"},
    "installation": {"id": 9},
    "sender": {"login": "alice"},
}


def _plan(d: Delivery, allowed: bool = True, handled: bool = True):  # type: ignore[no-untyped-def]
    return plan_delivery(d, app_slug="modelship", repo_allowed=lambda _: allowed, handled=lambda _: handled)


def test_a_handled_pull_request_becomes_one_webhook_job_serialised_per_pr() -> None:
    d = _delivery("pull_request", PR)
    assert _plan(d).jobs == ("webhook",)
    assert d.serial_key() == "acme/churn#3"
    assert (d.repository, d.installation_id, d.sender, d.action) == ("acme/churn", 9, "alice", "opened")


def test_what_is_recorded_but_not_processed() -> None:
    assert _plan(_delivery("ping", {"zen": "Keep it logically awesome."})).outcome == "ignored:ping"
    assert (
        _plan(_delivery("pull_request", {**PR, "sender": {"login": "modelship[bot]"}})).outcome == "ignored:own-event"
    )
    assert _plan(_delivery("pull_request", PR), allowed=False).outcome == "ignored:repo-not-allowed"
    assert _plan(_delivery("watch", PR), handled=False).outcome == "ignored:unhandled"
    assert _plan(_delivery("installation", {"action": "created", "installation": {"id": 1}})).queued


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=8), st.binary(max_size=300))
def test_fuzzed_headers_and_bodies_raise_only_client_errors(h: dict[str, str], body: bytes) -> None:
    for candidate in (h, {**headers(body), **h}):
        try:
            parse_delivery(SECRET, candidate, body)
        except WebhookRejected as exc:
            assert 400 <= exc.status < 500
