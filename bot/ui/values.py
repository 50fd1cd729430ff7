"""The timeline's values diff: the values files the bot committed to the deploy repository, read back as
committed and compared line by line and key by key.

A deployments row names its file (``deploy_repo``, ``deploy_commit``, ``values_path``). The file is read
through GitHub's contents API at that commit with the deploy repository's installation token; commits
are immutable, so what was read is kept by (repository, commit, path) in a bounded cache. What cannot be
read (a row from before ``values_path`` was recorded, a protected environment's PR not merged yet, a
deleted repository or file, an App without access, GitHub not answering) becomes a sentence, never an
error page. The file is repository content, hence untrusted: parsing is YAML's safe loader on a size
limit, off the event loop, and flattening stops at a bound (aliases can make a small file a huge tree);
templates escape every line.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import yaml
from gidgethub import BadRequest, GitHubException
from gidgethub.abc import GitHubAPI

from bot.github.contents import ContentsError, read_file

log = logging.getLogger(__name__)

MAX_BYTES = 512 * 1024  # a values file is a few KB; more is not shown (and not parsed)
MAX_KEYS = 2_000  # flattened keys compared per file
MAX_DIFF_LINES = 2_000  # lines of unified diff shown
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# libyaml's safe loader where PyYAML has it: ten times the pure-Python one (about 2 ms for a values file here)
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The GitHub client of the installation that covers a repository, or None when the App is not installed there.
ClientFor = Callable[[str], Awaitable[GitHubAPI | None]]


@dataclass(frozen=True)
class ValuesFile:
    """One row's values file: its text, or why there is none (a sentence for the page)."""

    where: str  # repo@commit:path, or what is known of it
    text: str | None = None
    problem: str = ""


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add" | "del" | "hunk" | "file" | "same"
    text: str


@dataclass(frozen=True)
class ValuesDiff:
    a: ValuesFile
    b: ValuesFile
    lines: list[DiffLine]  # the unified diff (empty when either file is missing, or they are equal)
    keys: list[tuple[str, Any, Any]]  # (dotted key, value in a, value in b) for keys whose values differ
    note: str = ""  # why the key-level diff is missing or cut

    @property
    def readable(self) -> bool:
        return self.a.text is not None and self.b.text is not None


