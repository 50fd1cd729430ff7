"""Bare git repositories on disk, driven through git's plumbing (blocking: call it off the event loop).

Commits are built with a private index file so no working tree is ever needed, and merges use
`git merge-tree --write-tree`, so every SHA devhub reports is a real object a client can fetch.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ZERO_SHA = "0" * 40


class GitError(RuntimeError):
    pass


class MergeConflict(GitError):
    pass


@dataclass(frozen=True)
class Identity:
    name: str
    email: str
    when: int  # unix seconds


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added | modified | removed
    additions: int
    deletions: int
    blob_sha: str
    patch: str


@dataclass(frozen=True)
class TreeEntry:
    path: str
    kind: str  # blob | tree
    sha: str
    size: int


@dataclass(frozen=True)
class CommitDetails:
    sha: str
    tree: str
    message: str
    author_name: str
    author_email: str
    timestamp: int
    added: list[str]
    removed: list[str]
    modified: list[str]


class GitStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, full_name: str) -> Path:
        return self.root / f"{full_name}.git"

    def _git(
        self,
        full_name: str,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            ["git", "--git-dir", str(self.path(full_name)), *args],
            input=input,
            capture_output=True,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})},
            check=False,
        )
        if check and result.returncode != 0:
            raise GitError(f"git {' '.join(args)}: {result.stderr.decode(errors='replace').strip()}")
        return result

    def _out(self, full_name: str, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
        return self._git(full_name, *args, input=input, env=env).stdout.decode().strip()

    def init(self, full_name: str, default_branch: str) -> None:
        path = self.path(full_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "--quiet", "--bare", "-b", default_branch, str(path)], check=True)
        # Pushes over smart HTTP are authorised by devhub, not by the CGI's REMOTE_USER check.
        self._git(full_name, "config", "http.receivepack", "true")

    def resolve(self, full_name: str, ref: str) -> str | None:
        result = self._git(full_name, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def refs(self, full_name: str) -> dict[str, str]:
        out = self._out(full_name, "for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def update_ref(self, full_name: str, ref: str, sha: str, old: str | None = None) -> None:
        self._git(full_name, "update-ref", ref, sha, *([old] if old else []))

    def delete_ref(self, full_name: str, ref: str) -> None:
        self._git(full_name, "update-ref", "-d", ref)

    def commit(
        self,
        full_name: str,
        branch: str,
        changes: Mapping[str, bytes | None],
        message: str,
        author: Identity,
        parent: str | None,
    ) -> str:
        """Write a commit applying `changes` (None deletes a path) on top of parent and move the branch."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self._git(full_name, "read-tree", parent, env=env)
            lines = []
            for path, data in changes.items():
                if data is None:
                    lines.append(f"0 {ZERO_SHA}\t{path}\n")  # mode 0 removes the path from the index
                else:
                    blob = self._out(full_name, "hash-object", "-w", "--stdin", input=data)
                    lines.append(f"100644 {blob}\t{path}\n")
            self._git(full_name, "update-index", "--index-info", input="".join(lines).encode(), env=env)
            tree = self._out(full_name, "write-tree", env=env)
        sha = self._commit_tree(full_name, tree, [parent] if parent else [], message, author)
        old = self.resolve(full_name, f"refs/heads/{branch}") or ZERO_SHA
        self.update_ref(full_name, f"refs/heads/{branch}", sha, old)
        return sha

    def _commit_tree(self, full_name: str, tree: str, parents: list[str], message: str, who: Identity) -> str:
        stamp = f"{who.when} +0000"
        env = {
            "GIT_AUTHOR_NAME": who.name,
            "GIT_AUTHOR_EMAIL": who.email,
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_NAME": who.name,
            "GIT_COMMITTER_EMAIL": who.email,
            "GIT_COMMITTER_DATE": stamp,
        }
        args = [arg for p in parents for arg in ("-p", p)]
        return self._out(full_name, "commit-tree", tree, *args, "-m", message, env=env)

    def merge(
        self,
        full_name: str,
        base_branch: str,
        head_sha: str,
        message: str,
        who: Identity,
        squash: bool = False,
    ) -> str:
        """Merge head into base_branch like GitHub's merge button (a merge commit, or one squashed commit)."""
        base_sha = self.resolve(full_name, f"refs/heads/{base_branch}")
        if base_sha is None:
            raise GitError(f"branch {base_branch!r} does not exist")
        result = self._git(full_name, "merge-tree", "--write-tree", base_sha, head_sha, check=False)
        if result.returncode == 1:
            raise MergeConflict(f"merge conflict between {base_branch} and {head_sha[:7]}")
        if result.returncode != 0:
            raise GitError(result.stderr.decode(errors="replace").strip())
        tree = result.stdout.decode().split("\n", 1)[0].strip()
        sha = self._commit_tree(full_name, tree, [base_sha] if squash else [base_sha, head_sha], message, who)
        self.update_ref(full_name, f"refs/heads/{base_branch}", sha, base_sha)
        return sha

    def mergeable(self, full_name: str, base_sha: str, head_sha: str) -> bool:
        result = self._git(full_name, "merge-tree", "--write-tree", base_sha, head_sha, check=False)
        return result.returncode == 0

    def merge_base(self, full_name: str, a: str, b: str) -> str | None:
        result = self._git(full_name, "merge-base", a, b, check=False)
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def count_commits(self, full_name: str, base: str, head: str) -> int:
        return int(self._out(full_name, "rev-list", "--count", f"{base}..{head}"))

    def diff(self, full_name: str, base: str, head: str) -> list[FileChange]:
        """Files changed on head since it forked from base (three-dot diff, as the PR files API)."""
        start = self.merge_base(full_name, base, head) or base
        raw = self._out(full_name, "diff", "--no-renames", "--raw", "--abbrev=40", "--numstat", "-z", start, head)
        fields = raw.split("\0")
        changes: dict[str, tuple[str, str, str]] = {}
        counts: dict[str, tuple[int, int]] = {}
        i = 0
        while i < len(fields) and fields[i]:
            field = fields[i]
            if field.startswith(":"):
                meta = field.split()
                changes[fields[i + 1]] = (meta[4], meta[3], meta[2])
                i += 2
            else:
                added, deleted, path = field.split("\t", 2)
                counts[path] = (int(added) if added != "-" else 0, int(deleted) if deleted != "-" else 0)
                i += 1
        status_names = {"A": "added", "M": "modified", "D": "removed", "T": "changed"}
        result = []
        for path, (status, blob, old_blob) in changes.items():
            patch = self._out(full_name, "diff", "--no-renames", start, head, "--", path)
            body = patch.split("\n@@", 1)
            additions, deletions = counts.get(path, (0, 0))
            result.append(
                FileChange(
                    path,
                    status_names.get(status, "modified"),
                    additions,
                    deletions,
                    blob if status != "D" else old_blob,
                    "@@" + body[1] if len(body) > 1 else "",
                )
            )
        return result

    def read(self, full_name: str, ref: str, path: str) -> bytes | None:
        result = self._git(full_name, "cat-file", "blob", f"{ref}:{path}", check=False)
        return result.stdout if result.returncode == 0 else None

    def entry(self, full_name: str, ref: str, path: str) -> TreeEntry | None:
        spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
        result = self._git(full_name, "rev-parse", "--verify", "--quiet", spec, check=False)
        if result.returncode != 0:
            return None
        sha = result.stdout.decode().strip()
        kind = self._out(full_name, "cat-file", "-t", sha)
        size = int(self._out(full_name, "cat-file", "-s", sha)) if kind == "blob" else 0
        return TreeEntry(path, kind, sha, size)

    def list_dir(self, full_name: str, ref: str, path: str) -> list[TreeEntry]:
        spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
        out = self._out(full_name, "ls-tree", "-l", "-z", spec)
        entries = []
        for line in filter(None, out.split("\0")):
            meta, name = line.split("\t", 1)
            _, kind, sha, size = meta.split()
            entries.append(TreeEntry(f"{path}/{name}" if path else name, kind, sha, int(size) if size != "-" else 0))
        return entries

    def commit_info(self, full_name: str, sha: str) -> tuple[str, list[str], str]:
        """(tree, parents, message) of a commit."""
        out = self._out(full_name, "show", "-s", "--format=%T%n%P%n%B", sha)
        tree, parents, *message = out.split("\n")
        return tree, parents.split(), "\n".join(message).strip()

    def is_ancestor(self, full_name: str, ancestor: str, descendant: str) -> bool:
        return self._git(full_name, "merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def details(self, full_name: str, sha: str) -> CommitDetails:
        out = self._out(full_name, "show", "-s", "--format=%T%x00%an%x00%ae%x00%at%x00%B", sha)
        tree, name, email, when, message = out.split("\0", 4)
        # --root lists the files of a first commit; -m splits merges so their files are listed once per parent.
        names = self._out(
            full_name, "diff-tree", "--root", "--no-commit-id", "--name-status", "-r", "-m", "--first-parent", sha
        )
        files: dict[str, list[str]] = {"A": [], "D": [], "M": []}
        for line in names.splitlines():
            status, _, path = line.partition("\t")
            files.get(status[:1], files["M"]).append(path)
        return CommitDetails(sha, tree, message.strip(), name, email, int(when), files["A"], files["D"], files["M"])

    def log(self, full_name: str, before: str, after: str, limit: int = 20) -> list[CommitDetails]:
        """Commits reachable from after but not before, oldest first (a push payload's `commits`)."""
        spec = [after] if before == ZERO_SHA else [f"{before}..{after}"]
        shas = self._out(full_name, "rev-list", "--reverse", f"--max-count={limit}", *spec).split()
        return [self.details(full_name, sha) for sha in shas]

    def fetch(self, full_name: str, source: str, *refspecs: str) -> None:
        """Fetch objects (and refs) from another devhub repository, e.g. a fork."""
        self._git(full_name, "fetch", "--quiet", str(self.path(source)), *refspecs)
