"""A scripted stand-in for GitHub (a real aiohttp server) and a clock that only moves when slept on."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

APP_ID = 4242
_TOKEN_PATH = re.compile(r"/app/installations/(\d+)/access_tokens$")


class FakeTime:
    """Injected clock/sleep: sleeping advances the clock instantly and records the wait."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # real seconds, to provoke client timeouts
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeGitHub:
    """Answers scripted replies per path (then 200), and exchanges valid app JWTs for tokens."""

    def __init__(self, public_key_pem: str, clock: Callable[[], float]) -> None:
        self.public_key_pem = public_key_pem
        self.clock = clock
        self.script: dict[str, list[Reply]] = defaultdict(list)
        self.seen: list[Seen] = []
        self.token_lifetime = 3600.0
        self.issued: list[tuple[int, str]] = []
        self.token_gates: dict[int, asyncio.Event] = {}  # hold a token fetch until the event is set
        self._serial = itertools.count(1)
        self.url = ""

    def queue(self, path: str, *replies: Reply) -> None:
        self.script[path].extend(replies)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(request.method, request.path_qs, dict(request.headers)))
        if self.script[request.path]:
            reply = self.script[request.path].pop(0)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.drop:
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        token_path = _TOKEN_PATH.search(request.path)
        if token_path and request.method == "POST":
            return await self._issue_token(request, int(token_path.group(1)))
        return web.json_response({"path": request.path, "auth": request.headers.get("Authorization")})

    async def _issue_token(self, request: web.Request, installation: int) -> web.Response:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(
                credential,
                self.public_key_pem,
                algorithms=["RS256"],
                options={"verify_iat": False, "verify_exp": False},
            )
        except jwt.PyJWTError:
            return web.json_response({"message": "A JSON web token could not be decoded"}, status=401)
        if scheme.lower() != "bearer" or claims["iss"] != str(APP_ID):
            return web.json_response({"message": "Bad credentials"}, status=401)
        if installation in self.token_gates:
            await self.token_gates[installation].wait()
        token = f"ghs_{installation}x{next(self._serial):04d}" + "S" * 30
        self.issued.append((installation, token))
        expires = datetime.datetime.fromtimestamp(self.clock() + self.token_lifetime, datetime.UTC)
        return web.json_response({"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}, status=201)


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def public_key_pem(private_key_pem: str) -> str:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def github(public_key_pem: str, fake_time: FakeTime) -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub(public_key_pem, fake_time.clock)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
