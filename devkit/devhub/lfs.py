"""The Git LFS batch API for devhub's repositories, as GitHub serves it (basic transfer only).

GitHub's LFS endpoint is the repository's clone URL plus ``/info/lfs`` (what git-lfs derives from a
remote ending in ``.git``); the batch call takes the same credentials as git over HTTP (Basic
``x-access-token:<token>``, or a ``Bearer``/``token`` header). The answer's actions point at a transfer
URL that takes its own short-lived header instead, as GitHub's storage URLs do, so a client must send
an action's ``header`` and never its git credentials there. Objects live on disk, content-addressed,
next to the bare repository (``<repo>.git/lfs/objects/ab/cd/<oid>``), and are checked against their
oid and size when they arrive.

Spec: https://github.com/git-lfs/git-lfs/blob/main/docs/api/batch.md (and basic-transfers.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from devkit.devhub.githttp import basic_credentials

MEDIA_TYPE = "application/vnd.git-lfs+json"
OID = re.compile(r"^[0-9a-f]{64}$")
ACTION_LIFETIME = 3600
DOCS = "https://docs.github.com"

# (repository, user, password, write) -> allowed: the same check as git smart HTTP's.
AuthorizeFn = Callable[[str, str | None, str | None, bool], Awaitable[bool]]


@dataclass(frozen=True)
class _Grant:
    repo: str
    oid: str
    size: int
    operation: str  # download | upload
    expires: float


def object_path(repo_dir: Path, oid: str) -> Path:
    return repo_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"message": message, "documentation_url": f"{DOCS}/repositories/working-with-files/managing-large-files"}
    return web.Response(status=status, text=json.dumps(body), content_type=MEDIA_TYPE, headers=headers)


def lfs_routes(root: Path, authorize: AuthorizeFn, *, prefix: str = "") -> list[web.RouteDef]:
    """Routes for ``<prefix>/{owner}/{repo}.git/info/lfs/...``: register them before git's catch-all."""
    grants: dict[str, _Grant] = {}

    def credentials(request: web.Request) -> tuple[str | None, str | None]:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            return "x-access-token", value.strip()
        return basic_credentials(header)

    def grant(repo: str, oid: str, size: int, operation: str) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        now = time.time()
        for key in [k for k, g in grants.items() if g.expires < now]:
            del grants[key]
        grants[token] = _Grant(repo, oid, size, operation, now + ACTION_LIFETIME)
        return {"header": {"Authorization": f"RemoteAuth {token}"}, "expires_in": ACTION_LIFETIME}

    def granted(request: web.Request, operation: str) -> _Grant | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        found = grants.get(token.strip()) if scheme == "RemoteAuth" else None
        full_name = f"{request.match_info['owner']}/{request.match_info['repo']}"
        if (
            found is None
            or found.expires < time.time()
            or (found.repo, found.oid, found.operation) != (full_name, request.match_info["oid"], operation)
        ):
            return None
        return found

    async def batch(request: web.Request) -> web.Response:
        full_name = f"{request.match_info['owner']}/{request.match_info['repo']}"
        if request.content_type != MEDIA_TYPE:
            return _error(422, f"Content-Type must be {MEDIA_TYPE}")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(422, "the request body is not JSON")
        operation = body.get("operation") if isinstance(body, dict) else None
        objects = body.get("objects") if isinstance(body, dict) else None
        if operation not in ("download", "upload") or not isinstance(objects, list):
            return _error(422, "operation must be download or upload, with a list of objects")
        if body.get("hash_algo", "sha256") != "sha256":
            return _error(409, "Unsupported hash algorithm")
        transfers = body.get("transfers") or ["basic"]
        if "basic" not in transfers:
            return _error(422, "only the basic transfer adapter is supported")
        user, password = credentials(request)
        if not await authorize(full_name, user, password, operation == "upload"):
            # Unknown or private repository without valid credentials: GitHub answers 401 and asks for them;
            # a valid token without write access gets 403.
            if password and await authorize(full_name, user, password, False):
                return _error(403, "You must have push access to verify locks")
            return _error(401, "Credentials needed", {"LFS-Authenticate": 'Basic realm="GitHub"'})
        repo_dir = root / f"{full_name}.git"
        if not repo_dir.is_dir():
            return _error(404, "Repository not found")
        base = f"{request.url.origin()}{prefix}/{full_name}.git/info/lfs/objects"
        answered = []
        for item in objects:
            oid, size = (item.get("oid"), item.get("size")) if isinstance(item, dict) else (None, None)
            if not isinstance(oid, str) or not OID.match(oid) or not isinstance(size, int) or size < 0:
                answered.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid object"}})
                continue
            path = object_path(repo_dir, oid)
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if operation == "download":
                if not path.is_file():
                    entry["error"] = {"code": 404, "message": "Object does not exist"}
                elif path.stat().st_size != size:
                    entry["error"] = {"code": 422, "message": "Object size does not match"}
                else:
                    action = {"href": f"{base}/{oid}", **grant(full_name, oid, size, "download")}
                    entry["actions"] = {"download": action}
            elif not path.is_file():  # upload: an object the server already has needs no action
                entry["actions"] = {
                    "upload": {"href": f"{base}/{oid}", **grant(full_name, oid, size, "upload")},
                    "verify": {"href": f"{base}/verify", **grant(full_name, oid, size, "verify")},
                }
            answered.append(entry)
        return web.Response(
            text=json.dumps({"transfer": "basic", "objects": answered, "hash_algo": "sha256"}),
            content_type=MEDIA_TYPE,
        )

    async def download(request: web.Request) -> web.StreamResponse:
        found = granted(request, "download")
        if found is None:
            return _error(401, "Bad credentials")
        path = object_path(root / f"{found.repo}.git", found.oid)
        if not path.is_file():
            return _error(404, "Object does not exist")
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def upload(request: web.Request) -> web.Response:
        found = granted(request, "upload")
        if found is None:
            return _error(401, "Bad credentials")
        path = object_path(root / f"{found.repo}.git", found.oid)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{found.oid}.{secrets.token_hex(4)}")
        digest, size = hashlib.sha256(), 0
        try:
            with partial.open("wb") as out:
                async for chunk in request.content.iter_chunked(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    if size > found.size:
                        break
                    out.write(chunk)
            if (digest.hexdigest(), size) != (found.oid, found.size):
                return _error(422, f"Object does not match its oid and size ({found.oid}, {found.size})")
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return web.Response(status=200)

    async def verify(request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        found = grants.get(token.strip()) if scheme == "RemoteAuth" else None
        full_name = f"{request.match_info['owner']}/{request.match_info['repo']}"
        if found is None or found.operation != "verify" or found.repo != full_name or found.expires < time.time():
            return _error(401, "Bad credentials")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(422, "the request body is not JSON")
        path = object_path(root / f"{full_name}.git", found.oid)
        if body.get("oid") != found.oid or not path.is_file() or path.stat().st_size != body.get("size"):
            return _error(404, "Object does not exist")
        return web.Response(status=200, content_type=MEDIA_TYPE, text="{}")

    base = prefix + "/{owner}/{repo}.git/info/lfs"
    return [
        web.post(base + "/objects/batch", batch),
        web.post(base + "/objects/verify", verify),
        web.get(base + "/objects/{oid:[0-9a-f]{64}}", download),
        web.put(base + "/objects/{oid:[0-9a-f]{64}}", upload),
    ]
