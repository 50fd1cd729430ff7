"""Service settings: environment variables with the MODELSHIP_ prefix, optionally a YAML file.

Only the entry point (bot.cli) builds a Settings; everything else receives the values it needs.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

if TYPE_CHECKING:
    from bot.config.deploy_allowlist import DeployAllowlist


# Where the product's data lives — charts/, config/promql/, and (for the local runner image) pipelines/
# and scripts/: the repository root, in a checkout and in an editable install. The one place that decides
# it; everything else receives the paths from settings (bot.app passes them on).
SOURCE_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(Exception):
    """Start-up configuration is invalid; ``problems`` holds one line per bad key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))


class _YamlSource(PydanticBaseSettingsSource):
    """Reads MODELSHIP_CONFIG (a YAML mapping of setting names, lower case, without prefix)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None:
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise SettingsError([f"MODELSHIP_CONFIG: cannot read {path}: {exc}"]) from exc
            if not isinstance(loaded, dict):
                raise SettingsError([f"MODELSHIP_CONFIG: {path} must hold a mapping of settings"])
            self._data = {str(k).lower(): v for k, v in loaded.items()}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELSHIP_", extra="ignore")

    webhook_secret: SecretStr = Field(description="Secret shared with the GitHub App's webhook (required).")
    github_app_id: int | None = Field(default=None, description="The GitHub App's numeric id.")
    github_private_key_path: Path | None = Field(default=None, description="PEM file of the App's key.")
    github_private_key: SecretStr | None = Field(default=None, description="The App's PEM key inline.")
    github_app_slug: str = Field(default="modelship", description="The App's slug; '<slug>[bot]' is ignored.")
    github_api_url: str = Field(default="https://api.github.com", description="REST API root (GHES: /api/v3).")
    data_dir: Path = Field(default=Path(".modelship"), description="Where SQLite, clones and results live.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir.")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port to listen on.")
    container_engine_url: str | None = Field(
        default=None, description="Docker Engine API endpoint; falls back to DOCKER_HOST."
    )
    repo_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="owner/repo or owner/* patterns; empty allows all."
    )
    sandbox: Literal["on", "off"] = Field(
        default="on",
        description="'off' runs the service without an evaluation sandbox: every review says reviews are "
        "turned off. Without it, serve refuses to start when no container engine is configured.",
    )
    deploy_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="MODEL=DEPLOY owner/name patterns a model repository may deploy to ({owner}: the model "
        "repository's owner); empty: only repositories of the same owner. Always within one installation.",
    )
    deploy_root: str = Field(
        default="environments/",
        description="Directory of the deploy repository that deploy.path_template must stay under.",
    )
    sandbox_image: str = Field(default="modelship-runner:local", description="Runner image for evaluations.")
    sandbox_mount_runtime: bool = Field(
        default=False,
        description="Bind-mount this machine's Python runtime and venv into the runner image (the locally "
        "built image needs it; the production image does not).",
    )
    sandbox_max_cpus: float = Field(
        default=2.0, gt=0, le=64, description="Ceiling on `.modelship.yml` sandbox.cpus (higher asks are lowered)."
    )
    sandbox_max_memory_bytes: int = Field(
        default=4 * 1024**3, ge=64 * 1024**2, description="Ceiling on `.modelship.yml` sandbox.memory, in bytes."
    )
    sandbox_max_timeout_seconds: float = Field(
        default=1800.0, gt=0, le=6 * 3600, description="Ceiling on `.modelship.yml` sandbox.timeout, in seconds."
    )
    sandbox_out_max_bytes: int = Field(
        default=512 * 1024**2,
        ge=0,
        description="Size of the tmpfs the runner mounts as the sandbox's /out (0: an uncapped host directory).",
    )
    sandbox_out_max_files: int = Field(default=10_000, ge=16, description="Inodes of the /out tmpfs.")
    sandbox_export_max_bytes: int = Field(
        default=1024**3, ge=1, description="Largest PR tree (sum of file sizes) exported for the sandbox."
    )
    sandbox_export_max_files: int = Field(default=20_000, ge=1, description="Most files in an exported PR tree.")
    sandbox_keep_max_bytes: int = Field(
        default=1024**3, ge=0, description="Bytes of variant files kept from one sandbox run."
    )
    sandbox_keep_max_files: int = Field(default=32, ge=0, description="Variant files kept from one sandbox run.")
    sandbox_reuse_seconds: float = Field(
        default=900.0,
        ge=0,
        le=24 * 3600,
        description="How long a successful sandbox result answers a later run with byte-identical inputs, image "
        "and limits (e.g. the base side of many PRs against one base commit; the review says so); 0 turns it off.",
    )
    sandbox_backend: Literal["docker", "kubernetes"] = Field(
        default="docker",
        description="Where sandbox runs happen: 'docker' (a Docker Engine API, MODELSHIP_CONTAINER_ENGINE_URL) or "
        "'kubernetes' (a Job per run in MODELSHIP_KUBERNETES_NAMESPACE; needs MODELSHIP_REGISTRY).",
    )
    kubernetes_namespace: str = Field(
        default="modelship-sandbox", description="Namespace the Kubernetes sandbox's Jobs and NetworkPolicy live in."
    )
    kubernetes_kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig for the Kubernetes sandbox (and, when set, live tracking's rollout status); unset: "
        "the pod's in-cluster service account.",
    )
    kubernetes_runtime_class: str | None = Field(
        default=None, description="runtimeClassName of every sandbox pod (e.g. gVisor's); unset: the cluster default."
    )
    kubernetes_inputs_image: str | None = Field(
        default=None,
        description="The trusted image (the product image, on MODELSHIP_REGISTRY) the review inputs are layered on "
        "and whose init container copies them into the pod; unset: MODELSHIP_SANDBOX_IMAGE.",
    )
    kubernetes_instance: str | None = Field(
        default=None,
        description="This replica's name on its sandbox Jobs, so a restart deletes its orphans; unset: HOSTNAME.",
    )
    artifacts_max_bytes: int = Field(
        default=4 * 1024**3, ge=0, description="Total size of data_dir/artifacts before old runs are removed."
    )
    artifacts_max_runs: int = Field(
        default=200, ge=0, description="Kept runs under data_dir/artifacts before old ones are removed."
    )
    registry: str | None = Field(
        default=None,
        description="OCI registry reviewed variants are published to, host[:port][/prefix]; deploys then pin "
        "model.artifact by digest. Unset: no publishing, deploys pin the model file's sha256 alone.",
    )
    registry_username: str | None = Field(default=None, description="User name for MODELSHIP_REGISTRY.")
    registry_password: SecretStr | None = Field(
        default=None, description="Password or token for MODELSHIP_REGISTRY (or MODELSHIP_REGISTRY_PASSWORD_FILE)."
    )
    registry_password_file: Path | None = Field(
        default=None, description="File holding the MODELSHIP_REGISTRY password (e.g. a mounted Secret)."
    )
    registry_insecure: bool = Field(
        default=False, description="Speak plain HTTP to MODELSHIP_REGISTRY (a local registry without TLS)."
    )
    prometheus_url: str | None = Field(
        default=None, description="Prometheus HTTP API root the guard queries; unset disables the guard."
    )
    guard_interval_seconds: float = Field(default=30.0, gt=0, le=3600, description="Default guard check interval.")
    live_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="How often live tracking asks Prometheus whether each rolling-out deploy is served.",
    )
    charts_dir: Path = Field(
        default=SOURCE_ROOT / "charts",
        description="Helm charts; a deploy renders model-server with the new values through Helm before committing.",
    )
    promql_dir: Path = Field(
        default=SOURCE_ROOT / "config" / "promql",
        description="The guard's PromQL templates (one YAML file per check template).",
    )
    workers: int = Field(default=2, ge=0, le=64, description="Concurrent job workers; 0 runs intake only.")
    job_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Lease of a running job; a crashed worker's job is claimed again after it expires.",
    )
    max_attempts: int = Field(default=5, ge=1, le=100, description="Attempts before a job is parked.")
    log_level: str = Field(default="INFO", description="Log level.")
    http_max_connections: int = Field(
        default=512,
        ge=8,
        le=100_000,
        description="Open connections the listener keeps; a new one evicts the oldest idle connection.",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Time a connection has to send a whole request head."
    )
    http_body_timeout_seconds: float = Field(
        default=20.0, gt=0, le=600, description="Time a webhook request has to send its whole body."
    )
    http_body_bytes_in_flight: int = Field(
        default=100 * 1024 * 1024,
        ge=40 * 1024 * 1024,  # three quarters of it must hold one 25 MB body
        description="Bytes of webhook bodies read at once; beyond it intake answers 503 with Retry-After.",
    )
    ui: Literal["on", "off"] = Field(
        default="off",
        description="'on' serves the dashboard under /ui (sign-in with GitHub: needs the ui_* client settings).",
    )
    ui_client_id: str | None = Field(default=None, description="The GitHub App's client id (user sign-in).")
    ui_client_secret: SecretStr | None = Field(default=None, description="The GitHub App's client secret.")
    ui_session_secret: SecretStr | None = Field(
        default=None, description="Key that signs dashboard session cookies (32+ random characters)."
    )
    ui_session_hours: float = Field(default=8.0, gt=0, le=24 * 7, description="Dashboard session lifetime.")
    ui_allowed: str = Field(
        default="", description="Restrict the dashboard to members of an org ('acme') or a team ('acme/ml')."
    )
    ui_public_url: str | None = Field(
        default=None,
        description="The dashboard's external base URL (https://bot.example); the OAuth callback is built on it.",
    )
    github_web_url: str = Field(
        default="https://github.com", description="GitHub's web root (sign-in pages; GHES: https://ghe.example)."
    )

    notify_slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL events are posted to (a secret; never from a repository)."
    )
    notify_slack_events: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Events Slack gets: comma-separated names or globs (deploy.*); empty: all."
    )
    notify_webhook_url: SecretStr | None = Field(
        default=None, description="Generic webhook URL events are POSTed to, signed with notify_webhook_secret."
    )
    notify_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of the generic webhook's X-Modelship-Signature-256."
    )
    notify_webhook_events: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Events the generic webhook gets (like notify_slack_events)."
    )
    notify_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Attempts to deliver one event (capped exponential back-off)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("MODELSHIP_CONFIG")
        return (init_settings, env_settings, _YamlSource(settings_cls, Path(path) if path else None))

    @field_validator("repo_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("sandbox_backend", mode="before")
    @classmethod
    def _backend(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("sandbox", "ui", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        # YAML reads a bare `off` as false.
        if isinstance(value, bool):
            return "on" if value else "off"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("deploy_allowlist", mode="before")
    @classmethod
    def _split_deploy_allowlist(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("notify_slack_events", "notify_webhook_events", mode="before")
    @classmethod
    def _split_events(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("notify_slack_events", "notify_webhook_events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        from bot.config.notify_events import check_filters

        return check_filters(value)

    @field_validator("notify_slack_webhook_url", "notify_webhook_url")
    @classmethod
    def _notify_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")  # the value itself is a secret: not echoed
        return value

    @field_validator("deploy_allowlist")
    @classmethod
    def _deploy_pairs(cls, value: list[str]) -> list[str]:
        from bot.config.deploy_allowlist import DeployAllowlist

        DeployAllowlist.parse(value)  # a ValueError names the bad entry
        return value

    @field_validator("deploy_root")
    @classmethod
    def _deploy_root(cls, value: str) -> str:
        from bot.config.repo import normal_deploy_root

        return normal_deploy_root(value)

    @field_validator("webhook_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_validator("github_api_url", "github_web_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://api.github.com or https://ghe.example/api/v3")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if "://" in value:
            raise ValueError("must be host[:port][/prefix] without a scheme (MODELSHIP_REGISTRY_INSECURE for HTTP)")
        host, _, prefix = value.partition("/")
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", host):
            raise ValueError(f"{host!r} is not a host[:port]")
        if prefix and not re.fullmatch(r"[a-z0-9]+(?:[._/-]+[a-z0-9]+)*", prefix):
            raise ValueError(f"prefix {prefix!r} must be lower-case letters, digits, '.', '_', '-' and '/'")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    @field_validator("ui_session_secret")
    @classmethod
    def _session_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.container_engine_url is None and os.environ.get("DOCKER_HOST"):
            self.container_engine_url = os.environ["DOCKER_HOST"]
        if self.notify_webhook_url is not None and not (
            self.notify_webhook_secret and self.notify_webhook_secret.get_secret_value()
        ):
            raise ValueError("notify_webhook_url needs notify_webhook_secret: receivers verify every event with it")
        if self.github_private_key_path is not None and not self.github_private_key_path.is_file():
            raise ValueError(f"github_private_key_path: no such file {self.github_private_key_path}")
        if self.registry_password is not None and self.registry_password_file is not None:
            raise ValueError(
                "registry_password: set MODELSHIP_REGISTRY_PASSWORD or MODELSHIP_REGISTRY_PASSWORD_FILE, not both"
            )
        if self.registry_password_file is not None and not self.registry_password_file.is_file():
            raise ValueError(f"registry_password_file: no such file {self.registry_password_file}")
        has_password = self.registry_password is not None or self.registry_password_file is not None
        if (self.registry_username is None) == has_password:
            if self.registry_username is not None:
                raise ValueError("registry_password: MODELSHIP_REGISTRY_USERNAME is set but no password (or _FILE)")
            raise ValueError("registry_username: a registry password is set but MODELSHIP_REGISTRY_USERNAME is not")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'modelship.db').resolve()}"

    def private_key_pem(self) -> str | None:
        if self.github_private_key is not None:
            return self.github_private_key.get_secret_value()
        if self.github_private_key_path is not None:
            return self.github_private_key_path.read_text()
        return None

    def registry_credentials(self) -> tuple[str, str] | None:
        """(user, password) for MODELSHIP_REGISTRY, the password from the setting or its file; never logged."""
        if self.registry_username is None:
            return None
        if self.registry_password is not None:
            return self.registry_username, self.registry_password.get_secret_value()
        assert self.registry_password_file is not None
        return self.registry_username, self.registry_password_file.read_text().strip()

    @functools.cached_property
    def deploy_pairs(self) -> DeployAllowlist:
        """MODELSHIP_DEPLOY_ALLOWLIST, parsed (bot.deploy.tenancy)."""
        from bot.config.deploy_allowlist import DeployAllowlist

        return DeployAllowlist.parse(self.deploy_allowlist)

    def repo_allowed(self, full_name: str) -> bool:
        return self._allowlist_pattern is None or bool(self._allowlist_pattern.match(full_name))

    @functools.cached_property
    def _allowlist_pattern(self) -> re.Pattern[str] | None:
        # Checked on every delivery: one compiled pattern instead of fnmatch per entry.
        if not self.repo_allowlist:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.repo_allowlist))


def load_settings(**overrides: Any) -> Settings:
    """Build Settings or raise SettingsError naming every bad key as its environment variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = "_".join(str(p) for p in err["loc"]) if err["loc"] else ""
            name = f"MODELSHIP_{key.upper()}" if key else "settings"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is required but not set"
            problems.append(f"{name}: {msg}")
        raise SettingsError(problems) from None
    except SourceError as exc:
        raise SettingsError([str(exc)]) from None
