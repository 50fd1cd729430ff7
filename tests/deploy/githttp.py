"""A real git smart-HTTP server for tests and benchmarks: `git http-backend` behind aiohttp.

Authenticates the way GitHub does for app installation tokens (HTTP Basic, user
``x-access-token``), refuses non-fast-forward updates server-side (so a force push could not
sneak through), and counts what it serves.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    return done.stdout


@dataclass
class GitHttpServer:
    root: Path
    token: str = "ghs_test_token_0123456789abcdef"
    port: int = 0
    receive_packs: int = 0
    fail_receive_pack: bool = False  # simulate an outage that starts after the fetch
    _runner: web.AppRunner | None = field(default=None, repr=False)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- repositories ---------------------------------------------------------------------------

    def url(self, name: str) -> str:
        """Clean URL (no credentials) of ``owner/repo``."""
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def bare(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def create_repo(self, name: str, files: dict[str, str] | None = None) -> str:
        """A bare repository with one commit holding ``files`` on main; returns its clean URL."""
        bare = self.bare(name)
        git("init", "-q", "--bare", "--initial-branch=main", str(bare))
        for key, value in (
            ("http.receivepack", "true"),
            ("receive.denyNonFastForwards", "true"),
            ("receive.denyDeletes", "true"),
            ("core.logAllRefUpdates", "always"),
        ):
            git("config", key, value, cwd=bare)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            git("init", "-q", "--initial-branch=main", cwd=work)
            for path, text in (files or {"README.md": "# deploy repository\n"}).items():
                (work / path).parent.mkdir(parents=True, exist_ok=True)
                (work / path).write_text(text)
            git("add", "-A", cwd=work)
            git("-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "seed", cwd=work)
            git("push", "-q", str(bare), "main", cwd=work)
        return self.url(name)

    def commits(self, name: str, ref: str = "main") -> list[str]:
        return git("rev-list", ref, cwd=self.bare(name)).split()

    def show(self, name: str, path: str, ref: str = "main") -> str:
        return git("show", f"{ref}:{path}", cwd=self.bare(name))

    def files(self, name: str, ref: str = "main") -> list[str]:
        return git("ls-tree", "-r", "--name-only", ref, cwd=self.bare(name)).split()

    def branches(self, name: str) -> list[str]:
        return git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.bare(name)).split()

    def ref_updates(self, name: str, ref: str = "refs/heads/main") -> list[tuple[str, str]]:
        """(old, new) for every update of ``ref``, from the server's reflog."""
        log = (self.bare(name) / "logs" / ref).read_text().splitlines()
        return [(line.split()[0], line.split()[1]) for line in log]

    # --- HTTP -----------------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == "x-access-token" and password == self.token

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="git"'})
        path = "/" + request.match_info["path"]
        receive = path.endswith("/git-receive-pack")
        if receive and self.fail_receive_pack:
            return web.Response(status=503, text="unavailable")
        body = await request.read()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
        }
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, _ = await proc.communicate(body)
        if receive:
            self.receive_packs += 1
        head, _, payload = out.partition(b"\r\n\r\n")
        if not payload and b"\n\n" in head:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers[key.strip()] = value.strip()
        return web.Response(status=status, headers=headers, body=payload)
