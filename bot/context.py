"""The collaborators a handler, job runner or chat-ops command receives, and what a feature plugs in.

The composition root (bot.app) builds one ``Services`` and fills its typed feature fields; features
import this module, never the root, so there is no import cycle between the root and the features.
The feature types are named for the type checker only: this module imports no feature.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gidgethub.abc import GitHubAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.github.git import TokenSource
from bot.store.queue import JobQueue
from bot.worker import FinalFailureHook, JobRunner

if TYPE_CHECKING:
    from bot.chatops.ratelimit import RateLimiter
    from bot.chatops.service import CommandService, StatusSection
    from bot.deploy.service import DeployService
    from bot.guard.service import Guard
    from bot.review.service import SandboxConfig

T = TypeVar("T")


class GitHubAppPort(Protocol):
    """What the service needs from the GitHub App client (bot.github.app.GitHubApp)."""

    async def for_installation(self, installation_id: int) -> GitHubAPI: ...

    def git_token(self, installation_id: int) -> TokenSource: ...

    async def clone_url(self, full_name: str, installation_id: int) -> str: ...

    def remember_repository(self, repository: object) -> None: ...


@dataclass
class Feature:
    """What a feature package plugs into the service: job runners, their final-failure hooks, background
    loops, clean-up."""

    runners: dict[str, JobRunner] = field(default_factory=dict)
    # Per job kind: how users hear that a job of that kind ended without a result (bot.worker.FinalFailureHook).
    on_final_failure: dict[str, FinalFailureHook] = field(default_factory=dict)
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


ROLLOUT_PHASES = ("committed", "rolling_out", "live", "failed")


@dataclass(frozen=True)
class DeployTransition:
    """One step of a deploy towards serving: ``committed`` (the values are in the deploy repository), then
    ``rolling_out`` (replicas are changing), then ``live`` (every ready replica serves the new file) or
    ``failed`` (not live by ``environments.<env>.progress_deadline``; ``reason`` says what the bot saw).

    bot.deploy.live emits one per phase a deployment reaches (``key`` is unique across restarts and
    replicas), to every DeployListener in ``Services.deploy_listeners``.
    """

    deployment_id: int  # the deployments row (bot.store.deployments)
    phase: str  # one of ROLLOUT_PHASES
    repo: str  # the model repository
    environment: str
    model: str
    version: str  # the model repository revision
    variant: str
    sha256: str  # the model file the environment must serve
    deploy_repo: str
    deploy_commit: str | None
    source_pr: int | None  # the model-repository PR that shipped the version, if any
    at: datetime  # when the phase was reached
    committed_at: datetime | None
    live_at: datetime | None = None
    reason: str = ""  # failed: what the bot saw; rolling_out: how far it got

    @property
    def key(self) -> str:
        """One event per (deployment, phase): what an idempotent consumer dedupes on."""
        return f"deploy:{self.deployment_id}:{self.phase}"


class DeployListener(Protocol):
    """Hears every DeployTransition, inside the transaction that records it: write rows there (an outbox),
    never call out — the transition and what the listener writes commit together or not at all, so a
    crash or a second replica can neither lose nor repeat an event. An exception rolls the transition back
    (it is tried again next round)."""

    async def __call__(self, conn: AsyncConnection, event: DeployTransition) -> None: ...


class EventSink(Protocol):
    """Takes an event to tell people about (bot.config.notify_events names the kinds) inside the caller's transaction:
    it writes an outbox row and queues its delivery there, never calls out, so the event commits with what
    it reports. ``key`` is unique per event: the same key emitted again (a retried job, another replica) is
    one notification."""

    async def __call__(self, conn: AsyncConnection, kind: str, key: str, data: Mapping[str, Any]) -> None: ...


class FeatureUnavailable(LookupError):
    """A handler or command needs a feature this service was built without (a wiring bug, not bad input)."""


def need(value: T | None, feature: str) -> T:
    """``value``, or a FeatureUnavailable naming the feature bot.app did not build."""
    if value is None:
        raise FeatureUnavailable(f"the {feature} feature is not set up on this service (bot.app builds it)")
    return value


@dataclass
class Services:
    engine: AsyncEngine
    queue: JobQueue
    github: GitHubAppPort
    app_slug: str
    data_dir: Path
    # MODELSHIP_DEPLOY_ROOT, normalised: every reader of `.modelship.yml` checks deploy.path_template against it.
    deploy_root: str = "environments/"
    # Filled in by bot.app once each feature is built (None / empty: not part of this service).
    commands: Mapping[str, CommandService] = field(default_factory=dict)  # chat-ops: command name -> service
    status_sections: Sequence[StatusSection] = ()  # extra sections of `/modelship status`, in order
    limiter: RateLimiter | None = None  # the one chat-ops rate limiter, shared by all comments
    sandbox: SandboxConfig | None = None  # the sandbox reviews run in (bot.doctor probes it)
    deploy: DeployService | None = None
    guard: Guard | None = None
    # Told of every rollout transition of every deployment (bot.deploy.live), in the recording transaction.
    deploy_listeners: list[DeployListener] = field(default_factory=list)
    notify: EventSink | None = None  # bot.notify, when the operator configured a notification sink

    async def emit(self, conn: AsyncConnection, kind: str, key: str, data: Mapping[str, Any]) -> None:
        """Tell the notification outbox (nothing when no sink is configured), in ``conn``'s transaction."""
        if self.notify is not None:
            await self.notify(conn, kind, key, data)

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"
