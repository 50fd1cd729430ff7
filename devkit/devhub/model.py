"""devhub's in-memory state: plain records, rendered to GitHub's JSON shapes by `render`."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
_ids = itertools.count(1000)


def next_id() -> int:
    return next(_ids)


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass
class Account:
    login: str
    id: int
    type: str = "User"  # User | Organization | Bot


@dataclass
class App:
    id: int
    slug: str
    name: str
    owner: Account
    public_key_pem: bytes
    client_id: str
    created_at: float = field(default_factory=time.time)
    # The user-authorization web flow's secret (the App settings page's "client secret").
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))


@dataclass
class Installation:
    id: int
    app_id: int
    account: Account
    repos: set[str]  # full names
    created_at: float = field(default_factory=time.time)


@dataclass
class Token:
    value: str
    installation_id: int
    expires_at: float


@dataclass
class Repo:
    id: int
    owner: Account
    name: str
    default_branch: str
    private: bool
    created_at: float = field(default_factory=time.time)
    pushed_at: float = field(default_factory=time.time)
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> permission

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class Pull:
    id: int
    number: int
    title: str
    body: str | None
    user: Account
    head_repo: str  # full name (differs from the base repo for forks)
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    draft: bool
    state: str = "open"
    merged: bool = False
    merge_commit_sha: str | None = None
    merged_by: Account | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    merged_at: float | None = None
    # GitHub computes mergeability in the background after each change: the first read says null.
    mergeable_computed: bool = False


@dataclass
class Comment:
    id: int
    repo: str
    issue_number: int
    user: Account
    body: str
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class Reaction:
    id: int
    user: Account
    content: str
    created_at: float = field(default_factory=time.time)


@dataclass
class Review:
    id: int
    repo: str
    pull_number: int
    user: Account
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED
    body: str
    commit_id: str
    submitted_at: float = field(default_factory=time.time)


@dataclass
class CheckRun:
    id: int
    repo: str
    app_id: int
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    details_url: str | None = None
    external_id: str | None = None
    started_at: float | None = field(default_factory=time.time)
    completed_at: float | None = None
    output: dict[str, Any] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Status:
    id: int
    repo: str
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: Account
    created_at: float = field(default_factory=time.time)


@dataclass
class Deployment:
    id: int
    repo: str
    sha: str
    ref: str
    task: str
    environment: str
    payload: Any
    description: str | None
    creator: Account
    transient_environment: bool = False
    production_environment: bool = False
    created_at: float = field(default_factory=time.time)
    statuses: list[DeploymentStatus] = field(default_factory=list)


@dataclass
class DeploymentStatus:
    id: int
    state: str
    description: str
    environment: str
    target_url: str
    log_url: str
    environment_url: str
    creator: Account
    created_at: float = field(default_factory=time.time)


@dataclass
class OAuthCode:
    """A code the authorize page handed to an app's redirect URI; one exchange, ten minutes (as GitHub)."""

    app_id: int
    login: str
    redirect_uri: str
    expires_at: float
