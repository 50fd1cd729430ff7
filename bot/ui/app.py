"""The dashboard's aiohttp application, mounted at /ui by the composition root (bot.app).

Every page and fragment needs a session; each query is limited to the repositories the session may read
(anything else answers 404, as GitHub hides what a token cannot see). Forms carry the session's CSRF
token; retry and cancel go through chat-ops' authorization (the collaborator permission API, the same
rule as `/modelship cancel`) and land in its audit log.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.chatops import store as chatops_store
from bot.chatops.authz import authorize
from bot.chatops.commands import COMMANDS, PREFIX, CommandSpec
from bot.chatops.lookups import collaborator_permission
from bot.chatops.service import run_action
from bot.context import GitHubAppPort, Services
from bot.guard import store as guard_store
from bot.review import report
from bot.review.optimization import variant_name, variant_rows
from bot.review.stored import report_from_json
from bot.store import deployments
from bot.store.installations import installation_for
from bot.store.queue import JobQueue
from bot.store.reviews import StoredReview, reviewed_model, reviews_of_pr
from bot.ui import evidence
from bot.ui.github import OAuthClient, SignInError
from bot.ui.matrix import Matrix, stamp, utc
from bot.ui.public import PublicRepos
from bot.ui.session import COOKIE, STATE_COOKIE, Session, SessionStore, same, sign, unsign
from bot.ui.values import ValuesReader

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION = web.RequestKey("ui_session", Session)
# `retry` is a dashboard action with cancel's rule: it changes things, so it needs write access.
RETRY = CommandSpec("retry", "Run a parked job again.", mutating=True)
ACTIONS: dict[str, CommandSpec] = {"retry": RETRY, "cancel": COMMANDS["cancel"]}
_PUBLIC = ("/ui/login", "/ui/oauth/", "/ui/static/")
_HIDDEN_COLUMNS = {"id", "created_at", "updated_at", "github_deployment_id", "detail"}
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SLOT = "<!--matrix-table-->"
# The PR page's actions: chat-ops commands run through bot.chatops.service.run_action.
PR_ACTIONS = ("hold", "unhold", "unpin")
_ENV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FINISHED_SHOWN = 20  # the jobs page's "Recently finished" rows
AUDIT_PAGE = 50  # audit rows per page: the log grows without end, a page is what a reader scans


def repo_of_job(serial_key: str) -> str:
    return serial_key.partition("#")[0].partition(":")[0]


def pr_of_job(serial_key: str) -> int:
    number = serial_key.partition("#")[2].partition(":")[0]
    return int(number) if number.isdigit() else 0


def values_of(row: Mapping[Any, Any]) -> dict[str, Any]:
    """What a deployments row says was written to the environment (the values the diff compares)."""
    return {k: v for k, v in row.items() if k not in _HIDDEN_COLUMNS}


def diff(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> list[tuple[str, Any, Any]]:
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def ago(when: datetime | None, now: float) -> str:
    if when is None:
        return ""
    stamp = when if when.tzinfo else when.replace(tzinfo=UTC)
    seconds = max(0, int(now - stamp.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


@dataclass
class Dashboard:
    engine: AsyncEngine
    queue: JobQueue
    github: GitHubAppPort
    oauth: OAuthClient
    sessions: SessionStore
    allowed: str = ""
    public_url: str | None = None
    health: Callable[[], dict[str, Any] | None] = lambda: None
    clock: Callable[[], float] = time.time
    # chat-ops' collaborators: the PR page's hold, unhold and unpin run its commands (None: no such buttons)
    services: Services | None = None
    refresh_seconds: float = 300.0
    stamp_ttl: float = 1.0
    # the timeline's values diff reads the committed files through the deploy repository's installation
    values: ValuesReader | None = None
    # the public repositories of the App's installations, shown to every signed-in user (None: only /user/repos)
    public: PublicRepos | None = None
    env: jinja2.Environment = field(init=False)
    # the matrix's cells, shared by every reader and kept up to date with the deployments table
    matrix_cells: Matrix = field(init=False)

    def __post_init__(self) -> None:
        self.env = environment()
        self.matrix_cells = Matrix(self.engine, stamp_ttl=self.stamp_ttl)
        if self.values is None:
            self.values = ValuesReader(self._installation_client)

    async def _installation_client(self, repo: str) -> Any:
        installation = await installation_for(self.engine, repo)
        return None if installation is None else await self.github.for_installation(installation)

    # ------------------------------------------------------------------ plumbing
    def render(self, request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
        session = request.get(SESSION)
        now = self.clock()
        text = self.env.get_template(name).render(
            session=session,
            csrf=session.csrf if session else "",
            path=request.path,
            ago=lambda w: ago(w, now),
            **context,
        )
        return web.Response(text=text, content_type="text/html", status=status)

    def _secure(self, request: web.Request) -> bool:
        return (self.public_url or "").startswith("https://") or request.secure

    def _callback_url(self, request: web.Request) -> str:
        base = (self.public_url or f"{request.scheme}://{request.host}").rstrip("/")
        return f"{base}/ui/oauth/callback"

    def visible(self, request: web.Request) -> list[str]:
        return request[SESSION].readable()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started, cpu = time.perf_counter(), time.thread_time()
        if not request.path.startswith(_PUBLIC):
            session = await self.sessions.get(request.cookies.get(COOKIE), self.clock())
            if session is None:
                if request.path.startswith(("/ui/api/", "/ui/fragments/")) or request.method != "GET":
                    return web.json_response({"message": "sign in first: /ui/login"}, status=401)
                raise web.HTTPSeeOther("/ui/login")
            if self.clock() - session.refreshed_at > self.refresh_seconds and not await self._refresh(session):
                # no longer in the org/team the dashboard is restricted to: signed out on every replica
                await self.sessions.drop(request.cookies.get(COOKIE), self.clock())
                if request.path.startswith(("/ui/api/", "/ui/fragments/")) or request.method != "GET":
                    return web.json_response({"message": f"sign in again: /ui/login ({self.allowed} only)"}, status=401)
                raise web.HTTPSeeOther("/ui/login")
            if self.public is not None:  # a copy per request: the cached session is shared
                session = replace(session, public=await self.public.names())
            request[SESSION] = session
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        # wall time, and the event loop thread's CPU time (what the request cost apart from waiting)
        wall, spent = (time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000
        response.headers["Server-Timing"] = f"app;dur={wall:.2f}, cpu;dur={spent:.2f}"
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self' " + self.oauth.web_url,
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.path.startswith("/ui/static/"):
            response.headers["Cache-Control"] = "no-store"
        if isinstance(response, web.HTTPException) and response.status >= 300:
            raise response
        return response

    async def _refresh(self, session: Session) -> bool:
        """Re-read what the user can read (permissions change; a removed collaborator must stop seeing) and,
        with MODELSHIP_UI_ALLOWED, whether they are still in that org or team (False: they are not)."""
        try:
            if self.allowed and not await self.oauth.member_of(session.token, session.login, self.allowed):
                log.info("dashboard: %s left %s: signed out", session.login, self.allowed)
                return False
            session.repos = await self.oauth.readable_repos(session.token)
        except Exception as exc:  # a GitHub hiccup keeps the old list for one more round, never widens it
            log.warning("dashboard: could not refresh %s's repositories: %s", session.login, type(exc).__name__)
        session.refreshed_at = self.clock()
        await self.sessions.refreshed(session)
        return True

    def check_csrf(self, request: web.Request, form: Mapping[Any, Any]) -> None:
        token = form.get("csrf") or request.headers.get("X-CSRF-Token")
        if not same(str(token) if token else None, request[SESSION].csrf):
            raise web.HTTPForbidden(
                text="CSRF token missing or wrong: reload the page and submit the form again", content_type="text/plain"
            )

    # ------------------------------------------------------------------ sign-in
    async def login_page(self, request: web.Request) -> web.Response:
        return self.render(request, "login.html", error=request.query.get("error", ""))

    async def oauth_start(self, request: web.Request) -> web.Response:
        state = secrets.token_urlsafe(24)
        response = web.HTTPSeeOther(self.oauth.authorize_url(self._callback_url(request), state))
        expiry = int(self.clock()) + 600
        response.set_cookie(
            STATE_COOKIE,
            sign(self.sessions.key, f"{state}.{expiry}"),
            max_age=600,
            path="/ui/oauth/",
            httponly=True,
            samesite="Lax",
            secure=self._secure(request),
        )
        raise response

    async def oauth_callback(self, request: web.Request) -> web.Response:
        expected = unsign(self.sessions.key, request.cookies.get(STATE_COOKIE, ""), self.clock())
        if not same(expected, request.query.get("state")) or not request.query.get("code"):
            return self.render(request, "login.html", 400, error="The sign-in did not match this browser; try again.")
        try:
            token = await self.oauth.exchange(request.query["code"], self._callback_url(request))
            login = await self.oauth.login(token)
            if self.allowed and not await self.oauth.member_of(token, login, self.allowed):
                return self.render(
                    request,
                    "login.html",
                    403,
                    error=f"{login} is not a member of {self.allowed}, which this dashboard is for.",
                )
            repos = await self.oauth.readable_repos(token)
        except SignInError as exc:
            return self.render(request, "login.html", 400, error=str(exc))
        cookie, _ = await self.sessions.create(login, token, repos, self.clock())
        response = web.HTTPSeeOther("/ui/")
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=int(self.sessions.lifetime),
            path="/ui/",
            httponly=True,
            samesite="Lax",
            secure=self._secure(request),
        )
        response.del_cookie(STATE_COOKIE, path="/ui/oauth/")
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        self.check_csrf(request, await request.post())
        await self.sessions.drop(request.cookies.get(COOKIE), self.clock())
        response = web.HTTPSeeOther("/ui/login")
        response.del_cookie(COOKIE, path="/ui/")
        raise response

    # ------------------------------------------------------------------ matrix (bot.ui.matrix)
    async def matrix(self, request: web.Request) -> web.Response:
        await self.matrix_cells.refresh()
        table = self.matrix_cells.table_bytes(self.visible(request))
        # the page around a slot, the table (kept encoded until a cell changes) put in as bytes
        page = self.render(request, "matrix.html", table=Markup(_SLOT), empty=not table, stamp=self._matrix_stamp())
        if table:
            head, _, tail = (page.text or "").partition(_SLOT)
            page.body = b"".join((head.encode(), table, tail.encode()))
        return page

    def _matrix_stamp(self) -> str:
        # an empty table still polls: from the epoch, so its first deployment reshapes the page
        return stamp(self.matrix_cells.last_change or EPOCH)

    async def matrix_fragment(self, request: web.Request) -> web.Response:
        """The live update: the cells that changed after ``after`` (swapped out of band) and the next poller;
        when a target appeared or went since, htmx is asked to load the whole page (it has no slot for it)."""
        repos = self.visible(request)
        try:
            after = utc(datetime.fromisoformat(request.query.get("after", "")))
        except ValueError:
            raise web.HTTPBadRequest(text="after: an ISO timestamp from the page is required") from None
        await self.matrix_cells.refresh()
        cells = [c.oob for c in self.matrix_cells.changed(repos, after)]
        last = self.matrix_cells.last_change
        response = self.render(
            request, "matrix_fragment.html", cells=cells, stamp=stamp(last if last and last > after else after)
        )
        if self.matrix_cells.reshaped(repos, after):
            response.headers["HX-Refresh"] = "true"
        return response

    async def api_deployments(self, request: web.Request) -> web.Response:
        await self.matrix_cells.refresh()
        return web.Response(text=self.matrix_cells.json(self.visible(request)), content_type="application/json")

    # ------------------------------------------------------------------ a model's timeline
    def _readable(self, request: web.Request, repo: str) -> None:
        if not request[SESSION].can_read(repo):
            raise web.HTTPNotFound(text="no such repository, or you cannot read it", content_type="text/plain")

    async def timeline(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        model = request.match_info["model"]
        self._readable(request, repo)
        async with self.engine.connect() as conn:
            rows = await deployments.of_model(conn, repo, model)
        if not rows:
            raise web.HTTPNotFound(text=f"no deployments of {model} in {repo}", content_type="text/plain")
        by_env: dict[str, list[Mapping[Any, Any]]] = {}
        for row in rows:
            by_env.setdefault(row["environment"], []).append(row)
        compared = None
        a_id, b_id = request.query.get("a", ""), request.query.get("b", "")
        if a_id.isdigit() and b_id.isdigit():
            found = {r["id"]: r for r in rows}
            a, b = found.get(int(a_id)), found.get(int(b_id))
            if a is None or b is None:
                raise web.HTTPBadRequest(text="a and b must be deployments of this model", content_type="text/plain")
            metrics = []
            ma = await self._metrics(repo, a, model)
            mb = await self._metrics(repo, b, model)
            for name in sorted(set(ma) | set(mb)):
                va, vb = ma.get(name), mb.get(name)
                delta = vb - va if va is not None and vb is not None else None
                metrics.append((name, va, vb, delta))
            assert self.values is not None
            files = await self.values.diff(a, b, request[SESSION].can_read)
            record = diff(values_of(a), values_of(b))
            compared = {"a": a, "b": b, "files": files, "record": record, "metrics": metrics}
        return self.render(
            request, "timeline.html", repo=repo, model=model, by_env=by_env, rows=rows, compared=compared
        )

    async def _metrics(self, repo: str, row: Mapping[Any, Any], model: str) -> Mapping[str, float]:
        if row.get("source_pr") is None:
            return {}
        found = await reviewed_model(self.engine, repo, int(row["source_pr"]), None, model)
        return found.metrics if found is not None else {}

    # ------------------------------------------------------------------ a PR
    async def pull(self, request: web.Request, *, status: int = 200, note: str = "") -> web.Response:
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        self._readable(request, repo)
        number = int(request.match_info["number"])
        reviews = await reviews_of_pr(self.engine, repo, number)
        async with self.engine.connect() as conn:
            shipped = await deployments.of_source_pr(conn, repo, number)
            incidents = [
                i
                for i in await guard_store.incidents(conn, repo=repo)
                if i.bad_deployment_id in {r["id"] for r in shipped}
            ]
            jobs = await chatops_store.jobs(conn, repo, number)
            audit = await chatops_store.recent(conn, repo, number, limit=50)
            hold = await chatops_store.held(conn, repo, number)
            newest = {(r["environment"], r["model"]): r for r in await deployments.of_repo(conn, repo)}
        pinned = sorted({env for (env, _), r in newest.items() if r["pinned"]})
        return self.render(
            request,
            "pull.html",
            status,
            note=note or request.query.get("note", ""),
            hold=hold,
            pinned=pinned,
            actions=self.services is not None,
            repo=repo,
            number=number,
            reviews=reviews,
            shipped=shipped,
            incidents=incidents,
            jobs=jobs,
            audit=audit,
            github_url=self.oauth.web_url,
        )

    async def pull_action(self, request: web.Request) -> web.Response:
        """hold, unhold, unpin <env>: run as the chat-ops command commented on this PR would be (its
        authorization, service and audit log), by the signed-in user."""
        action = request.match_info["action"]
        if action not in PR_ACTIONS or self.services is None:
            raise web.HTTPNotFound(text=f"no dashboard action {action!r} here", content_type="text/plain")
        form = await request.post()
        self.check_csrf(request, form)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        self._readable(request, repo)
        number = int(request.match_info["number"])
        line = f"{PREFIX} {action}"
        if action == "unpin":
            env = str(form.get("env") or "")
            if not _ENV.match(env):
                raise web.HTTPBadRequest(text="env: the environment to unpin is required", content_type="text/plain")
            line += f" {env}"
        installation = await installation_for(self.engine, repo)
        if installation is None:
            raise web.HTTPConflict(text=f"the GitHub App is not installed on {repo}", content_type="text/plain")
        gh = await self.github.for_installation(installation)
        done = await run_action(
            line,
            repo=repo,
            number=number,
            actor=request[SESSION].login,
            installation_id=installation,
            gh=gh,
            services=self.services,
        )
        if not done.allowed:
            return await self.pull(request, status=403, note=f"Refused: {done.decision.removeprefix('denied: ')}")
        note = f"{line}: {done.result}"
        raise web.HTTPSeeOther(f"/ui/prs/{quote(repo, safe='/')}/{number}?" + urlencode({"note": note}))

    # ------------------------------------------------------------------ incidents
    async def incidents(self, request: web.Request) -> web.Response:
        async with self.engine.connect() as conn:
            found = await guard_store.incidents_of(conn, self.visible(request))
        return self.render(request, "incidents.html", incidents=found)

    async def incident(self, request: web.Request) -> web.Response:
        async with self.engine.connect() as conn:
            found = await guard_store.incident(conn, int(request.match_info["id"]))
        if found is None or not request[SESSION].can_read(found.repo):
            raise web.HTTPNotFound(
                text="no such incident, or you cannot read its repository", content_type="text/plain"
            )
        parsed = evidence.parse(found.evidence)
        charts = [evidence.svg(c) for c in parsed.charts]
        return self.render(request, "incident.html", incident=found, evidence=parsed, charts=charts)

    # ------------------------------------------------------------------ jobs
    async def jobs(self, request: web.Request, *, status: int = 200, note: str = "") -> web.Response:
        repos = set(self.visible(request))
        found = [j for j in await self.queue.list() if repo_of_job(j["serial_key"]) in repos]
        # What became of the latest jobs (a retried one ran to done, or was cancelled): the newest few only.
        recent = await self.queue.list(("done", "cancelled"), limit=FINISHED_SHOWN * 5, newest_first=True)
        finished = [j for j in recent if repo_of_job(j["serial_key"]) in repos][:FINISHED_SHOWN]
        return self.render(
            request,
            "jobs.html",
            status,
            jobs=found,
            finished=finished,
            note=note or request.query.get("note", ""),
            repo_of=repo_of_job,
        )

    async def job_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound()
        form = await request.post()
        self.check_csrf(request, form)
        job_id = int(request.match_info["id"])
        job = await self.queue.get(job_id)
        session = request[SESSION]
        repo = repo_of_job(job["serial_key"]) if job else ""
        if job is None or not session.can_read(repo):
            raise web.HTTPNotFound(text="no such job, or you cannot read its repository", content_type="text/plain")
        permission = await self._permission(repo, session.login)
        decision = authorize(ACTIONS[action], actor=session.login, permission=permission)
        done = False
        if decision.allowed:
            done = (
                await self.queue.retry_parked(job_id)
                if action == "retry"
                else await self.queue.cancel_one(job_id, session.login)
            )
            result = f"{action} job #{job_id}" if done else f"job #{job_id} is {job['state']}: nothing to {action}"
        else:
            result = "refused"
        entry = chatops_store.AuditEntry(
            repo,
            pr_of_job(job["serial_key"]),
            session.login,
            None,
            action,
            f"dashboard: {action} job #{job_id}",
            {"args": {"job": job_id}, "flags": {}, "via": "dashboard"},
            "allowed" if decision.allowed else f"denied: {decision.reason}",
            result,
            done,
        )
        async with self.engine.begin() as conn:
            await chatops_store.record(conn, [entry])
        if not decision.allowed:
            return await self.jobs(
                request, status=403, note=f"Refused: {decision.reason} (who may: {decision.who_may})"
            )
        raise web.HTTPSeeOther("/ui/jobs?" + urlencode({"note": result}))

    async def _permission(self, repo: str, login: str) -> Any:
        """The user's role through the App, exactly as chat-ops asks it (None denies)."""
        installation = await installation_for(self.engine, repo)
        if installation is None:
            return None
        gh = await self.github.for_installation(installation)
        return await collaborator_permission(gh, repo, login)

    # ------------------------------------------------------------------ audit and health
    async def audit(self, request: web.Request) -> web.Response:
        q = request.query
        before = q.get("before") or None
        if before is not None and not before.isdigit():
            raise web.HTTPBadRequest(text="before: the id of an audit row from the page", content_type="text/plain")
        async with self.engine.connect() as conn:
            entries = await chatops_store.search(
                conn,
                self.visible(request),
                actor=q.get("actor") or None,
                command=q.get("command") or None,
                repo=q.get("repo") or None,
                before=int(before) if before else None,
                limit=AUDIT_PAGE,
            )
        older = None
        if len(entries) == AUDIT_PAGE and entries[-1].id is not None:  # maybe more: link the next page, same filter
            older = "?" + urlencode({k: v for k, v in q.items() if k != "before"} | {"before": entries[-1].id})
        return self.render(request, "audit.html", entries=entries, q=q, repos=self.visible(request), older=older)

    async def health_page(self, request: web.Request) -> web.Response:
        return self.render(request, "health.html", report=self.health())

    # ------------------------------------------------------------------ routes
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        get: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("/", self.matrix),
            ("/login", self.login_page),
            ("/oauth/start", self.oauth_start),
            ("/oauth/callback", self.oauth_callback),
            ("/fragments/matrix", self.matrix_fragment),
            ("/api/deployments", self.api_deployments),
            ("/models/{owner}/{repo}/{model}", self.timeline),
            ("/prs/{owner}/{repo}/{number:\\d+}", self.pull),
            ("/incidents", self.incidents),
            ("/incidents/{id:\\d+}", self.incident),
            ("/jobs", self.jobs),
            ("/audit", self.audit),
            ("/health", self.health_page),
        ]
        for path, handler in get:
            app.router.add_get(path, handler)
        app.router.add_post("/logout", self.logout)
        app.router.add_post("/jobs/{id:\\d+}/{action}", self.job_action)
        app.router.add_post("/prs/{owner}/{repo}/{number:\\d+}/{action}", self.pull_action)
        app.router.add_static("/static/", HERE / "static", append_version=False)
        return app


def environment() -> jinja2.Environment:
    """The dashboard's templates, with the PR comment's own formatting functions for the review partial."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # packaged templates: no stat of each file on every request
    )
    env.globals.update(
        quote=lambda s: quote(str(s), safe="/"),
        stored_report=report_from_json,
        fmt_number=report.number,
        fmt_signed=report.signed,
        interval=report.interval,
        gate_rule=report.gate_rule,
        gate_value=report.gate_value,
        verdict_label=report.VERDICT_LABEL,
        gate_label=report.GATE_LABEL,
        variant_rows=variant_rows,
        variant_name=variant_name,
    )
    env.filters["short"] = lambda s: str(s or "")[:7] if _SHA.match(str(s or "")) else str(s or "")
    return env


def review_html(review: StoredReview) -> str:
    """One stored review as the PR page shows it (the `_review.html` partial)."""
    return environment().get_template("_review.html").render(rv=review)
