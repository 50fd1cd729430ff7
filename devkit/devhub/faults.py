"""Switchable faults and a request log, so tests can prove a client's retry and back-off behaviour."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal[
    "error", "slow", "rate_limit", "secondary_rate_limit", "unprocessable", "revoke_token", "git_unavailable"
]
KINDS: tuple[str, ...] = (
    "error",
    "slow",
    "rate_limit",
    "secondary_rate_limit",
    "unprocessable",
    "revoke_token",
    "git_unavailable",
)
# Faults of git over HTTP (method "GIT"; matched against the git request's path); every other kind is for
# REST. "git_unavailable": the git server answers `status` (an outage), e.g. path r"/git-receive-pack$".
GIT_KINDS: tuple[str, ...] = ("revoke_token", "git_unavailable")


@dataclass
class Fault:
    kind: FaultKind
    count: int = 1  # how many matching requests it affects
    path: str | None = None  # regex searched in the request path; None matches every path
    method: str | None = None
    status: int = 502  # for "error"
    delay: float = 0.0  # for "slow"
    retry_after: int | None = None  # for "secondary_rate_limit" (and optionally "rate_limit")
    reset_in: int = 60  # seconds until x-ratelimit-reset, for "rate_limit"

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method.upper() == method) and (
            self.path is None or re.search(self.path, path) is not None
        )


@dataclass(frozen=True)
class LoggedRequest:
    at: float  # arrival time (unix seconds), before any injected delay
    method: str
    path: str
    status: int
    fault: str | None


@dataclass
class Faults:
    pending: list[Fault] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; expected one of {', '.join(KINDS)}")
        if fault.count < 1:
            raise ValueError("fault count must be at least 1")
        self.pending.append(fault)
        return fault

    def take(
        self, method: str, path: str, *, git: bool = False, named_only: bool = False, kind: str | None = None
    ) -> Fault | None:
        """The first pending fault for this request, used up by one.

        ``git``: git takes only the git kinds (``revoke_token`` at its credential check, ``git_unavailable``
        in the server's place); every other request only the rest. ``named_only``: git smart HTTP takes the
        REST kinds (an error, a slow answer) only from a fault that names a path: one without a path is
        meant for every REST call, not for git too. ``kind``: only a fault of this kind.
        """
        for fault in self.pending:
            if (fault.kind in GIT_KINDS) != git or (named_only and fault.path is None):
                continue
            if kind in (None, fault.kind) and fault.matches(method, path):
                fault.count -= 1
                if fault.count == 0:
                    self.pending.remove(fault)
                return fault
        return None

    def record(self, at: float, method: str, path: str, status: int, fault: Fault | None) -> None:
        self.log.append(LoggedRequest(at, method, path, status, fault.kind if fault else None))

    def clear(self) -> None:
        self.pending.clear()
        self.log.clear()
