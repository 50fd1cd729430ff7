"""The repository config `.modelship.yml`: schema, parsing, and errors that name key and line.

The config is read from the PR's base branch, so a PR cannot change the policy that judges it.
Every section forbids unknown keys: a typo must fail loudly rather than silently drop a gate.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contract.metrics import DEFAULT_METRICS, METRICS_BY_TASK, OPERATIONAL_METRICS

CONFIG_PATH = ".modelship.yml"
MAX_CONFIG_BYTES = 256 * 1024
# Aliases let a small document expand exponentially ("billion laughs"); cap the expanded size.
MAX_YAML_NODES = 20_000

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_PRINCIPAL = r"^(team:[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?|user:[A-Za-z0-9](-?[A-Za-z0-9])*)$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def _at(*where: str | int, message: str) -> PydanticCustomError:
    """An error for a key below the validated object; `problems_from` appends `where` to its location."""
    return PydanticCustomError("modelship", "{message}", {"message": message, "at": where})


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"'{value}' is not a duration: write a number with a unit, like 30s, 5m or 1h")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


def _size(value: Any) -> Any:
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"'{value}' is not a size: write a number with a unit, like 512m or 2g")
        power = " kmgt".index(match.group(2).lower() or " ")
        return int(float(match.group(1)) * 1024**power)
    return value


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value.strip() or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"'{value}' must be a path relative to the repository root, without '..'")
    return value


DEFAULT_DEPLOY_ROOT = "environments/"
MAX_DEPLOY_PATH = 255
# Components a deploy path may never have: git's own directory (hooks run code in every clone) and
# GitHub's (workflows run code with the repository's secrets). Compared case-insensitively, since
# some checkouts are on case-insensitive file systems.
FORBIDDEN_COMPONENTS = (".git", ".github")


def _component_problem(part: str) -> str | None:
    if part in ("", ".", ".."):
        return "must be normalised: no empty, '.' or '..' components"
    if part.lower() in FORBIDDEN_COMPONENTS:
        return f"must never have a '{part}' component (git and GitHub run code from there)"
    # `.{env}` or `.gi{model}` could still become `.git` once the names are filled in.
    if part.startswith(".") and "{" in part:
        return f"'{part}': a component that starts with '.' must not contain a placeholder"
    return None


def normal_deploy_root(value: str) -> str:
    """MODELSHIP_DEPLOY_ROOT as ``dir/sub/`` ('' for the whole repository, written '.')."""
    text = value.strip()
    if text in (".", "./"):
        return ""
    if not text or text.startswith("/") or "\\" in text or "{" in text:
        raise ValueError(f"{value!r} must be a relative directory like environments/ (or . for the whole repository)")
    parts = text.rstrip("/").split("/")
    for part in parts:
        problem = _component_problem(part)
        if problem:
            raise ValueError(f"{value!r} {problem}")
    return "/".join(parts) + "/"


def deploy_path_problem(template: str, root: str | None) -> str | None:
    """Why ``deploy.path_template`` may not be written to, or None. ``root`` (normalised, see
    ``normal_deploy_root``): where it must stay; None skips that rule (a caller that never deploys)."""
    if len(template) > MAX_DEPLOY_PATH:
        return f"must be at most {MAX_DEPLOY_PATH} characters (it has {len(template)})"
    if not template.strip() or template.startswith("/") or "\\" in template:
        return "must be a path relative to the deploy repository's root, with '/' separators"
    if any(ord(c) < 32 or c == "\x7f" for c in template):
        return "must not contain control characters"
    for part in template.split("/"):
        problem = _component_problem(part)
        if problem:
            return problem
    if root and not template.startswith(root):
        return (
            f"must be under '{root}' (the server's MODELSHIP_DEPLOY_ROOT), e.g. '{root}{{env}}/{{model}}/values.yaml'"
        )
    return None


# Durations are seconds once parsed; the schema documents both spellings users may write.
Duration = Annotated[
    float,
    BeforeValidator(_duration),
    Field(ge=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: seconds, or a number with a unit (ms, s, m, h), e.g. 600s.",
        }
    ),
]
ByteSize = Annotated[
    int,
    BeforeValidator(_size),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[iI]?[bB]?\s*$"},
                {"type": "integer", "minimum": 1},
            ],
            "description": "Bytes, or a number with a binary unit (k, m, g, t), e.g. 2g.",
        }
    ),
]
RepoPath = Annotated[str, AfterValidator(_relative_path)]
Name = Annotated[str, Field(pattern=_NAME)]


_REPOSITORY = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_PATTERN_HELP = {
    _DNS_LABEL: "must be a Kubernetes name: lower-case letters, digits and '-', starting and ending with a letter "
    "or digit (at most 63)",
    _NAME: "must start with a letter or digit and use only letters, digits, '.', '_' and '-' (at most 63)",
    _REPOSITORY: "must be 'owner/name'",
    _PRINCIPAL: "must be 'team:<slug>' (or 'team:<org>/<slug>') or 'user:<login>'",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sandbox(_Section):
    image: str | None = Field(default=None, description="Runner image; null uses the server's default.")
    cpus: float = Field(default=1.0, gt=0, le=64, description="CPU cores for one evaluation.")
    memory: ByteSize = Field(default=2 * 1024**3, description="Memory limit, e.g. 2g.")
    timeout: Duration = Field(default=600.0, gt=0, le=6 * 3600, description="Wall-clock limit, e.g. 600s.")


class Dataset(_Section):
    path: RepoPath = Field(description="CSV or Parquet file in the repository.")
    target: str = Field(min_length=1, description="Name of the target column.")

    @field_validator("path")
    @classmethod
    def _tabular(cls, value: str) -> str:
        if PurePosixPath(value).suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise ValueError(f"'{value}' must be a .csv or .parquet file")
        return value


class Train(_Section):
    command: str = Field(min_length=1, description="Command that builds the model inside the sandbox.")


class Gate(_Section):
    min: float | None = Field(default=None, description="The head's value must be at least this.")
    max: float | None = Field(default=None, description="The head's value must be at most this.")
    min_delta: float | None = Field(default=None, description="Head minus base must be at least this.")
    max_delta: float | None = Field(default=None, description="Head minus base must be at most this.")

    @model_validator(mode="after")
    def _sensible(self) -> Gate:
        if all(v is None for v in (self.min, self.max, self.min_delta, self.max_delta)):
            raise ValueError("a gate needs at least one of min, max, min_delta, max_delta")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _at("min", message=f"min ({self.min}) is greater than max ({self.max})")
        if self.min_delta is not None and self.max_delta is not None and self.min_delta > self.max_delta:
            raise _at(
                "min_delta",
                message=f"min_delta ({self.min_delta}) is greater than max_delta ({self.max_delta})",
            )
        return self


_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
_MODEL_SUFFIXES = (".onnx", ".skops", *_PICKLE_SUFFIXES)


class ModelSpec(_Section):
    name: Name = Field(description="Unique model name; used in reports and deploy paths.")
    # Declared before path so that the path's check can see it.
    allow_pickle: bool = Field(
        default=False,
        description=(
            "Allow loading pickle/joblib files, and skops files that need types off the reviewed list "
            "(either runs their code in the sandbox)."
        ),
    )
    path: RepoPath = Field(description="Model file: .onnx or .skops; .joblib/.pkl need allow_pickle: true.")
    task: Literal["classification", "regression"]
    dataset: Dataset
    train: Train | None = None
    metrics: list[str] = Field(
        default_factory=list, validate_default=True, description="Metrics shown; empty = the task's defaults."
    )
    gates: dict[str, Gate] = Field(default_factory=dict, description="Pass/fail rules per metric.")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str], info: ValidationInfo) -> list[str]:
        task = info.data.get("task")
        if task is None:
            return value
        allowed = METRICS_BY_TASK[task]
        for i, metric in enumerate(value):
            if metric not in allowed:
                raise _at(i, message=_unknown(metric, allowed, f"metric for a {task} model"))
        return value or list(DEFAULT_METRICS[task])

    @field_validator("gates")
    @classmethod
    def _known_gates(cls, value: dict[str, Gate], info: ValidationInfo) -> dict[str, Gate]:
        task = info.data.get("task")
        if task is None:
            return value
        allowed = METRICS_BY_TASK[task] + OPERATIONAL_METRICS
        for metric in value:
            if metric not in allowed:
                raise _at(metric, message=_unknown(metric, allowed, f"gate metric for a {task} model"))
        return value

    @field_validator("path")
    @classmethod
    def _format(cls, value: str, info: ValidationInfo) -> str:
        suffix = PurePosixPath(value).suffix.lower()
        if suffix not in _MODEL_SUFFIXES:
            raise ValueError(f"'{value}' must end in .onnx or .skops (or .joblib/.pkl with allow_pickle)")
        if suffix in _PICKLE_SUFFIXES and not info.data.get("allow_pickle", False):
            raise ValueError(
                f"'{value}' is a pickle, which runs code when loaded: export the model to .onnx "
                "or .skops, or set allow_pickle: true on this model"
            )
        return value


class Optimize(_Section):
    onnx: bool = Field(default=True, description="Convert to ONNX and benchmark the variants.")
    quantize: Literal["dynamic", "static", "none"] = "dynamic"
    parity_tolerance: float = Field(default=1e-4, ge=0, description="Max prediction difference to keep parity.")
    select: Literal["auto", "original", "fp32", "int8"] = Field(
        default="auto", description="Variant to deploy; auto = fastest that holds parity and passes gates."
    )


class Check(_Section):
    template: Literal["error_rate", "latency_p95", "prediction_drift"] = Field(
        description="A server-side PromQL template."
    )
    max: float | None = None
    min: float | None = None
    window: Duration = Field(default=300.0, gt=0, description="Range the query looks at, e.g. 5m.")

    @model_validator(mode="after")
    def _threshold(self) -> Check:
        if self.max is None and self.min is None:
            raise ValueError(f"the {self.template} check needs a threshold: add max or min")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"the {self.template} check's min {self.min:g} is above its max {self.max:g}")
        return self


@dataclass(frozen=True)
class GuardDefaults:
    """What a ``guard`` section leaves out; the guard's analysis (bot.guard.analysis) uses the same."""

    initial_delay: float = 60.0
    failure_limit: int = 3
    on_no_data: Literal["inconclusive", "pass", "fail"] = "inconclusive"
    consecutive_error_limit: int = 5


