"""The one git transport: credential-free URLs, the token in an env header, one renewal on refusal."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from bot.github.git import GitAuthError, GitCredentials, classify, credential_free, credentials, redact, with_token

TOKEN = "ghs_0123456789abcdefghijABCDEFGHIJ0123"


def test_the_token_is_a_header_from_the_environment_and_nothing_else() -> None:
    creds = credentials(TOKEN)
    header = creds.env["GIT_CONFIG_VALUE_0"]
    assert (creds.env["GIT_CONFIG_COUNT"], creds.env["GIT_CONFIG_KEY_0"]) == ("1", "http.extraHeader")
    assert base64.b64decode(header.removeprefix("Authorization: Basic ")).decode() == f"x-access-token:{TOKEN}"
    assert creds.env["GIT_TERMINAL_PROMPT"] == "0"
    assert TOKEN not in repr(creds)
    assert credentials(None).env.get("GIT_CONFIG_COUNT") is None


def test_git_really_sends_the_header_and_keeps_it_out_of_the_repository_config(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **credentials(TOKEN).env}
    seen = subprocess.run(
        ["git", "config", "--get", "http.extraHeader"], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert seen.startswith("Authorization: Basic ")
    assert TOKEN not in (repo / ".git" / "config").read_text() and "Basic" not in (repo / ".git" / "config").read_text()


def test_urls_lose_their_credentials_and_only_http_is_taken() -> None:
    assert (
        credential_free("https://x-access-token:ghs_x@github.com/acme/deploy.git")
        == "https://github.com/acme/deploy.git"
    )
    assert credential_free("http://127.0.0.1:8300/git/acme/m.git") == "http://127.0.0.1:8300/git/acme/m.git"
    for bad in ("git@github.com:acme/m.git", "file:///etc/passwd", "ext::sh -c evil"):
        with pytest.raises(ValueError, match="not an http"):
            credential_free(bad)


def test_messages_lose_the_token_in_every_form() -> None:
    creds = credentials("tok/en")
    basic = creds.env["GIT_CONFIG_VALUE_0"].split()[-1]
    text = f"fatal: https://x-access-token:tok%2Fen@h/r.git tok/en {basic} {TOKEN}"
    cleaned = creds.redact(text)
    assert "tok/en" not in cleaned and "tok%2Fen" not in cleaned and basic not in cleaned and TOKEN not in cleaned
    assert redact("https://user:pw@h/r.git") == "https://***@h/r.git"


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("remote: Invalid username or token.\nfatal: Authentication failed for 'http://h/r.git/'", "auth"),
        ("fatal: could not read Username for 'http://h': terminal prompts disabled", "auth"),
        ("fatal: unable to access 'http://h/r.git/': The requested URL returned error: 403", "auth"),
        ("fatal: unable to access 'http://h/r.git/': The requested URL returned error: 502", "unreachable"),
        ("fatal: unable to access 'http://127.0.0.1:9/': Failed to connect", "unreachable"),
        (" ! [rejected]        HEAD -> main (fetch first)", "rejected"),
        ("fatal: couldn't find remote ref refs/pull/9/head", "other"),
        ("fatal: unable to access 'http://h/r.git/': The requested URL returned error: 429", "unreachable"),
        ("error: RPC failed; curl 56 Recv failure: Connection reset by peer", "unreachable"),
        ("fatal: the remote end hung up unexpectedly", "unreachable"),
        # a 404 is permanent although git says "unable to access": the repository or ref is missing
        ("fatal: unable to access 'http://h/r.git/': The requested URL returned error: 404", "other"),
        ("remote: Repository not found.\nfatal: repository 'http://h/r.git/' not found", "other"),
    ],
)
def test_a_failure_is_classified_by_what_git_said(stderr: str, kind: str) -> None:
    assert classify(stderr) == kind


class Tokens:
    """A new token after each invalidation, like InstallationTokens minting one."""

    def __init__(self) -> None:
        self.invalidated = 0

    async def get(self) -> str:
        return f"ghs_token_number_{self.invalidated:04d}_padding"

    def invalidate(self) -> None:
        self.invalidated += 1


async def test_a_refused_token_is_replaced_once_and_a_second_refusal_is_final() -> None:
    tokens, used = Tokens(), []

    async def refused_once(creds: GitCredentials) -> str:
        used.append(creds.secrets[0])
        if len(used) == 1:
            raise GitAuthError("Authentication failed")
        return "fetched"

    assert await with_token(tokens, refused_once) == "fetched"
    assert tokens.invalidated == 1 and len(set(used)) == 2

    async def always_refused(creds: GitCredentials) -> str:
        raise GitAuthError("Authentication failed")

    with pytest.raises(GitAuthError):
        await with_token(Tokens(), always_refused)
