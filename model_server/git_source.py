"""Fetch one model file from its git repository at a pinned commit, Git LFS resolved, sha256 checked.

The chart's ``git`` source for teams without a registry (``model.artifact`` empty): the serving
container fetches ``model.path`` at ``model.revision`` itself (no init container, no third-party
image), the way ``--artifact`` does. The revision must be a full commit SHA (a branch or tag could
move); the token comes from a file (a mounted Secret) and travels only in an ``Authorization`` header
from git's environment (never argv, never the URL, never on disk); an LFS pointer is replaced by its
object, checked against its oid, before the file's sha256 is compared with the pinned one. Imports no
``bot``: this runs in the model server's pod.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from contract import lfs
from model_server.model import sha256_of

COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")  # sha1 or sha256 object format
_GIT_TIMEOUT_S = 600


class GitSourceError(Exception):
    """The model could not be fetched or is not the pinned bytes; the message carries no credentials."""


def default_url(repository: str) -> str:
    """GitHub's documented clone URL of ``owner/name`` (what the repository's ``clone_url`` says)."""
    return f"https://github.com/{repository}.git"


def _git_env(token: str | None) -> tuple[dict[str, str], str | None]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",  # no user config: no filters, no credential helpers
        "LANG": "C",
    }
    if not token:
        return env, None
    authorization = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    env |= {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: {authorization}",
    }
    return env, authorization


def _redact(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
        text = text.replace(base64.b64encode(f"x-access-token:{token}".encode()).decode(), "***")
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)


def fetch_from_git(url: str, revision: str, path: str, file_sha256: str, dest: Path, token: str | None = None) -> Path:
    """Write ``path`` at commit ``revision`` of ``url`` into ``dest``; refuse anything but ``file_sha256``."""
    if not COMMIT.match(revision):
        raise GitSourceError(f"model.revision must be a full commit SHA (40 or 64 hex digits), not {revision!r}")
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.name:
        raise GitSourceError(f"model.path must be a path inside the repository, not {path!r}")
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise GitSourceError("the git URL must not carry credentials: give the token in a file (a Secret)")
    env, authorization = _git_env(token)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".git-") as tmp:
        work = Path(tmp)
        gitdir = work / "repo.git"

        def git(*args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                ["git", "--git-dir", str(gitdir), *args],
                env=env,
                capture_output=True,
                timeout=_GIT_TIMEOUT_S,
                check=False,
            )

        subprocess.run(["git", "init", "--quiet", "--bare", str(gitdir)], env=env, capture_output=True, check=True)
        fetched = git("fetch", "--quiet", "--depth=1", "--no-tags", url, revision)
        if fetched.returncode != 0:
            reason = _redact(fetched.stderr.decode(errors="replace").strip(), token).replace(url, "<repository>")
            raise GitSourceError(f"git fetch of {revision[:12]} from {_redact(url, token)} failed: {reason[-500:]}")
        target = work / "model"
        with target.open("wb") as out:
            shown = subprocess.run(
                ["git", "--git-dir", str(gitdir), "cat-file", "blob", f"{revision}:{path}"],
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                timeout=_GIT_TIMEOUT_S,
                check=False,
            )
        if shown.returncode != 0:
            raise GitSourceError(f"`{path}` is not a file at {revision[:12]}")
        pointer = lfs.read_pointer(target) if target.stat().st_size < lfs.POINTER_MAX_BYTES else None
        if pointer is not None:
            try:
                target = lfs.LfsServer(url, authorization).fetch({path: pointer}, work)[path]
            except lfs.LfsError as exc:
                raise GitSourceError(f"{exc} (at {revision[:12]})") from None
        digest = sha256_of(target)
        if digest != file_sha256:
            raise GitSourceError(
                f"`{path}` at {revision[:12]} has sha256 {digest}, not the pinned {file_sha256} (model.sha256); "
                "a variant other than the committed file is served from a registry (model.artifact)"
            )
        final = dest / relative.name
        os.replace(target, final)
        os.chmod(final, 0o444)
        return final
