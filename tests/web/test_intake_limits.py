"""Intake under hostile load: `modelship serve` in its own process, attacked over real sockets.

Each scenario reproduces a finding of issue 11 (item 5) against the running service and checks the
bound that now holds: metric labels, slow connections, memory, log volume.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bot.intake import signature_for
from devkit.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "limits-secret"
PR = {
    "action": "opened",
    "number": 1,
    "pull_request": {"number": 1, "head": {"sha": "a" * 40}, "base": {"ref": "main"}},
    "repository": {"full_name": "acme/churn"},
    "installation": {"id": 7},
    "sender": {"login": "alice"},
}


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM:")).split()[1]) / 1024

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _serve(tmp_path: Path, nofile: int | None = None, **settings: str) -> Iterator[Served]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MODELSHIP_WEBHOOK_SECRET": SECRET,
        "MODELSHIP_DATA_DIR": str(tmp_path / "data"),
        "MODELSHIP_PORT": str(port),
        "MODELSHIP_GITHUB_APP_ID": "1",
        "MODELSHIP_GITHUB_PRIVATE_KEY": _rsa_pem(),
        "MODELSHIP_WORKERS": "0",
        "MODELSHIP_SANDBOX": "off",  # intake only: no job runs here
        "MODELSHIP_REPO_ALLOWLIST": "acme/*",
        **{f"MODELSHIP_{k.upper()}": v for k, v in settings.items()},
    }

    def limit_fds() -> None:  # the finding's machine had 1,024 descriptors
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"], env=env, cwd=ROOT, stderr=out, preexec_fn=limit_fds
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"modelship serve did not start: {log.read_text()}")
            time.sleep(0.1)
        yield Served(proc, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path, http_header_timeout_seconds="2")


def signed(event: str = "pull_request", payload: object = PR) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "X-Hub-Signature-256": signature_for(SECRET.encode(), body),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "Content-Type": "application/json",
    }


async def post_signed(session: aiohttp.ClientSession, url: str, event: str = "pull_request") -> int:
    body, headers = signed(event)
    async with session.post(f"{url}/webhooks/github", data=body, headers=headers) as resp:
        return resp.status


async def test_unsigned_requests_with_random_event_names_add_no_metric_series(served: Served) -> None:
    """Finding: each unsigned request's X-GitHub-Event became a label value (200k → a 59 MB /metrics)."""
    forged = "sha256=" + "0" * 64
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as s:

        async def attack(i: int) -> int:
            headers = {"X-GitHub-Event": uuid.uuid4().hex, "Content-Type": "application/json"}
            if i % 2:
                headers["X-Hub-Signature-256"] = forged  # well-formed but wrong: the body is read and checked
            async with s.post(f"{served.url}/webhooks/github", data=b"{}", headers=headers) as r:
                return r.status

        statuses: list[int] = []
        for start in range(0, 10_000, 500):
            statuses += await asyncio.gather(*[attack(i) for i in range(start, start + 500)])
        assert statuses == [401] * 10_000
        assert await post_signed(s, served.url, "pull_request") == 202
        assert await post_signed(s, served.url, "made_up_event") == 200  # signed, but not a GitHub event
        async with s.get(f"{served.url}/metrics") as r:
            text = await r.text()
    series = [ln for ln in text.splitlines() if ln.startswith("modelship_webhook_deliveries_total{")]
    assert len(series) <= 4, series
    assert 'event="unverified",outcome="rejected:401"} 10000.0' in text
    assert 'event="pull_request",outcome="queued"} 1.0' in text
    assert 'event="other",outcome="ignored"} 1.0' in text
    assert len(text) < 20_000


