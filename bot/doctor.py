"""`modelship doctor`: can this server do its job? One small value per check, each naming what to fix.

The checks take the collaborators the composition root (bot.app) builds — the GitHub App client,
the database engine, the review sandbox, the guard's Prometheus client — and never read the
environment. The same checks run for `modelship doctor`, at `serve` start-up (logged) and behind
`/readyz` (cached by ``Checkup``, refreshed on an interval so readiness stays cheap for GitHub).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from gidgethub import BadRequest, GitHubException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config.repo import CONFIG_PATH, RepoConfig
from bot.github.contents import read_repo_config
from bot.github.redact import redact
from bot.guard.prometheus import MetricsProvider, Outcome
from bot.sandbox.runner import OUTPUT_DIR, RESULT_FILE, SCRATCH_DIR, MiB, SandboxSpec

if TYPE_CHECKING:
    from bot.artifacts.registry import OciRegistry
    from bot.github.app import GitHubApp
    from bot.review.service import SandboxConfig

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "skipped"]
ENGINE_SETTING = "MODELSHIP_CONTAINER_ENGINE_URL"
IMAGE_SETTING = "MODELSHIP_SANDBOX_IMAGE"
API_SETTING = "MODELSHIP_GITHUB_API_URL"
DATABASE_SETTING = "MODELSHIP_DATABASE_URL"
PROMETHEUS_SETTING = "MODELSHIP_PROMETHEUS_URL"
REGISTRY_SETTING = "MODELSHIP_REGISTRY"
# What the review pipeline imports inside the sandbox; a runner image without one of them fails every
# review with ModuleNotFoundError, so the probe imports exactly these and reports their versions.
ML_STACK = ("sklearn", "onnxruntime", "skops")
PROBE = (
    f"import json, {', '.join(ML_STACK)}; "
    f"json.dump({{m: __import__(m).__version__ for m in {ML_STACK!r}}}, open('{OUTPUT_DIR}/{RESULT_FILE}', 'w'))"
)


@dataclass(frozen=True)
class Check:
    """One finding. ``setting`` names what an operator changes when the check failed."""

    name: str
    status: Status
    detail: str
    setting: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def line(self) -> str:
        """One line; a failure ends with the setting to fix."""
        detail = " ".join(self.detail.split())  # never a multi-line message
        fix = f" -> fix {self.setting}" if self.status == "failed" and self.setting else ""
        return f"{self.status.upper():7} {self.name:22} {detail}{fix}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def failed(name: str, detail: str, setting: str) -> Check:
    return Check(name, "failed", redact(detail), setting)


def skipped(name: str, detail: str) -> Check:
    return Check(name, "skipped", detail)


def without_password(url: str) -> str:
    """A URL fit to print: any user:password@ part dropped."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _why(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


