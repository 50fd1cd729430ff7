"""Bare repositories written through git plumbing: commits, three-dot diffs, merges."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.devhub.gitstore import GitStore, Identity, MergeConflict

WHO = Identity("alice", "alice@example.com", 1_700_000_000)


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    store = GitStore(tmp_path)
    store.init("o/r", "main")
    store.commit("o/r", "main", {"a.txt": b"one\n", "dir/b.txt": b"b\n"}, "init", WHO, None)
    return store


def test_branch_diff_is_three_dot_and_lists_adds_modifies_and_removals(store: GitStore) -> None:
    base = store.resolve("o/r", "refs/heads/main")
    head = store.commit("o/r", "feat", {"a.txt": b"one\ntwo\n", "dir/b.txt": None, "c.bin": b"\0"}, "f", WHO, base)
    store.commit("o/r", "main", {"unrelated.txt": b"u\n"}, "main moves on", WHO, base)

    changes = {c.path: (c.status, c.additions, c.deletions) for c in store.diff("o/r", "refs/heads/main", head)}

    assert changes == {"a.txt": ("modified", 1, 0), "dir/b.txt": ("removed", 0, 1), "c.bin": ("added", 0, 0)}


def test_merge_writes_a_two_parent_commit_and_detects_conflicts(store: GitStore) -> None:
    base = store.resolve("o/r", "refs/heads/main")
    ours = store.commit("o/r", "x", {"a.txt": b"x\n"}, "x", WHO, base)
    theirs = store.commit("o/r", "y", {"a.txt": b"y\n"}, "y", WHO, base)

    merged = store.merge("o/r", "main", ours, "Merge x", WHO)

    assert store.commit_info("o/r", merged)[1] == [base, ours]
    assert store.read("o/r", "refs/heads/main", "a.txt") == b"x\n"
    assert not store.mergeable("o/r", merged, theirs)
    with pytest.raises(MergeConflict):
        store.merge("o/r", "main", theirs, "Merge y", WHO)


def test_log_lists_pushed_commits_oldest_first_with_their_files(store: GitStore) -> None:
    first = store.resolve("o/r", "refs/heads/main")
    assert first is not None
    second = store.commit("o/r", "main", {"a.txt": b"two\n", "new.txt": b"n\n"}, "second", WHO, first)

    commits = store.log("o/r", first, second)

    assert [(c.sha, c.message, c.added, c.modified) for c in commits] == [(second, "second", ["new.txt"], ["a.txt"])]
