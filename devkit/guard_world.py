"""A small guarded world in devhub: a model repository with two shipped versions and their deploy repository.

``acme/models`` holds the ``.modelship.yml`` (guard on ``production``) and two merged PRs (#1 shipped
V1, #2 shipped V2); ``acme/deploy`` holds the production values, V1 then V2 in its history; the
``deployments`` table says V1 ran healthy and V2 runs now (the deploy integration writes these rows
on merge; here they are inserted as it would).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import Service
from bot.deploy.manifest import ModelRef, current_ref, render_values
from bot.store.base import utcnow
from bot.store.review_models import Deployment
from devkit.devhub import DevHub, RunningDevHub
from devkit.harness import bot_running

V1 = hashlib.sha1(b"iris v1").hexdigest()
V2 = hashlib.sha1(b"iris v2").hexdigest()
MODELS, DEPLOY = "acme/models", "acme/deploy"
VALUES = "environments/production/iris/values.yaml"
BRANCH = "modelship/rollback/production/iris"
TABLE: Any = Deployment.__table__


def config(*, auto_merge: bool = True, failure_limit: int = 3, error_limit: int = 3, interval: str = "1s") -> str:
    return f"""\
version: 1
models:
  - name: iris
    path: models/iris.onnx
    task: classification
    dataset: {{path: data/eval.csv, target: label}}
environments:
  production:
    auto: true
    guard:
      interval: {interval}
      initial_delay: 0s
      failure_limit: {failure_limit}
      consecutive_error_limit: {error_limit}
      auto_merge: {str(auto_merge).lower()}
      checks:
        - {{template: error_rate, max: 0.02, window: 5s}}
deploy: {{repository: {DEPLOY}}}
"""


def ref(version: str, sequence: int, source_pr: int) -> ModelRef:
    return ModelRef(
        name="iris",
        repository=MODELS,
        revision=version,
        path="models/iris.onnx",
        sha256=hashlib.sha256(version.encode()).hexdigest(),
        sequence=sequence,
        source_pr=source_pr,
    )


REF1, REF2 = ref(V1, 1000, 1), ref(V2, 2000, 2)


@dataclass
class World:
    hub: DevHub
    app_id: int
    key: str
    v1_row: int
    v2_row: int

    def rollback_pulls(self) -> list[Any]:
        return [p for p in self.hub.pulls.get(DEPLOY, {}).values() if p.head_ref == BRANCH]

    def comments_on(self, number: int) -> list[str]:
        return [c.body for c in self.hub.comments.values() if c.repo == MODELS and c.issue_number == number]

    def rollback_notes(self, number: int) -> list[str]:
        """The guard's comments on a source PR (the deploy integration keeps its own sticky there)."""
        return [body for body in self.comments_on(number) if body.startswith("**Modelship rolled back")]

    async def deployed_values(self) -> ModelRef | None:
        data = await asyncio.to_thread(self.hub.git.read, DEPLOY, "refs/heads/main", VALUES)
        return current_ref(data.decode() if data is not None else None)


async def create_app(hub: DevHub) -> tuple[int, str]:
    return await hub.create_app(slug="modelship")


async def build_world(hub: DevHub, engine: AsyncEngine, app: tuple[int, str], *, guard_config: str) -> World:
    """Repositories, history, installation and deployments rows (the bot, if running, gets the webhooks)."""
    await hub.create_repo(MODELS, {".modelship.yml": guard_config, "README.md": "# iris\n"})
    for n, version in ((1, "v1"), (2, "v2")):
        await hub.push(MODELS, f"ship-{version}", {f"notes/{version}.md": f"{version}\n"}, message=f"ship {version}")
        number = await hub.open_pr(MODELS, f"ship-{version}", title=f"Ship iris {version}")
        assert number == n
        await hub.merge_pr(MODELS, number)
    await hub.create_repo(DEPLOY, {VALUES: render_values(None, REF1, "production")})
    await hub.push(DEPLOY, "main", {VALUES: render_values(render_values(None, REF1, "production"), REF2)}, "deploy v2")
    await hub.install("acme", [MODELS, DEPLOY], app[0])
    now = utcnow()
    async with engine.begin() as conn:
        ids = []
        for version, state, health, pr in ((V1, "superseded", "healthy", 1), (V2, "deployed", "unknown", 2)):
            result = await conn.execute(
                TABLE.insert().values(
                    repo=MODELS,
                    environment="production",
                    model="iris",
                    version=version,
                    source_pr=pr,
                    deploy_repo=DEPLOY,
                    variant="onnx",
                    sha256=hashlib.sha256(version.encode()).hexdigest(),
                    actor="alice",
                    state=state,
                    health=health,
                    created_at=now,
                )
            )
            ids.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
    return World(hub, app[0], app[1], ids[0], ids[1])


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(TABLE).order_by(TABLE.c.id)))


@asynccontextmanager
async def running_bot(
    devhub: RunningDevHub, data_dir: Path, app: tuple[int, str], **overrides: Any
) -> AsyncIterator[Service]:
    """The real service for an existing app (so a restarted bot is the same app, on the same database)."""
    async with bot_running(devhub, data_dir.parent, app=app, data_dir=data_dir, **overrides) as running:
        yield running.service


async def wait_until(check: Any, timeout: float, step: float = 0.1) -> float:
    """Await ``check()`` (sync or async) until truthy; seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return time.monotonic() - started
        await asyncio.sleep(step)
    raise AssertionError(f"not true within {timeout:g}s: {check}")