@dataclass
class Doctor:
    """The checks, over collaborators built by the composition root.

    ``github`` and ``sandbox`` are either the collaborator or the failed Check explaining why the
    composition root could not build it (no key, a key that is not RSA, an unreachable engine).
    """

    engine: AsyncEngine
    github: GitHubApp | Check
    sandbox: SandboxConfig | Check
    prometheus: MetricsProvider | None
    key_setting: str = "MODELSHIP_GITHUB_PRIVATE_KEY_PATH"
    prometheus_url: str | None = None
    timeout: float = 60.0  # per check: a hung dependency is a failed check, never a hung doctor
    sandbox_timeout: float = 120.0
    max_repos: int = 50  # repositories whose .modelship.yml is read to find deploy repositories
    registry: OciRegistry | None = None  # MODELSHIP_REGISTRY: where reviewed variants are published

    async def run(self) -> list[Check]:
        github = self._github_checks()
        rest = await asyncio.gather(
            self._guard("database", DATABASE_SETTING, self.database, self.timeout),
            self._guard("sandbox", IMAGE_SETTING, self.sandbox_check, self.sandbox_timeout + 30),
            self._guard("prometheus", PROMETHEUS_SETTING, self.prometheus_check, self.timeout),
            self._guard("registry", REGISTRY_SETTING, self.registry_check, self.timeout),
        )
        return [*await github, *rest]

    async def _github_checks(self) -> list[Check]:
        app = await self._guard("github_app", API_SETTING, self.github_app, self.timeout)
        if isinstance(self.github, Check) or not app.ok:
            why = "not checked: the github_app check failed"
            return [app, skipped("github_installations", why), skipped("deploy_repositories", why)]
        installations, found = await self._installations()
        if not installations.ok:
            return [app, installations, skipped("deploy_repositories", "not checked: installations failed")]
        deploy = await self._guard(
            "deploy_repositories",
            "deploy.repository",
            lambda: self.deploy_repositories(found),
            self.timeout * 2,
        )
        return [app, installations, deploy]

    async def _guard(self, name: str, setting: str, check: Callable[[], Awaitable[Check]], limit: float) -> Check:
        try:
            return await asyncio.wait_for(check(), limit)
        except TimeoutError:
            return failed(name, f"no answer within {limit:g} s", setting)
        except Exception as exc:  # a check must report, never raise: the others still run
            log.debug("doctor: %s raised", name, exc_info=True)
            return failed(name, _why(exc), setting)

    # -- GitHub ------------------------------------------------------------------------------
    def _github_error(self, name: str, exc: Exception) -> Check:
        if isinstance(exc, BadRequest) and exc.status_code in (401, 403):
            return failed(
                name,
                f"GitHub rejected the App's JWT ({exc.status_code}): the private key does not belong to "
                f"App {getattr(self.github, 'app_id', '?')} (or MODELSHIP_GITHUB_APP_ID is wrong)",
                self.key_setting,
            )
        if isinstance(exc, BadRequest) and exc.status_code == 404:
            api = getattr(self.github, "api_url", "")
            return failed(name, f"{api} has no /app endpoint: is it GitHub's REST API root?", API_SETTING)
        if isinstance(exc, GitHubException):
            return failed(name, f"GitHub did not answer: {_why(exc)}", API_SETTING)
        return failed(name, _why(exc), API_SETTING)

    async def github_app(self) -> Check:
        """Mint the App's JWT and GET /app with it."""
        if isinstance(self.github, Check):
            return self.github
        try:
            client = await self.github.app_client()
            app = await client.getitem("/app")
        except Exception as exc:
            return self._github_error("github_app", exc)
        return ok("github_app", f"App {app.get('slug') or app.get('name')} (id {app.get('id')}) at {client.base_url}")

    async def _installations(self) -> tuple[Check, list[dict[str, Any]]]:
        name = "github_installations"
        assert not isinstance(self.github, Check)
        github = self.github
        try:
            client = await github.app_client()
            found = [i async for i in client.getiter("/app/installations?per_page=100")]
        except Exception as exc:
            return self._github_error(name, exc), []
        if not found:
            # A new App has none yet: not a fault (the installation webhook will come to a ready server).
            return ok(name, "no installations yet: install the App on a repository"), []
        refused = []
        for installation in found:
            account = (installation.get("account") or {}).get("login", "?")
            try:
                await asyncio.wait_for(github.installation_token(int(installation["id"])), self.timeout)
            except Exception as exc:
                refused.append(f"{account} (installation {installation['id']}): {_why(exc)}")
        if refused:
            return (
                failed(
                    name,
                    f"no access token for {len(refused)} of {len(found)} installations: " + "; ".join(refused),
                    "the App's installation (suspended or removed? reinstall it)",
                ),
                found,
            )
        accounts = ", ".join(sorted({(i.get("account") or {}).get("login", "?") for i in found}))
        return ok(name, f"{len(found)} installation(s) ({accounts}); a token minted for each"), found

    async def deploy_repositories(self, installations: Sequence[dict[str, Any]]) -> Check:
        """Each `deploy.repository` named by an installed repository's default-branch `.modelship.yml`
        has the App installed with contents: write, and that installation can read it."""
        name = "deploy_repositories"
        assert not isinstance(self.github, Check)
        github = self.github
        wanted: dict[str, list[str]] = {}  # deploy repository -> the repositories that name it
        read = 0
        for installation in installations:
            gh = await github.for_installation(int(installation["id"]))
            async for repo in gh.getiter("/installation/repositories?per_page=100", iterable_key="repositories"):
                if read >= self.max_repos:
                    break
                read += 1
                config = await read_repo_config(gh, repo["full_name"], repo.get("default_branch"))
                if isinstance(config, RepoConfig) and config.deploy is not None:
                    wanted.setdefault(config.deploy.repository, []).append(repo["full_name"])
        capped = f" (the first {self.max_repos} repositories)" if read >= self.max_repos else ""
        if not wanted:
            return ok(name, f"no {CONFIG_PATH} names a deploy repository{capped}")
        app = await github.app_client()
        problems: list[tuple[str, str]] = []
        for deploy, sources in sorted(wanted.items()):
            fix = f"install the App on {deploy} with contents: write, or change deploy.repository in {sources[0]}"
            try:
                installation = await app.getitem(f"/repos/{deploy}/installation")
            except BadRequest as exc:
                if exc.status_code != 404:
                    raise
                problems.append((f"{deploy} (named by {', '.join(sources)}): the App is not installed there", fix))
                continue
            if (installation.get("permissions") or {}).get("contents") != "write":
                problems.append((f"{deploy}: the App's installation cannot write contents", fix))
                continue
            gh = await github.for_installation(int(installation["id"]))
            repo = await gh.getitem(f"/repos/{deploy}")
            if (repo.get("permissions") or {}).get("push") is False:
                problems.append((f"{deploy}: no push permission", fix))
        if problems:
            return failed(name, "; ".join(p for p, _ in problems), problems[0][1])
        return ok(name, f"{', '.join(sorted(wanted))}: installed with contents: write, reachable{capped}")

    # -- database ----------------------------------------------------------------------------
    async def database(self) -> Check:
        from bot.store.db import schema_revisions

        name = "database"
        where = self.engine.url.render_as_string(hide_password=True)
        database = self.engine.url.database
        if self.engine.url.get_backend_name() == "sqlite" and database and not _exists(database):
            return failed(name, f"no database at {database}: run `modelship migrate`", DATABASE_SETTING)
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            current, heads = await schema_revisions(self.engine)
        except Exception as exc:
            return failed(name, f"cannot use {where}: {_why(exc)}", DATABASE_SETTING)
        if current != heads:
            have = ", ".join(sorted(current)) or "empty"
            return failed(
                name,
                f"{where} is at schema {have}, this version needs {', '.join(sorted(heads))}: run `modelship migrate`",
                DATABASE_SETTING,
            )
        return ok(name, f"{where} at the newest schema ({', '.join(sorted(heads))})")

    # -- sandbox -----------------------------------------------------------------------------
    async def sandbox_check(self) -> Check:
        """Start a hardened container from the runner image and import the ML stack in it."""
        name = "sandbox"
        if isinstance(self.sandbox, Check):
            return self.sandbox
        if self.sandbox.turned_off:
            return ok(name, "turned off (MODELSHIP_SANDBOX=off): reviews are turned off on this server")
        if self.sandbox.runner is None:
            return failed(
                name,
                f"no container engine: {self.sandbox.unavailable_reason} (or set MODELSHIP_SANDBOX=off)",
                ENGINE_SETTING,
            )
        spec = SandboxSpec(
            image=self.sandbox.image,
            argv=("python", "-c", PROBE),
            memory_bytes=1024 * MiB,
            timeout_s=self.sandbox_timeout,
            env={"HOME": SCRATCH_DIR, "TMPDIR": SCRATCH_DIR, "OMP_NUM_THREADS": "1"},
        )
        run = await self.sandbox.runner.run(spec)
        if run.ok and isinstance(run.result, dict):
            versions = ", ".join(f"{m} {run.result.get(m)}" for m in ML_STACK)
            return ok(name, f"image {self.sandbox.image} ran hardened in {run.duration_s:.1f} s; {versions}")
        error = run.error or "no result"
        # An engine that cannot be reached, or that would weaken the hardening, is the engine's fault;
        # anything else (missing image, no python in it, a failed import) is the image's.
        if error.startswith(("container engine unreachable", "refused to start the sandbox")):
            return failed(name, error, ENGINE_SETTING)
        return failed(name, f"image {self.sandbox.image}: {error}", IMAGE_SETTING)

    # -- Prometheus --------------------------------------------------------------------------
    async def prometheus_check(self) -> Check:
        name = "prometheus"
        if self.prometheus is None:
            return ok(name, "not configured: the guard watches no deployment (MODELSHIP_PROMETHEUS_URL)")
        # The guard's own client and endpoint (/api/v1/query): anything speaking it passes, not only Prometheus.
        result = await self.prometheus.query("vector(1)")
        where = without_password(self.prometheus_url or "")
        if result.outcome is Outcome.VALUE and result.value == 1:
            return ok(name, f"{where} answers queries")
        return failed(name, result.describe(), PROMETHEUS_SETTING)

    # -- OCI registry ------------------------------------------------------------------------
    async def registry_check(self) -> Check:
        name = "registry"
        if self.registry is None:
            return ok(name, "not configured: reviews publish nothing, deploys pin the file sha256 alone")
        from contract.oci import ArtifactError

        try:
            await self.registry.ping()
        except ArtifactError as exc:  # RegistryError: unreachable, or credentials refused
            return failed(name, str(exc), REGISTRY_SETTING)
        return ok(name, f"{self.registry.name} answers the OCI distribution API")


