"""devhub's aiohttp application: REST (also under /api/v3), git smart HTTP and /_devhub controls.

One middleware gives every REST call GitHub's behaviour around the handler: injected faults, the
request log, rate-limit headers, ETag/304, error bodies, and contract checks of request and response.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

from aiohttp import web

from devkit.devhub.control import control_routes
from devkit.devhub.faults import Fault
from devkit.devhub.githttp import RefUpdate, git_http_routes
from devkit.devhub.http import GitHubError, credential_key, error_response, etag_of, json_response
from devkit.devhub.hub import DevHub, DevHubError
from devkit.devhub.lfs import lfs_routes
from devkit.devhub.oauth import OAuth
from devkit.devhub.rest import Rest

GHE_PREFIX = "/api/v3"
HUB_KEY = web.AppKey("devhub", DevHub)


def fault_response(fault: Fault, limits: dict[str, str]) -> web.Response:
    if fault.kind == "error":
        return error_response(GitHubError(fault.status, "Server Error" if fault.status >= 500 else "Injected error"))
    if fault.kind == "unprocessable":
        return error_response(
            GitHubError(422, "Validation Failed", [{"resource": "Fault", "code": "invalid", "field": "injected"}])
        )
    if fault.kind == "rate_limit":
        reset = int(time.time()) + fault.reset_in
        headers = limits | {
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": limits["x-ratelimit-limit"],
        }
        if fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        return error_response(
            GitHubError(
                403,
                "API rate limit exceeded for installation. If you reach out to GitHub Support for help, "
                "please include the request ID.",
                headers=headers,
            )
        )
    # Secondary limits keep x-ratelimit-remaining above zero: only retry-after (or nothing) says when.
    headers = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
    return error_response(
        GitHubError(
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
            "If you reach out to GitHub Support for help, please include the request ID.",
            headers=headers,
        )
    )


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def make_middleware(hub: DevHub) -> Any:
    git_path = re.compile(rf"^{re.escape(hub.git_prefix)}/[^/]+/[^/]+\.git/")

    async def git_faults(request: web.Request, handler: Any) -> web.StreamResponse:
        """Git smart HTTP gets the faults meant for it. A "git_unavailable" fault answers in the server's
        place (an outage mid-push; method "GIT", the path without the git prefix). The REST kinds that name
        its path answer as a git host does (an error in plain text, no JSON); a slow one delays the real
        answer."""
        arrived = time.time()
        repo_path = request.path.removeprefix(hub.git_prefix)
        outage = hub.faults.take("GIT", repo_path, git=True, kind="git_unavailable")
        if outage is not None:
            hub.faults.record(arrived, "GIT", repo_path, outage.status, outage)
            return web.Response(status=outage.status, text="unavailable\n")
        fault = hub.faults.take(request.method, request.path, named_only=True)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        elif fault is not None:
            status = fault.status if fault.kind == "error" else 429 if "rate_limit" in fault.kind else 422
            hub.faults.record(arrived, request.method, request.path, status, fault)
            return web.Response(status=status, text=f"injected {fault.kind} fault\n")
        response: web.StreamResponse = await handler(request)
        hub.faults.record(arrived, request.method, request.path, response.status, fault)
        return response

    @web.middleware
    async def github(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(("/_devhub", "/login/oauth/")):  # devhub's controls; github.com's pages
            return await handler(request)
        if git_path.match(request.path):
            return await git_faults(request, handler)
        arrived = time.time()
        path = request.path.removeprefix(GHE_PREFIX) or "/"
        raw = await request.read()
        query = dict(request.query)
        fault = hub.faults.take(request.method, path)
        rate = hub.rate_limits.charge(credential_key(request), count=fault is None or fault.kind != "rate_limit")
        hub.violation(hub.contract.check_request(request.method, path, query, _json_or_none(raw)))
        if fault is None and hub.rate_limits.exhausted(rate):
            fault = Fault("rate_limit", reset_in=int(rate["x-ratelimit-reset"]) - int(arrived))
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            fault_taken: Fault | None = None
        else:
            fault_taken = fault
        if fault_taken is not None:
            response: web.StreamResponse = fault_response(fault_taken, rate)
        else:
            try:
                response = await handler(request)
            except GitHubError as exc:
                response = error_response(exc)
            except DevHubError as exc:
                response = error_response(GitHubError(422, str(exc)))
            except Exception as exc:
                # A simulator bug must fail the test that hit it, not pass as a plausible GitHub 500.
                hub.violation([f"devhub crashed on {request.method} {path}: {type(exc).__name__}: {exc}"])
                response = error_response(GitHubError(500, "Server Error"))
        for name, value in rate.items():
            response.headers.setdefault(name, value)
        response.headers["X-GitHub-Request-Id"] = uuid.uuid4().hex[:20].upper()
        response.headers["X-GitHub-Api-Version-Selected"] = "2022-11-28"
        body = response.body if isinstance(response, web.Response) and isinstance(response.body, bytes) else b""
        if request.method == "GET" and response.status == 200 and isinstance(response, web.Response):
            etag = etag_of(body)
            response.headers["ETag"] = etag
            if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
                response = web.Response(
                    status=304,
                    headers={
                        k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")
                    },
                )
        if fault_taken is None and response.status != 304:
            hub.violation(hub.contract.check_response(request.method, path, response.status, _json_or_none(body)))
        hub.faults.record(arrived, request.method, path, response.status, fault)
        return response

    return github


def build_app(hub: DevHub) -> web.Application:
    app = web.Application(middlewares=[make_middleware(hub)], client_max_size=100 * 1024 * 1024)
    app[HUB_KEY] = hub
    rest = Rest(hub)

    async def authorize(full_name: str, user: str | None, password: str | None, write: bool) -> bool:
        fault = hub.faults.take("GIT", f"/{full_name}.git", git=True, kind="revoke_token")
        if fault is not None:  # "revoke_token": the token dies between minting and this request
            if password:
                hub.revoke_token(password)
            hub.faults.record(time.time(), "GIT", f"/{full_name}.git", 401, fault)
        repo = hub.repos.get(full_name)
        if repo is None:
            return False
        installation = hub.token_installation(password)
        if installation is not None and full_name in installation.repos:
            return True
        return not write and not repo.private and user is None

    async def on_push(full_name: str, updates: list[RefUpdate]) -> None:
        installation = hub.installation_for(full_name)
        pusher = hub.bot_account(hub.apps[installation.app_id]) if installation else hub.account("alice")
        await hub.pushed(full_name, updates, pusher)

    # Before git's catch-all `{repo}.git/{tail}`: the LFS batch API shares its prefix.
    app.add_routes(lfs_routes(hub.git.root, authorize, prefix=hub.git_prefix))
    app.add_routes(git_http_routes(hub.git.root, authorize, on_push, prefix=hub.git_prefix))
    app.add_routes(control_routes(hub))
    app.add_routes(rest.routes())
    app.add_routes(rest.routes(GHE_PREFIX))
    oauth = OAuth(hub)
    app.add_routes(oauth.routes())
    app.add_routes(oauth.routes(GHE_PREFIX)[3:])  # GHES: the REST calls under /api/v3, the pages at the root

    async def unknown(request: web.Request) -> web.Response:
        return json_response({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404)

    app.router.add_route("*", "/{tail:.*}", unknown)
    return app
