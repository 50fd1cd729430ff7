"""What to write into the deploy repository: Helm values for charts/model-server.

Pure functions over text. The values file is edited with ruamel.yaml round-trip so that comments,
key order, quoting and indentation written by humans survive and a deploy shows a minimal diff.

Version ordering: every deploy carries ``model.sequence``, the source PR's merge time as Unix
seconds (the commit time of the merge commit for a manual deploy). Merge times only grow on a default
branch, and unlike a counter they need no shared state, so two bot replicas agree on which of two
versions is newer. A candidate replaces the deployed version only when its sequence is strictly
greater; rollbacks bypass the ordering on purpose and pin the environment instead.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import ScalarString
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

DEFAULT_PATH_TEMPLATE = "environments/{env}/{model}/values.yaml"

NEW_FILE_HEADER = (
    "# Helm values for charts/model-server, written by Modelship.\n"
    "# Edit freely: comments, key order and keys Modelship does not own are kept on every deploy.\n"
)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_TRAILER = re.compile(r"^(Modelship-[A-Za-z-]+):\s*(.+?)\s*$", re.MULTILINE)


class ManifestError(ValueError):
    """The values cannot be written; ``problems`` names each value and why (one line each)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class ModelRef:
    """An immutable reference to one model version, as written under ``model:`` in the values."""

    name: str
    repository: str  # owner/repo of the model repository
    revision: str  # full commit SHA: the merge commit is the version
    path: str  # path of the model file inside the repository
    sha256: str
    variant: str = "onnx"
    sequence: int = 0  # merge time as Unix seconds; see the module docstring
    source_pr: int | None = None
    pinned: bool = False
    pin_reason: str = ""
    # The reviewed bytes in the OCI registry, registry/repository@sha256:<manifest digest>; "" when the
    # deploy has no registry (MODELSHIP_REGISTRY unset) and the chart fetches from the model repository.
    artifact: str = ""

    @property
    def short(self) -> str:
        return self.revision[:7]


@dataclass(frozen=True)
class Plan:
    """The outcome of planning a deploy: ``text`` is None when nothing is to be written."""

    text: str | None
    reason: str  # "update" | "unchanged" | "stale: ..." | "pinned: ..."

    @property
    def changed(self) -> bool:
        return self.text is not None


# Key in the values file for each ModelRef field, in the order a new file gets them.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("repository", "repository"),
    ("revision", "revision"),
    ("path", "path"),
    ("sha256", "sha256"),
    ("artifact", "artifact"),
    ("variant", "variant"),
    ("sequence", "sequence"),
    ("source_pr", "sourcePR"),
    ("pinned", "pinned"),
    ("pin_reason", "pinReason"),
)


def values_path(env: str, model: str, template: str = DEFAULT_PATH_TEMPLATE) -> str:
    """Where an environment's values for a model live; names are checked so they cannot escape."""
    problems = [
        f"{label} {value!r} must be 1-63 letters, digits, '.', '_' or '-' and start with a letter or digit"
        for label, value in (("environment", env), ("model", model))
        if not _SAFE_NAME.match(value) or ".." in value
    ]
    if problems:
        raise ManifestError(problems)
    return template.format(env=env, model=model)


def pr_branch_name(env: str, model: str, purpose: str = "deploy") -> str:
    """One branch (hence one open PR) per environment, model and purpose."""
    values_path(env, model)  # same name rules
    return f"modelship/{purpose}/{env}/{model}"


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long strings written by humans
    return yaml


def _load(text: str | None) -> tuple[CommentedMap, YAML]:
    yaml = _yaml()
    if text is None or not text.strip():
        return CommentedMap(), yaml
    try:
        data, seq_indent, block_seq_indent = load_yaml_guess_indent(text, yaml=yaml)
    except YAMLError as exc:
        raise ManifestError([f"values file is not valid YAML: {_one_line(exc)}"]) from exc
    if data is None:
        return CommentedMap(), yaml
    if not isinstance(data, CommentedMap):
        raise ManifestError([f"values file must hold a mapping at the top, found {type(data).__name__}"])
    yaml.indent(mapping=_mapping_indent(text), sequence=seq_indent or 2, offset=block_seq_indent or 0)
    return data, yaml


