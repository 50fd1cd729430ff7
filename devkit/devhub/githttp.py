"""Git smart HTTP for a directory of bare repositories, via the real `git http-backend` CGI.

Reusable outside devhub: `git_http_routes(root, authorize, on_push)` returns aiohttp routes serving
`/{owner}/{repo}.git/...` (under an optional prefix), with Basic auth checked by the caller's `authorize` (GitHub takes
`x-access-token:<token>`), and `on_push` told which refs a receive-pack moved.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web


@functools.cache
def http_backend() -> str:
    """Path of git's CGI, wherever this git keeps its helpers (`git --exec-path`)."""
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    before: str  # 40 zeros when created
    after: str  # 40 zeros when deleted


AuthorizeFn = Callable[[str, str | None, str | None, bool], Awaitable[bool]]
OnPush = Callable[[str, list[RefUpdate]], Awaitable[None]]
ZERO = "0" * 40


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password


async def _refs(repo: Path) -> dict[str, str]:
    proc = await asyncio.create_subprocess_exec(
        "git",
        "--git-dir",
        str(repo),
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    return dict(line.split(" ", 1) for line in out.decode().splitlines() if line)


def _diff_refs(before: dict[str, str], after: dict[str, str]) -> list[RefUpdate]:
    return [
        RefUpdate(ref, before.get(ref, ZERO), after.get(ref, ZERO))
        for ref in sorted(before.keys() | after.keys())
        if before.get(ref) != after.get(ref)
    ]


def _parse_cgi(output: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = output.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = output.partition(b"\n\n")
    status, headers = 200, {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return status, headers, body


def git_http_routes(
    root: Path, authorize: AuthorizeFn, on_push: OnPush | None = None, *, prefix: str = ""
) -> list[web.RouteDef]:
    async def handle(request: web.Request) -> web.StreamResponse:
        owner, name, tail = (
            request.match_info["owner"],
            request.match_info["repo"],
            request.match_info["tail"],
        )
        full_name = f"{owner}/{name}"
        write = tail == "git-receive-pack" or request.query.get("service") == "git-receive-pack"
        user, password = basic_credentials(request.headers.get("Authorization"))
        if not await authorize(full_name, user, password, write):
            return web.Response(
                status=401,
                text="Invalid username or token. Password authentication is not supported.\n",
                headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
            )
        repo = root / f"{full_name}.git"
        if not repo.is_dir():
            return web.Response(status=404, text="Repository not found.\n")
        env = {
            "GIT_PROJECT_ROOT": str(root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{full_name}.git/{tail}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_USER": user or "anonymous",
            "REMOTE_ADDR": request.remote or "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH": "/usr/bin:/bin",
        }
        if encoding := request.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = encoding
        if protocol := request.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = protocol
        # Read the stream directly: pack uploads are far above aiohttp's client_max_size.
        body = await request.content.read()
        before = await _refs(repo) if write and request.method == "POST" else None
        proc = await asyncio.create_subprocess_exec(
            http_backend(),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        output, errors = await proc.communicate(body)
        if proc.returncode != 0 and not output:
            return web.Response(status=500, text=errors.decode(errors="replace"))
        status, headers, payload = _parse_cgi(output)
        if before is not None and on_push is not None and (updates := _diff_refs(before, await _refs(repo))):
            await on_push(full_name, updates)
        return web.Response(status=status, body=payload, headers=headers)

    path = prefix + "/{owner}/{repo}.git/{tail:.*}"
    return [web.get(path, handle), web.post(path, handle)]