GUARD_DEFAULTS = GuardDefaults()


class Guard(_Section):
    interval: Duration = Field(default=30.0, ge=1, description="Time between analyses, e.g. 30s.")
    initial_delay: Duration = Field(
        default=GUARD_DEFAULTS.initial_delay, description="Wait after a deploy before the first analysis."
    )
    failure_limit: int = Field(
        default=GUARD_DEFAULTS.failure_limit, ge=1, description="Consecutive failed analyses before a rollback."
    )
    on_no_data: Literal["inconclusive", "pass", "fail"] = GUARD_DEFAULTS.on_no_data
    consecutive_error_limit: int = Field(
        default=GUARD_DEFAULTS.consecutive_error_limit, ge=1, description="Prometheus errors in a row before alerting."
    )
    auto_merge: bool = Field(default=False, description="Merge the rollback PR at once.")
    checks: list[Check] = Field(min_length=1)


class KubernetesTarget(_Section):
    """The cluster object an environment runs as: its rollout is read from the Kubernetes API."""

    namespace: str = Field(pattern=_DNS_LABEL, description="Namespace of the model server's Deployment.")
    deployment: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", description="Name of the model server's Deployment."
    )


class Environment(_Section):
    auto: bool = Field(default=False, description="Deploy automatically on merge.")
    via: Literal["commit", "pull_request"] = Field(default="commit", description="Direct commit or deploy-repo PR.")
    allowed: list[Annotated[str, Field(pattern=_PRINCIPAL)]] = Field(
        default_factory=list, description="Who may deploy: 'team:slug' or 'user:login'; empty = write access."
    )
    requires: list[Literal["approved", "mergeable", "review_passed"]] = Field(
        default=None,  # type: ignore[arg-type]  # filled in by _default_requires
        description="What a deploy needs: approved (an approving review), mergeable, review_passed (the "
        "Modelship review of the exact head commit completed and passed every gate). Default: [review_passed] "
        "for auto environments, [] otherwise; `/modelship deploy <env> --force` by an admin (or someone in "
        "`allowed`) overrides review_passed.",
        json_schema_extra={"default": None},
    )
    upstream: str | None = Field(default=None, description="Environment promoted from.")
    require_healthy_upstream: bool = False
    guard: Guard | None = None
    # Live tracking (bot.deploy.live): a deploy is live once every ready replica serves the new file.
    progress_deadline: Duration = Field(
        default=600.0,
        description="How long a committed deploy may take to be served by every ready replica before it "
        "counts as failed, e.g. 10m (between 10s and 24h).",
    )
    on_not_live: Literal["rollback", "alert"] = Field(
        default="rollback",
        description="A deploy not live by progress_deadline: open the guard's rollback PR to the last live "
        "version (rollback), or only alert.",
    )

    @field_validator("progress_deadline")
    @classmethod
    def _deadline(cls, value: float) -> float:
        # Under 10 s no replica can even start; over a day nobody is still waiting for the deploy.
        if not 10 <= value <= 24 * 3600:
            raise ValueError(f"progress_deadline must be between 10s and 24h, got {value:g}s: write e.g. 10m")
        return value

    kubernetes: KubernetesTarget | None = Field(
        default=None,
        description="The Deployment this environment runs as ({namespace, deployment}); when set and the bot may "
        "read it, deploys show its rollout status (updated/available replicas, why pods are stuck).",
    )

    @model_validator(mode="after")
    def _default_requires(self) -> Environment:
        # An auto environment ships merges nobody looked at again: by default only those whose review
        # passed. Written out (even as []), the list is the repository's own choice.
        # Set in place (the model is frozen): pydantic keeps what an after-validator returns only when it
        # is `self`, so a copy would be dropped when the model is built directly.
        if self.requires is None:
            object.__setattr__(self, "requires", ["review_passed"] if self.auto else [])
        return self

    @model_validator(mode="after")
    def _upstream_needed(self) -> Environment:
        if self.require_healthy_upstream and self.upstream is None:
            raise _at("require_healthy_upstream", message="require_healthy_upstream needs upstream: <environment>")
        return self


