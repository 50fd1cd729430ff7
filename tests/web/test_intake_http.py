"""POST /webhooks/github through the real app and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import Service, build_service
from bot.intake import signature_for
from bot.settings import Settings
from bot.store.models import Delivery, Installation, Job

SECRET = "webhook-secret"


class NoGitHub:
    async def for_installation(self, installation_id: int) -> Any:
        raise AssertionError("intake tests never call GitHub")

    def git_token(self, installation_id: int) -> Any:
        raise AssertionError

    async def clone_url(self, full_name: str, installation_id: int) -> str:
        raise AssertionError

    def remember_repository(self, repository: object) -> None:
        raise AssertionError


@pytest.fixture
async def service(db_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    s = Settings(
        webhook_secret=SECRET, data_dir=tmp_path, database_url=db_url, repo_allowlist=["acme/*"], sandbox="off"
    )
    svc = await build_service(s, github=NoGitHub())
    svc.writer.start()  # workers stay off: these tests look at what intake stored
    yield svc
    await svc.writer.stop()
    for close in svc._closers:
        await close()


@pytest.fixture
async def client(service: Service) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(service.web_app)) as c:
        yield c


def signed(
    event: str, payload: Any, *, guid: str | None = None, raw: bytes | None = None
) -> tuple[bytes, dict[str, str]]:
    body = raw if raw is not None else json.dumps(payload).encode()
    return body, {
        "X-Hub-Signature-256": signature_for(SECRET.encode(), body),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "Content-Type": "application/json",
    }


PR = {
    "action": "opened",
    "number": 1,
    "pull_request": {"number": 1, "head": {"sha": "a" * 40}, "base": {"ref": "main"}},
    "repository": {"full_name": "acme/churn"},
    "installation": {"id": 7},
    "sender": {"login": "alice"},
}


async def counts(service: Service) -> tuple[int, int]:
    async with service.services.engine.connect() as conn:
        deliveries = await conn.scalar(select(func.count()).select_from(Delivery))
        jobs = await conn.scalar(select(func.count()).select_from(Job))
    return int(deliveries or 0), int(jobs or 0)


async def test_a_pull_request_is_stored_with_its_job_then_acknowledged(client: TestClient, service: Service) -> None:
    body, h = signed("pull_request", PR)
    resp = await client.post("/webhooks/github", data=body, headers=h)
    assert resp.status == 202
    async with service.services.engine.connect() as conn:
        row = (await conn.execute(select(Delivery))).one()
        job = (await conn.execute(select(Job))).one()
    assert (row.event, row.action, row.repository, row.installation_id, row.sender) == (
        "pull_request",
        "opened",
        "acme/churn",
        7,
        "alice",
    )
    assert json.loads(row.body) == PR
    assert (job.kind, job.serial_key, job.delivery_id, job.state) == ("webhook", "acme/churn#1", row.id, "queued")


async def test_ping_is_200_and_creates_no_job(client: TestClient, service: Service) -> None:
    body, h = signed("ping", {"zen": "Design for failure.", "hook_id": 1})
    resp = await client.post("/webhooks/github", data=body, headers=h)
    assert resp.status == 200 and (await resp.json())["zen"] == "Design for failure."
    assert await counts(service) == (1, 0)


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        ({**PR, "repository": {"full_name": "evil/repo"}}, "ignored:repo-not-allowed"),
        ({**PR, "sender": {"login": "modelship[bot]"}}, "ignored:own-event"),
    ],
)
async def test_recorded_but_not_processed(client: TestClient, service: Service, payload: dict, outcome: str) -> None:
    body, h = signed("pull_request", payload)
    resp = await client.post("/webhooks/github", data=body, headers=h)
    assert resp.status == 200 and (await resp.json())["message"] == outcome
    assert await counts(service) == (1, 0)


async def test_an_unhandled_event_is_recorded_and_acknowledged(client: TestClient, service: Service) -> None:
    body, h = signed("star", {**PR, "action": "created"})
    resp = await client.post("/webhooks/github", data=body, headers=h)
    assert resp.status == 200 and (await resp.json())["message"] == "ignored:unhandled"
    assert await counts(service) == (1, 0)


async def test_1000_redeliveries_of_one_delivery_make_exactly_one_job(client: TestClient, service: Service) -> None:
    body, h = signed("pull_request", PR, guid="f00dfeed-0000-0000-0000-000000000001")
    statuses = await asyncio.gather(*[client.post("/webhooks/github", data=body, headers=h) for _ in range(1000)])
    codes = sorted(r.status for r in statuses)
    assert codes.count(202) == 1 and codes.count(200) == 999
    assert await counts(service) == (1, 1)


def _bad_requests() -> list[tuple[str, bytes, dict[str, str], int]]:
    body, good = signed("pull_request", PR)
    nested = b"[" * 10_000 + b"]" * 10_000
    _, nested_h = signed("pull_request", None, raw=nested)
    return [
        ("no signature", body, {k: v for k, v in good.items() if k != "X-Hub-Signature-256"}, 401),
        (
            "sha1 only",
            body,
            {**{k: v for k, v in good.items() if k != "X-Hub-Signature-256"}, "X-Hub-Signature": "sha1=" + "0" * 40},
            401,
        ),
        ("wrong signature", body, {**good, "X-Hub-Signature-256": "sha256=" + "0" * 64}, 401),
        ("malformed signature", body, {**good, "X-Hub-Signature-256": "sha256=zz"}, 401),
        ("no event", body, {k: v for k, v in good.items() if k != "X-GitHub-Event"}, 400),
        ("no delivery", body, {k: v for k, v in good.items() if k != "X-GitHub-Delivery"}, 400),
        ("form encoded", body, {**good, "Content-Type": "application/x-www-form-urlencoded"}, 400),
        ("deep nesting", nested, nested_h, 400),
        ("malformed json", b"{", signed("x", None, raw=b"{")[1], 400),
    ]


@pytest.mark.parametrize(
    ("name", "body", "h", "status"), _bad_requests(), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_bad_deliveries_get_the_right_status_and_nothing_is_stored(
    client: TestClient, service: Service, name: str, body: bytes, h: dict[str, str], status: int
) -> None:
    resp = await client.post("/webhooks/github", data=body, headers=h)
    assert resp.status == status, name
    assert (await resp.json())["message"]
    assert await counts(service) == (0, 0)


async def test_a_26_mb_body_is_413_and_nothing_is_stored(client: TestClient, service: Service) -> None:
    body, h = signed("pull_request", None, raw=b'{"pad": "' + b"x" * (26 * 1024 * 1024) + b'"}')
    resp = await client.post("/webhooks/github", data=body, headers=h)
    assert resp.status == 413
    assert await counts(service) == (0, 0)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-GitHub-Event",
                "X-GitHub-Delivery",
                "X-Hub-Signature-256",
                "Content-Type",
                "X-GitHub-Hook-ID",
                "Content-Length",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    ),
    body=st.one_of(
        st.binary(max_size=500),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    sign=st.booleans(),
)
async def test_fuzzed_intake_never_answers_5xx(
    client: TestClient, headers: dict[str, str], body: bytes, sign: bool
) -> None:
    headers.pop("Content-Length", None)  # the client computes it; a wrong one is a transport error
    if sign:
        headers["X-Hub-Signature-256"] = signature_for(SECRET.encode(), body)
    resp = await client.post("/webhooks/github", data=body, headers=headers)
    assert resp.status < 500, await resp.text()


async def test_installation_events_become_jobs_even_without_a_repository(client: TestClient, service: Service) -> None:
    payload = {
        "action": "created",
        "installation": {"id": 55, "account": {"login": "acme"}},
        "repositories": [{"full_name": "acme/churn"}],
        "sender": {"login": "alice"},
    }
    body, h = signed("installation", payload)
    assert (await client.post("/webhooks/github", data=body, headers=h)).status == 202
    async with service.services.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(Installation)) == 0  # a worker fills it
        assert (await conn.execute(select(Job.serial_key))).scalar() == "installation:55"


async def test_one_delivery_with_an_out_of_range_id_fails_only_its_own_request(
    client: TestClient, service: Service
) -> None:
    """Finding: installation.id = 1e20 in one signed delivery failed the whole group commit (36-39 of
    40 concurrent deliveries answered 503)."""
    poisoned = signed("pull_request", {**PR, "installation": {"id": 10**20}})
    legit = [signed("pull_request", PR) for _ in range(40)]
    responses = await asyncio.gather(
        *[client.post("/webhooks/github", data=b, headers=h) for b, h in [*legit[:20], poisoned, *legit[20:]]]
    )
    statuses = [r.status for r in responses]
    assert statuses[:20] + statuses[21:] == [202] * 40
    assert statuses[20] == 400
    assert "installation.id" in (await responses[20].json())["message"]
    assert await counts(service) == (40, 40)
