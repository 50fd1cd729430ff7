"""What a deploy decides, as values: which models and environments, which variant, what a result is.

Pure: everything here takes values and returns values (or raises DeployFailure naming what to fix).
The flows in ``bot.deploy.service`` gather the facts and carry the decisions out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from bot.config.repo import CONFIG_PATH, Environment, ModelSpec, RepoConfig
from bot.deploy.manifest import ModelRef, Plan
from bot.errors import InputError

# What `/modelship deploy --variant fp32|int8` accepts among the variants the optimizer produces.
VARIANT_FAMILIES: dict[str, tuple[str, ...]] = {
    "fp32": ("onnx_fp32", "onnx_optimized"),
    "int8": ("int8_dynamic", "int8_static"),
}


class DeployFailure(InputError):
    """A deploy cannot go ahead; the message is safe to show users and names what to fix."""


@dataclass(frozen=True)
class MergeRequest:
    """The deploy job's payload: a PR merged into the default branch."""

    repo: str
    number: int
    installation_id: int
    merge_sha: str
    base_sha: str  # policy (.modelship.yml) is read here: never from the PR itself
    head_sha: str
    merged_at: int  # Unix seconds: the version's sequence
    actor: str
    deploy_repo: str


@dataclass(frozen=True)
class Target:
    """One model version to write into one environment."""

    env: str
    rule: Environment
    ref: ModelRef
    metrics: Mapping[str, float | int | str] = field(default_factory=dict)
    on_merge: bool = False  # a merge reaches a non-auto environment only through a PR
    override: str | None = None  # a requirement forced past: the `Modelship-Override` trailer

    @property
    def via_pr(self) -> bool:
        return self.rule.via == "pull_request" or (self.on_merge and not self.rule.auto)


@dataclass(frozen=True)
class Result:
    """What happened to one target. ``state``: deployed | proposed | unchanged | skipped | invalid |
    failed | dry-run."""

    env: str
    model: str
    state: str
    detail: str = ""
    ref: ModelRef | None = None
    deploy_commit: str | None = None
    deploy_pr: int | None = None
    diff: str = ""
    kind: str = "deploy"  # what the history row records it as (bot.store.deployments.KINDS)

    @property
    def ok(self) -> bool:
        return self.state not in ("invalid", "failed")


# The deployments row state a result is recorded with (bot.store.deployments).
_ROW_STATE = {"deployed": "deployed", "proposed": "pending", "invalid": "failed"}


def row_state(result: Result) -> str | None:
    """The state a result is recorded with; None: nothing worth a history row (unchanged, dry run)."""
    if result.ref is None or result.state in ("unchanged", "dry-run"):
        return None
    return _ROW_STATE.get(result.state, result.state)


def changed_models(config: RepoConfig, files: Iterable[str]) -> list[ModelSpec]:
    """Models whose file or dataset the PR touched."""
    touched = set(files)
    return [m for m in config.models if m.path in touched or m.dataset.path in touched]


def merge_targets(config: RepoConfig) -> list[tuple[str, Environment]]:
    """Environments a merge writes to: auto ones (commit or PR), and protected ones that are not
    fed by promotion (a PR). An environment with ``upstream`` and ``auto: false`` is reached by
    ``promote`` only."""
    return [(name, env) for name, env in config.environments.items() if env.auto or env.upstream is None]


def environment(config: RepoConfig, env: str) -> Environment:
    """The rule of ``env`` for a command; DeployFailure naming the missing key otherwise."""
    if config.deploy is None:
        raise DeployFailure(f"`{CONFIG_PATH}` has no `deploy: {{repository: owner/name}}` section")
    rule = config.environments.get(env)
    if rule is None:
        known = ", ".join(f"`{e}`" for e in config.environments) or "none"
        raise DeployFailure(f"`environments.{env}` is not in `{CONFIG_PATH}` (environments: {known})")
    return rule


def choose_variant(
    asked: str | None, kept: str | None, kept_sha256: str | None, *, model: str, revision: str
) -> tuple[str, str | None]:
    """(variant, its sha256) to ship: ``asked`` (None: what the review kept), matched against the variant
    the review kept (``kept``, hashed as ``kept_sha256``). The sha256 is None for the original file: the
    caller pins the model file's own hash."""
    chosen = (kept or "original") if asked is None else asked
    if chosen == "original":
        return chosen, None
    # The server loads the variant file, so the pinned hash must be the variant's own: only the
    # variant the review kept (and hashed) can ship. `--variant fp32|int8` names its family.
    kept = kept or ""
    if not (kept == chosen or kept in VARIANT_FAMILIES.get(chosen, ())) or not kept_sha256:
        raise DeployFailure(
            f"no reviewed `{chosen}` variant of model `{model}` at {revision[:7]}: comment "
            "`/modelship optimize` to produce it, or deploy `--variant original`"
        )
    return kept, kept_sha256


def iso_seconds(stamp: str | None) -> int:
    if not stamp:
        return int(time.time())
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def merged_ref(spec: ModelSpec, request: MergeRequest) -> ModelRef:
    """The merge commit's version of a model before its sha256 is known: what a failure is recorded against."""
    return ModelRef(
        spec.name, request.repo, request.merge_sha, spec.path, "", "original", request.merged_at, request.number
    )


def not_written(env: str, ref: ModelRef, plans: list[Plan]) -> Result:
    """The result of a write that changed nothing: unchanged, or skipped saying why (pinned, stale)."""
    reason = plans[-1].reason if plans else "unchanged"
    if reason == "unchanged":
        return Result(env, ref.name, "unchanged", "", ref)
    if reason.startswith("pinned"):
        reason += f" (comment `/modelship unpin {env}`)"
    return Result(env, ref.name, "skipped", reason, ref)


def on_hold(target: Target) -> Result:
    why = f"the PR is on hold: comment `/modelship unhold`, then `/modelship deploy {target.env}`"
    return Result(target.env, target.ref.name, "skipped", why, target.ref)


def failed(env: str, model: str, detail: str, ref: ModelRef | None = None) -> Result:
    return Result(env, model, "failed", detail, ref)


def gave_up(env: str, attempts: int, why: str) -> str:
    """The detail of a target the deploy job never reached (it ended without a result): why, that nothing
    was written, and how to try again."""
    return (
        f"the deploy job stopped after {attempts} attempt(s): {why} — nothing was written for `{env}`. "
        f"Once that is fixed, comment `/modelship deploy {env}` on this PR or merge again"
    )
