"""Handlers without the whole world, the way python/bedevere tests its own: a FakeGH whose only I/O seam
(``_request``) records each call and answers from a script, real webhook payloads, the real gidgethub router
(``bot.handlers.router``) and a real ``Services`` on a migrated temporary SQLite database."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from gidgethub.abc import GitHubAPI
from gidgethub.sansio import Event

from bot.app import commands
from bot.chatops.ratelimit import RateLimiter
from bot.context import GitHubAppPort, Services
from bot.deploy.chart import ModelServerChart
from bot.deploy.service import DeployService
from bot.handlers import handles, router
from bot.settings import SOURCE_ROOT
from bot.store.db import make_engine, migrate
from bot.store.queue import JobQueue

APP_SLUG = "modelship"


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # with the query string, without the API root
    body: Any


class FakeGH(GitHubAPI):
    """A GitHubAPI whose requests never leave the process: ``answers[(method, path)]`` is the JSON body
    GitHub would send; an unscripted GET is a 404, an unscripted write a 201 naming the new resource's id."""

    def __init__(self, answers: Mapping[tuple[str, str], Any] | None = None) -> None:
        super().__init__("modelship-tests", oauth_token="not-a-real-token")
        self.answers = dict(answers or {})
        self.calls: list[Call] = []

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.calls.append(Call(method, path, json.loads(body) if body else None))
        reply = {"content-type": "application/json; charset=utf-8"}
        if (method, path) in self.answers:
            return 200, reply, json.dumps(self.answers[(method, path)]).encode()
        if method == "GET":
            return 404, reply, json.dumps({"message": "Not Found"}).encode()
        return 201, reply, json.dumps({"id": 1000 + len(self.calls)}).encode()

    async def sleep(self, seconds: float) -> None:
        raise AssertionError(f"a handler slept {seconds}s: no handler should wait on GitHub in these tests")

    def paths(self, method: str | None = None) -> list[str]:
        return [c.path for c in self.calls if method is None or c.method == method]


def file_answer(text: str) -> dict[str, Any]:
    """What GET /repos/{repo}/contents/{path} answers for a small file."""
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(text),
        "content": base64.b64encode(text.encode()).decode(),
    }


class FakeApp:
    """The GitHub App client (bot.context.GitHubAppPort): every installation's client is the one FakeGH,
    so a test sees all GitHub calls in one list; git is never reached from a handler."""

    def __init__(self) -> None:
        self.gh = FakeGH()
        self.installations: list[int] = []

    async def for_installation(self, installation_id: int) -> GitHubAPI:
        self.installations.append(installation_id)
        return self.gh

    def git_token(self, installation_id: int) -> Any:
        raise AssertionError("a handler asked for a git token: handlers only enqueue and record")

    async def clone_url(self, full_name: str, installation_id: int) -> str:
        raise AssertionError("a handler asked for a clone URL: handlers only enqueue and record")

    def remember_repository(self, repository: object) -> None:
        pass


@pytest.fixture
def app() -> FakeApp:
    return FakeApp()


@pytest.fixture
async def services(tmp_path: Path, app: FakeApp) -> AsyncIterator[Services]:
    """The collaborators bot.app builds for `serve`, minus the network: a migrated SQLite database, the
    command registry and rate limiter of chat-ops, the DeployService on the repository's chart."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'modelship.db'}")
    await migrate(engine)
    built = Services(engine, JobQueue(engine), cast(GitHubAppPort, app), APP_SLUG, tmp_path)
    built.commands, built.status_sections = commands()
    built.limiter = RateLimiter()
    built.deploy = DeployService(
        built, chart=ModelServerChart.load(SOURCE_ROOT / "charts"), web_url="https://github.com"
    )
    yield built
    await engine.dispose()


async def deliver(event: str, payload: dict[str, Any], gh: FakeGH | None, services: Services) -> None:
    """Dispatch as bot.app's webhook runner does; first check bot.handlers.handles agrees with the router."""
    sansio = Event(payload, event=event, delivery_id="d-1")
    assert handles(event, payload) == bool(router.fetch(sansio))
    await router.dispatch(sansio, gh, services)


async def jobs(services: Services) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, serial key, state, payload) of every job, oldest first."""
    from sqlalchemy import select

    from bot.store.models import Job

    async with services.engine.connect() as conn:
        rows = await conn.execute(select(Job.kind, Job.serial_key, Job.state, Job.payload).order_by(Job.id))
        return [(r.kind, r.serial_key, r.state, dict(r.payload or {})) for r in rows]