def _exists(path: str) -> bool:
    from pathlib import Path

    return path == ":memory:" or Path(path).exists()


def render(checks: Sequence[Check]) -> str:
    return "\n".join(c.line() for c in checks)


def render_json(checks: Sequence[Check]) -> str:
    return json.dumps({"ok": all(c.ok for c in checks), "checks": [c.as_dict() for c in checks]}, indent=2)


@dataclass
class Checkup:
    """The doctor behind `/readyz`: the last results, refreshed every ``interval`` seconds in the
    background (each refresh asks GitHub a handful of requests and runs one sandbox container)."""

    doctor: Doctor
    interval: float = 300.0
    checks: list[Check] = field(default_factory=list)
    checked_at: float | None = None
    clock: Callable[[], float] = time.time

    async def refresh(self) -> list[Check]:
        checks = await self.doctor.run()
        self.checks, self.checked_at = checks, self.clock()
        for check in checks:
            if check.ok:
                log.info("doctor: %s", check.line(), extra={"check": check.name})
            else:
                log.error("doctor: %s", check.line(), extra={"check": check.name, "setting": check.setting})
        return checks

    async def run(self) -> None:
        """Check at start-up, then every interval (a background loop of `serve`)."""
        while True:
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any one bad round
                log.exception("doctor: a round of checks failed")
            await asyncio.sleep(self.interval)

    def report(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "failed": [c.name for c in self.checks if not c.ok],
            "checks": [c.as_dict() for c in self.checks],
        }