class ValuesReader:
    """Reads values files at their commit, keeping what was read (a commit's file never changes)."""

    def __init__(self, client_for: ClientFor, *, max_entries: int = 256, max_chars: int = 16 * 1024 * 1024) -> None:
        self.client_for = client_for
        self.max_entries = max_entries
        self.max_chars = max_chars  # what the kept texts may hold together
        self._cache: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._chars = 0
        # two files' diff, by their texts' keys: the same comparison is asked again (reloads, other users)
        self._diffs: OrderedDict[tuple[str, str], ValuesDiff] = OrderedDict()

    async def of_row(self, row: Mapping[Any, Any], can_read: Callable[[str], bool]) -> ValuesFile:
        """``row``'s file, when the signed-in user may read its deploy repository (``can_read``): the App
        could read it for anyone, but the dashboard shows a person only what their GitHub account can."""
        repo, commit, path = str(row.get("deploy_repo") or ""), row.get("deploy_commit"), row.get("values_path")
        if not can_read(repo):
            return ValuesFile(repo, problem=f"The values live in {repo}, which your GitHub account cannot read.")
        if not path:
            return ValuesFile(
                repo,
                problem="This deployment was recorded before the dashboard kept the values file's path: "
                "its values cannot be shown.",
            )
        if not commit:
            if row.get("deploy_pr"):
                return ValuesFile(
                    f"{repo}:{path}",
                    problem=f"Not committed yet: the deploy pull request {repo}#{row['deploy_pr']} is not merged, "
                    "so there is no commit to read the values at.",
                )
            return ValuesFile(f"{repo}:{path}", problem=f"Nothing was committed ({row.get('state')}): no values file.")
        return await self.read(repo, str(commit), str(path))

    async def read(self, repo: str, commit: str, path: str) -> ValuesFile:
        where = f"{repo}@{commit[:7]}:{path}"
        if not _COMMIT.match(commit):
            return ValuesFile(where, problem=f"{commit!r} is not a commit id: nothing to read.")
        key = (repo, commit, path)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return ValuesFile(where, cached)
        try:
            gh = await self.client_for(repo)
            if gh is None:
                return ValuesFile(where, problem=f"The GitHub App is not installed on {repo}: it cannot read the file.")
            data = await read_file(gh, repo, path, commit)
        except BadRequest as exc:  # 4xx other than 404
            return ValuesFile(where, problem=f"GitHub refused to show {path} in {repo} ({exc.status_code}).")
        except ContentsError:
            return ValuesFile(
                where, problem=f"The contents API cannot hand {path} over: it is not a file, or it is over 1 MB."
            )
        except (GitHubException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("dashboard: reading %s failed: %s", where, type(exc).__name__)
            return ValuesFile(where, problem=f"GitHub did not answer for {path} in {repo}; try again later.")
        except Exception as exc:  # e.g. no installation token: the page still shows, saying why
            log.warning("dashboard: reading %s failed: %s", where, type(exc).__name__)
            return ValuesFile(where, problem=f"{path} in {repo} could not be read ({type(exc).__name__}).")
        if data is None:
            return ValuesFile(
                where,
                problem=f"{path} is not in {repo} at {commit[:7]}: the repository, the commit or the file is gone, "
                "or the GitHub App cannot read it.",
            )
        if len(data) > MAX_BYTES:
            return ValuesFile(where, problem=f"{path} is {len(data):,} bytes: too large to show (limit {MAX_BYTES:,}).")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return ValuesFile(where, problem=f"{path} is not UTF-8 text.")
        self._cache[key] = text
        self._chars += len(text)
        while len(self._cache) > self.max_entries or self._chars > self.max_chars:
            self._chars -= len(self._cache.popitem(last=False)[1])
        return ValuesFile(where, text)

    async def diff(self, a: Mapping[Any, Any], b: Mapping[Any, Any], can_read: Callable[[str], bool]) -> ValuesDiff:
        fa, fb = await asyncio.gather(self.of_row(a, can_read), self.of_row(b, can_read))
        if fa.text is None or fb.text is None:
            return ValuesDiff(fa, fb, [], [])
        key = (fa.where, fb.where)  # repo@commit:path names an immutable text
        done = self._diffs.get(key)
        if done is None or (done.a.text, done.b.text) != (fa.text, fb.text):
            # difflib and YAML parsing are CPU work on up to MAX_BYTES of untrusted text: not on the event loop
            done = await asyncio.to_thread(compare, fa, fb)
            self._diffs[key] = done
            if len(self._diffs) > self.max_entries:
                self._diffs.popitem(last=False)
        return done


def compare(a: ValuesFile, b: ValuesFile) -> ValuesDiff:
    """The unified line diff and the key-level diff of two readable files (pure)."""
    assert a.text is not None and b.text is not None
    lines = unified(a.text, b.text, a.where, b.where)
    notes = []
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES]
        notes.append(f"the line diff is cut after {MAX_DIFF_LINES:,} lines")
    keys: list[tuple[str, Any, Any]] = []
    try:
        # a safe loader (plain data only), see _LOADER
        va, vb = flatten(yaml.load(a.text, Loader=_LOADER)), flatten(yaml.load(b.text, Loader=_LOADER))
    except yaml.YAMLError as exc:
        notes.append(f"a file is not valid YAML ({type(exc).__name__}): only the line diff is shown")
    except TooManyKeys:
        notes.append(f"a file has more than {MAX_KEYS:,} keys: only the line diff is shown")
    else:
        for k in sorted(set(va) | set(vb)):
            x, y = va.get(k, MISSING), vb.get(k, MISSING)
            if x is MISSING or y is MISSING or x != y:
                keys.append((k, x, y))
    return ValuesDiff(a, b, lines, keys, "; ".join(notes))


def unified(a: str, b: str, from_name: str, to_name: str) -> list[DiffLine]:
    out = []
    for line in difflib.unified_diff(a.splitlines(), b.splitlines(), from_name, to_name, lineterm="", n=3):
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = {"+": "add", "-": "del"}.get(line[:1], "same")
        out.append(DiffLine(kind, line))
    return out


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"

    def __str__(self) -> str:
        return "(absent)"


MISSING: Any = _Missing()


class TooManyKeys(ValueError):
    pass


def flatten(value: Any) -> dict[str, Any]:
    """``{"model": {"sha256": "…"}}`` → ``{"model.sha256": "…"}``; list items by index (``a[0]``). Stops at
    MAX_KEYS leaves, so an alias bomb cannot make the page expand it."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str, depth: int) -> None:
        if len(out) >= MAX_KEYS:
            raise TooManyKeys(prefix)
        if isinstance(node, dict) and node and depth < 32:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
        elif isinstance(node, list) and node and depth < 32:
            for i, v in enumerate(node):
                walk(v, f"{prefix}[{i}]", depth + 1)
        else:
            out[prefix or "(document)"] = node

    walk(value, "", 0)
    return out
