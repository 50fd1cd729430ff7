"""Deliveries are signed and sent exactly as GitHub does, and can be redelivered."""

from __future__ import annotations

import aiohttp
import gidgethub.sansio

from devkit.devhub import RunningDevHub
from devkit.devhub.webhooks import sign
from tests.devkit.devhub.helpers import REPO, install_app
from tests.fixtures.devhub import WEBHOOK_SECRET, WebhookSink


def test_signature_matches_githubs_published_test_vector() -> None:
    sha256, _ = sign("It's a Secret to Everybody", b"Hello, World!")

    assert sha256 == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


async def test_deliveries_carry_hookshot_headers_and_verify_with_gidgethub(
    devhub: RunningDevHub, webhook_sink: WebhookSink
) -> None:
    async with aiohttp.ClientSession() as session:
        installed = await install_app(devhub, session)
    await devhub.hub.ping()
    await devhub.hub.push(REPO, "tune", {"a.txt": "a"})
    await devhub.hub.open_pr(REPO, "tune", user="bob")

    hook = webhook_sink.received[-1]
    event = gidgethub.sansio.Event.from_http(
        {k.lower(): v for k, v in hook.headers.items()}, hook.body, secret=WEBHOOK_SECRET
    )
    assert webhook_sink.events() == [
        ("installation", "created"),
        ("ping", None),
        ("push", None),
        ("pull_request", "opened"),
    ]
    assert event.event == "pull_request" and event.data["pull_request"]["head"]["ref"] == "tune"
    assert hook.headers["User-Agent"].startswith("GitHub-Hookshot/")
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.headers["X-GitHub-Hook-Installation-Target-Type"] == "integration"
    assert hook.headers["X-GitHub-Hook-Installation-Target-ID"] == str(installed.app_id)
    assert hook.headers["X-Hub-Signature"] == sign(WEBHOOK_SECRET, hook.body)[1]
    assert event.data["installation"]["id"] == installed.installation_id
    assert all(d.status == 202 for d in devhub.hub.deliveries)


async def test_redelivery_resends_the_same_bytes_with_the_same_guid(
    devhub: RunningDevHub, webhook_sink: WebhookSink
) -> None:
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)
    await devhub.hub.push(REPO, "tune", {"a.txt": "a"})
    number = await devhub.hub.open_pr(REPO, "tune", user="bob")
    comment_id = await devhub.hub.comment(REPO, number, "/modelship help", "bob")
    original = devhub.hub.deliveries[-1]
    webhook_sink.status = 500

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{devhub.base_url}/_devhub/deliveries/{original.guid}/redeliver") as response,
    ):
        record = await response.json()

    first, again = webhook_sink.received[-2:]
    assert again.body == first.body and again.headers == first.headers
    assert again.headers["X-GitHub-Delivery"] == original.guid
    assert again.payload["comment"]["id"] == comment_id
    assert [a["status"] for a in record["attempts"]] == [202, 500]


async def test_nothing_is_sent_for_repositories_without_the_app(
    devhub: RunningDevHub, webhook_sink: WebhookSink
) -> None:
    await devhub.hub.create_repo("acme/elsewhere", {"a.txt": "a"})
    await devhub.hub.push("acme/elsewhere", "main", {"b.txt": "b"})

    assert webhook_sink.received == []


async def test_unreachable_receiver_is_recorded_not_raised(devhub: RunningDevHub) -> None:
    devhub.hub.sender.url = "http://127.0.0.1:9/nowhere"
    async with aiohttp.ClientSession() as session:
        await install_app(devhub, session)

    attempt = devhub.hub.deliveries[0].attempts[0]
    assert attempt.status is None and attempt.error is not None
