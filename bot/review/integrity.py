"""What the bot pins is what the bot hashed: the sandbox's own claims are checked, never recorded.

A model that runs code while loading (a pickle, or skops types off the reviewed list, opted in with
``allow_pickle``) controls the whole sandbox run, including the ``sha256`` fields of its result. So
the bot hashes the model file from the exported git tree and every kept variant after copying it
out, records only those hashes, and fails the review when a claim disagrees.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bot.config.repo import ModelSpec
from bot.review.compare import ReviewComparison

_CHUNK = 1 << 20


def sha256_under(root: Path, relative: str) -> str | None:
    """sha256 of a regular file inside ``root`` (links are followed only within ``root``); None if absent."""
    if PurePosixPath(relative).is_absolute() or ".." in PurePosixPath(relative).parts:
        return None
    real_root = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(real_root):
        return None
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        digest = hashlib.sha256()
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Pinned:
    """The hashes the bot computed for one model: what deploy may pin."""

    model_sha256: str | None  # of models[].path in the head's git tree (None: not in git, e.g. trained)
    variant: str = "original"
    variant_sha256: str | None = None
    variant_artifact: str | None = None  # relative to the head's artifacts directory


@dataclass(frozen=True)
class Verified:
    models: dict[str, Pinned]
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def git_hashes(head_tree: Path, policies: Sequence[ModelSpec]) -> dict[str, str | None]:
    """sha256 of each model file as committed in the head (hashed by the bot, from git's bytes)."""
    return {m.name: sha256_under(head_tree, m.path) for m in policies}


def verify(
    comparison: ReviewComparison,
    optimization: Mapping[str, Any] | None,
    policies: Sequence[ModelSpec],
    from_git: Mapping[str, str | None],
    kept: Path | None,
) -> Verified:
    """Compare the sandbox's claims with the bot's own hashes (pure apart from hashing kept files)."""
    problems: list[str] = []
    notes: list[str] = []
    trained = {m.name for m in policies if m.train is not None}
    heads = {m.name: m.head for m in comparison.models}
    chosen = {
        str(m.get("name")): m["chosen"]
        for m in (optimization or {}).get("models", [])
        if isinstance(m, Mapping) and isinstance(m.get("chosen"), Mapping)
    }
    pinned: dict[str, Pinned] = {}
    for policy in policies:
        name, ours = policy.name, from_git.get(policy.name)
        head = heads.get(name)
        claimed = head.model_sha256 if head is not None else None
        if claimed is not None and name not in trained and claimed != ours:
            problems.append(
                f"model `{name}`: the sandbox reported sha256 {claimed[:12]}… for `{policy.path}`, but the bot "
                f"hashed {ours[:12] + '…' if ours else 'no such file'} in the head's git tree"
            )
        entry = Pinned(model_sha256=ours, variant_sha256=ours)
        pick = chosen.get(name)
        if pick is not None and pick.get("location") == "out" and pick.get("variant") != "original":
            relative = _artifact_path(pick.get("path"))
            ours_variant = sha256_under(kept, relative) if kept is not None and relative else None
            if ours_variant is None:
                notes.append(
                    f"model `{name}`: the chosen `{pick.get('variant')}` variant was not kept (over the artifact "
                    "caps, or not written), so only the original can be deployed"
                )
            elif ours_variant != pick.get("sha256"):
                problems.append(
                    f"model `{name}`: the sandbox reported sha256 {str(pick.get('sha256'))[:12]}… for variant "
                    f"`{pick.get('variant')}`, but the kept file hashes to {ours_variant[:12]}…"
                )
            else:
                entry = Pinned(ours, str(pick["variant"]), ours_variant, relative)
        pinned[name] = entry
    return Verified(pinned, tuple(problems), tuple(notes))


def _artifact_path(path: Any) -> str | None:
    """variants/<model>/<file> under /out becomes <model>/<file> under the artifacts directory."""
    if not isinstance(path, str):
        return None
    parts = PurePosixPath(path).parts
    if len(parts) < 2 or parts[0] != "variants" or ".." in parts:
        return None
    return str(PurePosixPath(*parts[1:]))