class Deploy(_Section):
    repository: str = Field(pattern=_REPOSITORY, description="owner/name")
    path_template: str = Field(
        default=DEFAULT_DEPLOY_ROOT + "{env}/{model}/values.yaml",
        max_length=MAX_DEPLOY_PATH,
        description="Values file per environment and model; must stay under the server's MODELSHIP_DEPLOY_ROOT "
        "(default environments/) and never touch .git or .github. Default: <root>{env}/{model}/values.yaml.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_under_root(cls, data: Any, info: ValidationInfo) -> Any:
        # The default follows the operator's root, so a repository that never set it keeps working.
        root = _deploy_root(info)
        if isinstance(data, dict) and "path_template" not in data and root is not None:
            return {**data, "path_template": root + "{env}/{model}/values.yaml"}
        return data

    @field_validator("path_template")
    @classmethod
    def _placeholders(cls, value: str, info: ValidationInfo) -> str:
        fields = set(re.findall(r"{([^{}]*)}", value))
        if fields != {"env", "model"}:
            raise ValueError("path_template must use exactly the placeholders {env} and {model}")
        problem = deploy_path_problem(value, _deploy_root(info))
        if problem:
            raise ValueError(f"'{value}' {problem}")
        return value


def _deploy_root(info: ValidationInfo) -> str | None:
    """The operator's deploy root from the validation context (parse_repo_config's ``deploy_root``)."""
    context = info.context if isinstance(info.context, dict) else {}
    root = context.get("deploy_root", DEFAULT_DEPLOY_ROOT)
    return None if root is None else str(root)


class RepoConfig(_Section):
    """The whole `.modelship.yml`."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Modelship repository config (.modelship.yml)",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1] = Field(description="Config format version; must be 1.")
    paths: list[str] | None = Field(
        default=None,
        description="Globs of changes that trigger a review; null = the models' and datasets' files.",
    )
    draft: bool = Field(default=False, description="Review draft PRs too.")
    sandbox: Sandbox = Sandbox()
    models: list[ModelSpec] = Field(min_length=1)
    optimize: Optimize = Optimize()
    environments: dict[Name, Environment] = Field(default_factory=dict)
    deploy: Deploy | None = None

    @field_validator("paths")
    @classmethod
    def _globs(cls, value: list[str] | None) -> list[str] | None:
        for i, glob in enumerate(value or ()):
            try:
                _relative_path(glob)
            except ValueError as exc:
                raise _at(i, message=str(exc)) from None
        return value

    @field_validator("models")
    @classmethod
    def _unique(cls, value: list[ModelSpec]) -> list[ModelSpec]:
        seen: set[str] = set()
        for i, model in enumerate(value):
            if model.name in seen:
                raise _at(i, "name", message=f"model name '{model.name}' is used twice: names must be unique")
            seen.add(model.name)
        return value

    @model_validator(mode="after")
    def _references(self) -> RepoConfig:
        for name, env in self.environments.items():
            if env.upstream is not None and env.upstream not in self.environments:
                raise _at(
                    "environments",
                    name,
                    "upstream",
                    message=_unknown(env.upstream, tuple(self.environments), "environment"),
                )
        for name in self.environments:
            seen, current = {name}, self.environments[name].upstream
            while current is not None:
                if current in seen:
                    raise _at(
                        "environments",
                        name,
                        "upstream",
                        message=f"upstream environments form a cycle at '{name}'",
                    )
                seen.add(current)
                current = self.environments[current].upstream
        if self.environments and self.deploy is None:
            raise _at(
                "deploy",
                message="environments need a deploy repository: add deploy: {repository: owner/name}",
            )
        return self

    @property
    def review_paths(self) -> list[str]:
        """Globs whose changes trigger a review."""
        if self.paths is not None:
            return list(self.paths)
        return list(dict.fromkeys(p for m in self.models for p in (m.path, m.dataset.path)))

    def model(self, name: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == name), None)


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigProblem:
    key: str  # dotted path, list items as [i]: models[0].gates.f1.min_delta
    line: int | None  # 1-based line in the YAML file
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.key or '(top level)'}: {self.message}"


class RepoConfigError(Exception):
    """The config is invalid; ``problems`` says where and how to fix each issue."""

    def __init__(self, problems: list[ConfigProblem], path: str = CONFIG_PATH) -> None:
        self.problems = problems
        self.path = path
        super().__init__(f"invalid {path}:\n" + "\n".join(f"  - {p}" for p in problems))


Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------- YAML with lines


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading 1e-4 as a number the way YAML 1.2 (and editors) do."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


class _Walker:
    """Builds plain data from a YAML node tree, remembering the line of every key and item."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self.problems: list[ConfigProblem] = []
        self.budget = MAX_YAML_NODES

    def build(self, node: yaml.Node, loc: Loc, constructor: yaml.constructor.SafeConstructor) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooBig
        if isinstance(node, yaml.MappingNode):
            constructor.flatten_mapping(node)  # resolves merge keys (<<)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    self.problems.append(
                        ConfigProblem(dotted(loc), key_node.start_mark.line + 1, "keys must be plain names")
                    )
                    continue
                child = (*loc, str(key))
                if str(key) in {str(k) for k in out}:
                    self.problems.append(
                        ConfigProblem(
                            dotted(child),
                            key_node.start_mark.line + 1,
                            f"duplicate key '{key}': keep only one",
                        )
                    )
                self.lines.setdefault(child, key_node.start_mark.line + 1)
                out[str(key)] = self.build(value_node, child, constructor)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                self.lines.setdefault((*loc, i), item.start_mark.line + 1)
                items.append(self.build(item, (*loc, i), constructor))
            return items
        return constructor.construct_object(node, deep=True)


