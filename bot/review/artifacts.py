"""Kept variant files under ``data_dir/artifacts/<owner>--<repo>/<head sha>/``: capped, and collected.

Each review that keeps variants writes ``<head sha>.sha256`` next to its directory (the bot's own
hashes). Collection removes the oldest runs until the whole directory is within the operator's
caps, but never a run holding a file whose sha256 a deployment references (deploy ships exactly
that file) nor the run just written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
GiB = 1024**3


@dataclass(frozen=True)
class ArtifactPolicy:
    """Settings MODELSHIP_ARTIFACTS_MAX_BYTES / MODELSHIP_ARTIFACTS_MAX_RUNS."""

    max_bytes: int = 4 * GiB
    max_runs: int = 200


def _files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.is_file() and not p.is_symlink()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_of(run: Path) -> Path:
    return run.with_name(run.name + ".sha256")


def write_manifest(run: Path) -> set[str]:
    """Hash every kept file of a run (the bot's hashes, never the sandbox's) and record them."""
    hashes = {_sha256(p) for p in _files(run)} if run.is_dir() else set()
    if hashes:
        manifest_of(run).write_text("".join(f"{h}\n" for h in sorted(hashes)))
    return hashes


def _hashes(run: Path) -> set[str]:
    try:
        return set(manifest_of(run).read_text().split())
    except FileNotFoundError:  # kept before manifests existed: hash it now
        return write_manifest(run)


def _size(run: Path) -> int:
    return sum(p.stat().st_size for p in _files(run))


def collect(root: Path, referenced: Iterable[str], policy: ArtifactPolicy, *, keep: Path | None = None) -> list[Path]:
    """Remove the oldest unreferenced runs until ``root`` holds at most ``policy`` (blocking; run off-loop)."""
    if not root.is_dir():
        return []
    wanted = set(referenced)
    runs = sorted((p for p in root.glob("*/*") if p.is_dir() and not p.is_symlink()), key=lambda p: p.stat().st_mtime)
    sizes = {run: _size(run) for run in runs}
    total, count = sum(sizes.values()), len(runs)
    removed: list[Path] = []
    for run in runs:
        if total <= policy.max_bytes and count <= policy.max_runs:
            break
        if run == keep or (_hashes(run) & wanted):
            continue
        shutil.rmtree(run, ignore_errors=True)
        manifest_of(run).unlink(missing_ok=True)
        total -= sizes[run]
        count -= 1
        removed.append(run)
    if removed:
        log.info("artifacts: removed %d old run(s); %d bytes in %d run(s) remain", len(removed), total, count)
    if total > policy.max_bytes or count > policy.max_runs:
        log.warning(
            "artifacts: %d bytes in %d run(s) is over the caps, but the rest is deployed (MODELSHIP_ARTIFACTS_MAX_*)",
            total,
            count,
        )
    with os.scandir(root) as entries:  # owners' directories left empty
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not any(Path(entry.path).iterdir()):
                os.rmdir(entry.path)
    return removed