async def _slow_client(port: int, hold: float) -> bool:
    """Send a request head one byte at a time and never finish it; True if the server closed on us."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            writer.write(b"X")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 0.5) == b"":
                    return True
            except TimeoutError:
                continue
        return False
    except (ConnectionError, OSError):
        return True
    finally:
        writer.close()


async def test_slow_header_connections_are_closed_while_signed_deliveries_keep_being_accepted(
    tmp_path: Path,
) -> None:
    """Finding: 1,100 slow partial-header connections (1,024 fds) made every delivery time out, and
    asyncio logged "socket.accept() out of system resource" 648,063 times."""
    for served in _serve(tmp_path, nofile=1024, http_header_timeout_seconds="3"):
        slow = [asyncio.create_task(_slow_client(served.port, hold=12)) for _ in range(1100)]
        await asyncio.sleep(2)  # every slow connection is open (or trying) before the deliveries start
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout) as s:
            statuses: list[object] = []
            for _ in range(20):
                try:
                    statuses.append(await post_signed(s, served.url))
                except (TimeoutError, aiohttp.ClientError) as exc:
                    statuses.append(type(exc).__name__)
                await asyncio.sleep(0.1)
            fds_under_attack = served.open_fds()
        closed = await asyncio.gather(*slow)
        assert statuses == [202] * 20
        assert all(closed), f"{closed.count(False)} slow connections were never closed by the server"
        assert fds_under_attack < 1024 - 64
        spam = [ln for ln in served.log_lines() if "out of system resource" in ln]
        assert len(spam) <= 2, spam[:3]


async def _send_body(port: int, body: memoryview, signature: str) -> tuple[int, str | None]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-GitHub-Event: push\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\nX-Hub-Signature-256: {signature}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode())
    # Watch for an early answer while sending, as HTTP clients should: a refused body is not drained.
    answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
    try:
        for i in range(0, len(body), 256 * 1024):
            if answer.done():
                break
            writer.write(body[i : i + 256 * 1024])
            await writer.drain()
    except ConnectionError:
        pass
    response = await answer
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    retry_after = next(
        (ln.split(b":", 1)[1].strip().decode() for ln in rest.split(b"\r\n") if ln.lower().startswith(b"retry-after")),
        None,
    )
    return int(status_line.split()[1]), retry_after


async def test_40_concurrent_24_mb_unsigned_bodies_keep_memory_bounded(served: Served) -> None:
    """Finding: bodies were read whole before the signature check, with no cap: 1.65 GB RSS."""
    body = memoryview(b'{"pad": "' + b"x" * (24 * 1024 * 1024) + b'"}')
    forged = "sha256=" + "f" * 64
    before = served.peak_rss_mb()
    async with aiohttp.ClientSession() as s:
        attack = asyncio.gather(*[_send_body(served.port, body, forged) for _ in range(40)])
        await asyncio.sleep(0.5)
        during = await post_signed(s, served.url)  # small deliveries keep their share of the budget
        results = await attack
    grown = served.peak_rss_mb() - before
    print(f"peak RSS of the server: {before:.0f} MB before, +{grown:.0f} MB under the attack")
    assert grown < 160, f"peak RSS grew by {grown:.0f} MB"  # the large-body share is 75 MiB
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {401, 503} and statuses.count(503) > 0 and statuses.count(401) > 0, statuses
    assert all(retry == "1" for status, retry in results if status == 503)
    assert during == 202


async def test_a_malformed_request_logs_one_warning_line_without_a_traceback(served: Served) -> None:
    """Finding: each malformed request logged an ERROR with a ~890-byte traceback."""
    garbage = [
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nthis header has no colon\r\n\r\n",
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: twelve\r\n\r\n",
    ]
    for raw in garbage:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(raw)
        answer = await reader.read()
        writer.close()
        assert answer.split(b" ")[1] == b"400", answer
    await asyncio.sleep(0.3)
    lines = [json.loads(ln) for ln in served.log_lines() if ln.startswith("{")]
    refused = [doc for doc in lines if doc["logger"] == "aiohttp.server"]
    assert len(refused) == len(garbage), refused
    for doc in refused:
        assert doc["level"] == "warning" and "exc" not in doc, doc
        assert "malformed request refused" in doc["msg"] and "\n" not in doc["msg"]
