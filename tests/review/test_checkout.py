"""Exporting a PR's tree for the sandbox: links out of it, and trees over the operator's caps, are refused
while the archive streams, before their bytes reach the disk."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import git
import pytest

from bot.review.checkout import ExportLimits, TreeRefused, export_tree

GiB = 1 << 30
# sha1 of the git blob holding 2 GiB of zero bytes (hashlib over "blob 2147483648\0" + zeros).
ZEROS_2GIB = "77e9132b46cb9535f286f18974872f40049d1a89"


def run_git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Eve", "-c", "user.email=eve@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def plant_zero_blob(repo: Path, size: int = 2 * GiB, sha: str = ZEROS_2GIB) -> str:
    """The loose object of a 2 GiB all-zero file (what `git add` of a sparse file stores), ~9 MB, built
    without deflating 2 GiB: after a full flush every 8 MiB of zeros compresses to the same bytes."""
    header = f"blob {size}\0".encode()
    chunk = 8 << 20
    deflate = zlib.compressobj(1)
    head = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    piece = deflate.compress(bytes(chunk)) + deflate.flush(zlib.Z_FULL_FLUSH)
    low, high = zlib.adler32(header) & 0xFFFF, zlib.adler32(header) >> 16
    high = (high + size * low) % 65521  # adler32 after `size` more zero bytes
    data = head + piece * (size // chunk) + b"\x03\x00" + struct.pack(">I", (high << 16) | low)
    target = repo / ".git" / "objects" / sha[:2] / sha[2:]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return sha


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    path = tmp_path / "repo"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    (path / "model.onnx").write_bytes(b"onnx")
    run_git(path, "add", "-A")
    run_git(path, "commit", "-qm", "A model")
    return git.Repo(path)


def commit(repo: git.Repo, message: str) -> str:
    path = Path(repo.working_dir)
    run_git(path, "add", "-A")
    run_git(path, "commit", "-qm", message)
    return run_git(path, "rev-parse", "HEAD")


def test_a_2_gib_sparse_file_is_refused_before_it_expands(repo: git.Repo, tmp_path: Path) -> None:
    path = Path(repo.working_dir)
    sha = plant_zero_blob(path)
    assert run_git(path, "cat-file", "-s", sha) == str(2 * GiB)
    run_git(path, "update-index", "--add", "--cacheinfo", f"100644,{sha},data/huge.bin")
    run_git(path, "commit", "-qm", "2 GiB of zeros, a few MB packed")
    head = run_git(path, "rev-parse", "HEAD")
    dest = tmp_path / "head"
    before = shutil.disk_usage(tmp_path).used
    began = time.monotonic()
    with pytest.raises(TreeRefused) as refused:
        export_tree(repo, head, dest, ExportLimits(max_bytes=GiB, max_files=100))
    assert time.monotonic() - began < 10
    assert f"larger than {GiB} bytes (MODELSHIP_SANDBOX_EXPORT_MAX_BYTES" in str(refused.value)
    assert f"`data/huge.bin` alone is {2 * GiB} bytes" in str(refused.value)
    assert not (dest / "data" / "huge.bin").exists()
    assert shutil.disk_usage(tmp_path).used - before < 64 << 20


def test_too_many_files_are_refused_while_extracting(repo: git.Repo, tmp_path: Path) -> None:
    many = Path(repo.working_dir) / "many"
    many.mkdir()
    for n in range(300):
        (many / f"f{n}.txt").write_text(str(n))
    head = commit(repo, "300 files")
    dest = tmp_path / "head"
    with pytest.raises(TreeRefused) as refused:
        export_tree(repo, head, dest, ExportLimits(max_bytes=GiB, max_files=100))
    assert "more than 100 files (MODELSHIP_SANDBOX_EXPORT_MAX_FILES)" in str(refused.value)
    assert sum(1 for p in dest.rglob("*") if p.is_file()) <= 100


def test_a_tree_within_the_caps_is_exported(repo: git.Repo, tmp_path: Path) -> None:
    (Path(repo.working_dir) / "data").mkdir()
    (Path(repo.working_dir) / "data" / "eval.csv").write_text("a,b\n1,2\n")
    head = commit(repo, "data")
    export_tree(repo, head, tmp_path / "head", ExportLimits(max_bytes=1024, max_files=2))
    assert (tmp_path / "head" / "data" / "eval.csv").read_text() == "a,b\n1,2\n"
    assert (tmp_path / "head" / "model.onnx").read_bytes() == b"onnx"
    assert not (tmp_path / "head.tar").exists()


def test_a_symlink_out_of_the_tree_is_refused_naming_it(repo: git.Repo, tmp_path: Path) -> None:
    (Path(repo.working_dir) / "leak").symlink_to("/etc/passwd")
    head = commit(repo, "a link out")
    with pytest.raises(TreeRefused) as refused:
        export_tree(repo, head, tmp_path / "head")
    assert "'leak' is a link to an absolute path" in str(refused.value)