class _TooBig(Exception):
    pass


def _load(text: str) -> tuple[Any, dict[Loc, int]]:
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise RepoConfigError([ConfigProblem("", 1, f"the file is over {MAX_CONFIG_BYTES // 1024} KiB")])
    loader: ConfigLoader | None = None
    try:
        loader = ConfigLoader(text)
        node = loader.get_single_node()
        walker = _Walker()
        data = {} if node is None else walker.build(node, (), loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise RepoConfigError(
            [ConfigProblem("", line, f"YAML syntax error: {problem}; check indentation, colons and quotes")]
        ) from None
    except _TooBig:
        raise RepoConfigError(
            [ConfigProblem("", 1, f"the document expands to over {MAX_YAML_NODES} YAML nodes; avoid aliases")]
        ) from None
    except yaml.YAMLError as exc:  # e.g. control characters, which the reader refuses before parsing
        raise RepoConfigError([ConfigProblem("", 1, f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if walker.problems:
        raise RepoConfigError(walker.problems)
    return data, walker.lines


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1  # a key missing from the top level (or an empty file) belongs at the start


@cache
def _schema() -> dict[str, Any]:
    return RepoConfig.model_json_schema()


def _allowed_keys(loc: Loc) -> list[str]:
    """Keys the schema accepts at ``loc`` (a mapping's path), for did-you-mean hints."""
    schema = _schema()
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if "$ref" in node:
            yield from resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
        elif "anyOf" in node:
            for option in node["anyOf"]:
                yield from resolve(option)
        else:
            yield node

    nodes = [schema]
    for part in loc:
        nxt: list[dict[str, Any]] = []
        for node in nodes:
            for option in resolve(node):
                if isinstance(part, int) and "items" in option:
                    nxt.append(option["items"])
                elif isinstance(part, str) and part in option.get("properties", {}):
                    nxt.append(option["properties"][part])
                elif isinstance(part, str) and isinstance(option.get("additionalProperties"), dict):
                    nxt.append(option["additionalProperties"])
        nodes = nxt
    return sorted({key for node in nodes for option in resolve(node) for key in option.get("properties", {})})


def _unknown(value: str, allowed: tuple[str, ...] | list[str], what: str) -> str:
    close = difflib.get_close_matches(value, allowed, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "use one of: " + ", ".join(allowed)
    return f"'{value}' is not a known {what}; {hint}"


def _message(error: Any, loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        return _unknown(key, _allowed_keys(loc[:-1]), "key here") + " (remove or rename it)"
    if kind == "missing" and loc:
        return f"'{loc[-1]}' is required here: add it"
    if kind == "modelship":
        return str(error["ctx"]["message"])
    if loc == ("version",):
        return f"{error['input']!r} is not a config version Modelship knows: set version: 1"
    if kind == "too_short" and loc:
        return f"'{loc[-1]}' needs at least {error['ctx']['min_length']} item(s)"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "string_pattern_mismatch":
        pattern = error["ctx"]["pattern"]
        return f"'{error['input']}' {_PATTERN_HELP.get(pattern, f'must match {pattern}')}"
    if kind in ("model_type", "dict_type"):
        return f"'{loc[-1] if loc else 'the file'}' must be a mapping of keys, got {_shown(error['input'])}"
    if kind == "list_type":
        return f"'{loc[-1] if loc else 'the file'}' must be a list, got {_shown(error['input'])}"
    if kind in ("literal_error", "bool_parsing", "float_parsing", "int_parsing", "bool_type", "string_type"):
        return f"{message}, got {_shown(error['input'])}"
    return message


def _shown(value: Any) -> str:
    return type(value).__name__ if isinstance(value, dict | list) else repr(value)


def problems_from(exc: ValidationError, lines: dict[Loc, int]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        if error["type"] == "modelship":
            loc = (*loc, *error["ctx"]["at"])
        # pydantic marks an invalid mapping key with a "[key]" step that users never wrote.
        if loc and loc[-1] == "[key]" and error["type"] != "extra_forbidden":
            loc = loc[:-1]
        message = _message(error, loc)
        key = dotted(loc)
        if (key, message) in seen:
            continue
        seen.add((key, message))
        problems.append(ConfigProblem(key, _line_for(loc, lines), message))
    return sorted(problems, key=lambda p: (p.line or 0, p.key))


def parse_repo_config(
    text: str, *, path: str = CONFIG_PATH, deploy_root: str | None = DEFAULT_DEPLOY_ROOT
) -> RepoConfig:
    """Parse and validate `.modelship.yml`; raise RepoConfigError naming key, line and fix.

    ``deploy_root``: the server's MODELSHIP_DEPLOY_ROOT (normalised), which ``deploy.path_template``
    must stay under; None skips that one rule (for callers that never deploy, like a local review).
    """
    try:
        data, lines = _load(text)
    except RepoConfigError as exc:
        raise RepoConfigError(exc.problems, path) from None
    if not isinstance(data, dict):
        raise RepoConfigError(
            [ConfigProblem("", 1, "the file must be a mapping of keys, starting with version: 1")], path
        )
    try:
        return RepoConfig.model_validate(data, context={"deploy_root": deploy_root})
    except ValidationError as exc:
        raise RepoConfigError(problems_from(exc, lines), path) from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `.modelship.yml` (committed as config/modelship.schema.json)."""
    return RepoConfig.model_json_schema()
