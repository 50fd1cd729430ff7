"""Git over HTTP(S) with an installation token: the one transport the review checkout and gitops share.

The URL is the repository's ``clone_url`` as GitHub returns it, with no credentials in it. The token
travels only in an ``Authorization`` header that git reads from its environment
(``GIT_CONFIG_COUNT`` / ``http.extraHeader``), so it never appears in a process's argv (``ps``,
``/proc/*/cmdline``), in a clone's ``.git/config``, or in git's own messages; every message made here
is redacted as well.

An installation token can expire or be revoked between minting and use: ``with_token`` runs a git
operation, and when git says the credentials were refused it forgets the token, mints a new one and
runs the operation once more.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from bot.github.redact import redact as redact_tokens

Failure = Literal["rejected", "unreachable", "auth", "other"]
T = TypeVar("T")

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_AUTH_FAILURE = (
    "authentication failed",
    "invalid username or token",
    "error: 401",
    "error: 403",
    "read username",
    "could not read password",
)
_UNREACHABLE = (
    "could not resolve host",
    "failed to connect",
    "couldn't connect",
    "connection refused",
    "connection reset",
    "unable to access",
    "timed out",
    "did not complete",
    "rpc failed",
    "early eof",
    "the remote end hung up",
    "returned error: 5",
    "returned error: 429",
    "empty reply",
)
# Never prompt for a password and never ask a credential helper: the header is the only credential.
NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": ""}


class GitAuthError(Exception):
    """The git host refused the credentials; the message carries none."""


class TokenSource(Protocol):
    """An installation's token: ``get`` a current one, ``invalidate`` one the git host refused."""

    async def get(self) -> str: ...

    def invalidate(self) -> None: ...


def credential_free(url: str) -> str:
    """``url`` without userinfo; refuses what git would not reach over HTTP(S)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) git URL: {redact(url)!r}")
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


@dataclass(frozen=True)
class GitCredentials:
    """The environment that authenticates one git command, and the strings to redact from its output."""

    env: dict[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    # The same credential as an ``Authorization`` header value, for the Git LFS batch API (contract.lfs).
    authorization: str | None = field(default=None, repr=False)

    def redact(self, text: str) -> str:
        return redact(text, *self.secrets)


ANONYMOUS = GitCredentials({**NO_PROMPT}, ())


def credentials(token: str | None) -> GitCredentials:
    """Git sends ``x-access-token:<token>`` as HTTP Basic auth with its first request (as GitHub takes
    app tokens), from a config entry in the environment: no 401 round trip, nothing in argv or on disk.
    """
    if not token:
        return ANONYMOUS
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    env = {
        **NO_PROMPT,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }
    return GitCredentials(env, (token, quote(token, safe=""), basic), f"Basic {basic}")


def redact(text: str, *secrets: str) -> str:
    """Remove userinfo from URLs, GitHub-shaped tokens and any known secret from ``text``."""
    text = _USERINFO.sub("***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact_tokens(text)


def classify(stderr: str) -> Failure:
    """Why a git network command (fetch, push) failed, from its stderr: the one reading of git's words,
    for the review checkout and gitops alike (``bot.errors.git_failure`` says what each means for a job)."""
    text = stderr.lower()
    if "[rejected]" in text or "fetch first" in text or "non-fast-forward" in text:
        return "rejected"
    if "[remote rejected]" in text and any(
        s in text for s in ("failed to update ref", "cannot lock ref", "incorrect old value", "lock")
    ):
        return "rejected"  # lost the race between reading the refs and updating them
    if any(s in text for s in _AUTH_FAILURE):
        return "auth"
    if "returned error: 404" in text or "not found" in text:
        return "other"  # a missing repository or ref stays missing: not worth a retry ("unable to access" too)
    if any(s in text for s in _UNREACHABLE):
        return "unreachable"
    return "other"


async def with_token(source: TokenSource | None, operation: Callable[[GitCredentials], Awaitable[T]]) -> T:
    """Run ``operation`` with the current token; once more with a new one if git refused it."""
    if source is None:
        return await operation(ANONYMOUS)
    try:
        return await operation(credentials(await source.get()))
    except GitAuthError:
        # Expired or revoked between minting and use: the cached token is worthless, mint another.
        source.invalidate()
        return await operation(credentials(await source.get()))


@dataclass(frozen=True)
class StaticToken:
    """A fixed token (the CLI, tests): nothing to renew, so a refusal is final."""

    value: str = field(repr=False)

    async def get(self) -> str:
        return self.value

    def invalidate(self) -> None:
        pass