def _mapping_indent(text: str) -> int:
    """Indent of the first nested mapping (ruamel's guess conflates it with sequence indent)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for parent, child in pairwise(lines):
        if parent.rstrip().endswith(":") and not child.lstrip().startswith("-"):
            step = (len(child) - len(child.lstrip())) - (len(parent) - len(parent.lstrip()))
            if step > 0:
                return step
    return 2


def _dump(data: CommentedMap, yaml: YAML, header: str = "") -> str:
    buf = io.StringIO()
    yaml.dump(data, buf)
    return header + buf.getvalue()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _styled(old: Any, new: Any) -> Any:
    """Keep the quoting style a human chose for a string value (minimal diff)."""
    if isinstance(old, ScalarString) and isinstance(new, str):
        return type(old)(new)
    return new


def current_ref(text: str | None) -> ModelRef | None:
    """The model reference a values file holds, or None if it holds none (or an incomplete one)."""
    data, _ = _load(text)
    model = data.get("model")
    if not isinstance(model, Mapping):
        return None
    try:
        return ModelRef(
            name=str(model["name"]),
            repository=str(model["repository"]),
            revision=str(model["revision"]),
            path=str(model["path"]),
            sha256=str(model["sha256"]),
            variant=str(model.get("variant", "onnx")),
            sequence=int(model.get("sequence") or 0),
            artifact=str(model.get("artifact") or ""),
            source_pr=int(model["sourcePR"]) if model.get("sourcePR") else None,
            pinned=bool(model.get("pinned", False)),
            pin_reason=str(model.get("pinReason") or ""),
        )
    except (KeyError, TypeError, ValueError):
        return None


def render_values(existing_text: str | None, ref: ModelRef, env: str | None = None) -> str:
    """Write ``ref`` under ``model:``; everything else in the file is left as it was.

    A new file also gets ``environment: <env>`` (the ``env`` label on the server's metrics).
    """
    data, yaml = _load(existing_text)
    is_new = existing_text is None or not existing_text.strip()
    if is_new and env and "environment" not in data:
        data["environment"] = env
    model = data.get("model")
    if not isinstance(model, CommentedMap):
        model = CommentedMap()
        data["model"] = model
    previous: str | None = None
    for attr, key in _FIELDS:
        value = getattr(ref, attr)
        if (attr == "source_pr" and value is None) or (attr == "artifact" and not value):
            model.pop(key, None)  # an artifact left from another version would pin other bytes
        elif key in model:
            model[key] = _styled(model[key], value)
        else:
            _insert_after(model, previous, key, value)
        previous = key if key in model else previous
    return _dump(data, yaml, NEW_FILE_HEADER if is_new else "")


def _insert_after(mapping: CommentedMap, previous: str | None, key: str, value: Any) -> None:
    """Insert a new key next to its sibling; at the end, keep blank lines and comments below it."""
    keys = list(mapping)
    position = keys.index(previous) + 1 if previous in mapping else len(keys)
    mapping.insert(position, key, value)
    if position != len(keys) or not keys:
        return
    entry = mapping.ca.items.get(keys[-1])
    token = entry[2] if entry and len(entry) > 2 else None
    if token is None:
        return
    # The comment after the old last value holds its own end-of-line comment and then whatever
    # follows (blank lines, comments about the next section): that tail belongs after the new key.
    first, newline, tail = token.value.partition("\n")
    if not tail:
        return
    token.value = first + newline
    mapping.ca.items[key] = [None, None, CommentToken("\n" + tail, token.start_mark, None), None]


def is_newer(current: ModelRef | None, candidate: ModelRef) -> bool:
    """True when ``candidate`` may replace ``current``: nothing deployed, or a strictly later merge.

    Merge times have one-second resolution; two merges in the same second are ordered by PR number.
    """
    if current is None or candidate.sequence > current.sequence:
        return True
    return candidate.sequence == current.sequence and (candidate.source_pr or 0) > (current.source_pr or 0)


def plan_deploy(existing_text: str | None, ref: ModelRef, env: str | None = None) -> Plan:
    """Decide what an auto-deploy writes. Redelivery, stale versions and pins write nothing.

    Whether the chart accepts the values is Helm's call (bot.deploy.helm.check_values), made by the
    writer before anything is committed.
    """
    current = current_ref(existing_text)
    if current is not None and _same_version(current, ref):
        return Plan(None, "unchanged")
    if current is not None and current.pinned:
        why = f": {current.pin_reason}" if current.pin_reason else ""
        return Plan(None, f"pinned: {current.name} is pinned at {current.short}{why}; unpin to deploy")
    if not is_newer(current, ref):
        assert current is not None
        return Plan(
            None,
            f"stale: deployed {current.short} (sequence {current.sequence}) is not older than "
            f"{ref.short} (sequence {ref.sequence})",
        )
    return Plan(render_values(existing_text, replace(ref, pinned=False, pin_reason=""), env), "update")


def pin(existing_text: str | None, reason: str, ref: ModelRef | None = None) -> Plan:
    """Pin the environment, restoring ``ref`` first when given (a rollback); ordering is bypassed.

    Whether the chart accepts the values is Helm's call (bot.deploy.helm.check_values; the guard asks it)."""
    target = ref or current_ref(existing_text)
    if target is None:
        raise ManifestError(["model: no model is deployed here, so there is nothing to pin"])
    current = current_ref(existing_text)
    pinned = replace(target, pinned=True, pin_reason=reason)
    if current == pinned:
        return Plan(None, "unchanged")
    return Plan(render_values(existing_text, pinned), "update")


def unpin(existing_text: str | None) -> Plan:
    """Lift a pin so auto-deploys resume; the deployed version stays."""
    current = current_ref(existing_text)
    if current is None or not current.pinned:
        return Plan(None, "unchanged")
    return Plan(render_values(existing_text, replace(current, pinned=False, pin_reason="")), "update")


def _same_version(a: ModelRef, b: ModelRef) -> bool:
    return (a.repository, a.revision, a.path, a.sha256, a.variant, a.artifact) == (
        b.repository,
        b.revision,
        b.path,
        b.sha256,
        b.variant,
        b.artifact,
    )


# --- reading values ---------------------------------------------------------------------------


def load_values(text: str) -> dict[str, Any]:
    """Plain data from a values file (for defaults and tests); raises ManifestError on bad YAML."""
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise ManifestError([f"values file is not valid YAML: {_one_line(exc)}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ManifestError([f"values file must hold a mapping at the top, found {type(data).__name__}"])
    return data


# --- commit messages --------------------------------------------------------------------------


def commit_message(
    ref: ModelRef,
    env: str,
    *,
    action: str = "deploy",
    source_pr_url: str | None = None,
    metrics: Mapping[str, float | int | str] | None = None,
    actor: str | None = None,
    reason: str | None = None,
    override: str | None = None,
) -> str:
    """The deploy commit's message: a subject, provenance, a metrics summary and parseable trailers
    (``Modelship-Override`` when a requirement such as ``review_passed`` was forced past, and by whom)."""
    source = f"{ref.repository}#{ref.source_pr}" if ref.source_pr else None
    lines = [f"{action}({env}): {ref.name} {ref.short} ({ref.variant})", ""]
    if reason:
        lines += [reason, ""]
    lines += [
        f"Source PR: {source_pr_url or source or 'none (manual deploy)'}",
        f"Commit:    {ref.repository}@{ref.revision}",
        f"Model:     {ref.path}",
        f"sha256:    {ref.sha256}",
        f"Variant:   {ref.variant}",
    ]
    if ref.artifact:
        lines.append(f"Artifact:  {ref.artifact}")
    if actor:
        lines.append(f"Actor:     {actor}")
    if metrics:
        lines += ["", "Metrics:"]
        lines += [f"  {k}: {_fmt(v)}" for k, v in metrics.items()]
    lines += ["", f"Modelship-Model: {ref.name}", f"Modelship-Version: {ref.revision}"]
    if source:
        lines.append(f"Modelship-Source-PR: {source}")
    lines.append(f"Modelship-Environment: {env}")
    if override:
        lines.append(f"Modelship-Override: {override}")
    return "\n".join(lines) + "\n"


def _fmt(value: float | int | str) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parse_trailers(message: str) -> dict[str, str]:
    """Modelship-* trailers of a commit message (the last occurrence of a key wins)."""
    return {k: v for k, v in _TRAILER.findall(message)}
