"""File helpers: hashing, and resolving user-given paths inside the repository."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.errors import PipelineError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_in_repo(repo_dir: Path, relative: str, key: str) -> Path:
    """Resolve `relative` under `repo_dir`; a path (or symlink) leading outside is refused."""
    root = repo_dir.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise PipelineError("invalid_path", f"`{key}: {relative}` points outside the repository; use a path inside it")
    return candidate
