"""Kept variants stay within the operator's caps; what a deployment references is never collected."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bot.review.artifacts import ArtifactPolicy, collect, write_manifest

MiB = 1 << 20


def kept_run(root: Path, repo: str, head: str, content: bytes, age: int) -> Path:
    run = root / repo / head
    (run / "churn").mkdir(parents=True)
    (run / "churn" / "model.onnx").write_bytes(content)
    write_manifest(run)
    os.utime(run, (age, age))
    return run


def test_forty_runs_of_a_few_mib_are_trimmed_to_the_caps_keeping_the_deployed_one(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    runs = [kept_run(root, "acme--models", f"{n:040x}", bytes([n]) * 3 * MiB, 1_000 + n) for n in range(40)]
    deployed = hashlib.sha256(bytes([2]) * 3 * MiB).hexdigest()  # the third-oldest run is in production
    removed = collect(root, {deployed}, ArtifactPolicy(max_bytes=30 * MiB, max_runs=100), keep=runs[0])
    left = sorted(p.name for p in (root / "acme--models").iterdir() if p.is_dir())
    assert runs[0].name in left and runs[2].name in left  # the run just written, and the deployed one
    assert runs[1] in removed and runs[3] in removed
    assert sum(f.stat().st_size for f in root.rglob("*.onnx")) <= 30 * MiB
    assert not (root / "acme--models" / f"{runs[1].name}.sha256").exists()


def test_the_run_count_cap_applies_on_its_own(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    for n in range(10):
        kept_run(root, "acme--models", f"{n:040x}", bytes([n]), 1_000 + n)
    collect(root, set(), ArtifactPolicy(max_bytes=1 << 40, max_runs=4))
    left = sorted(p.name for p in (root / "acme--models").iterdir() if p.is_dir())
    assert left == [f"{n:040x}" for n in range(6, 10)]  # the newest four
