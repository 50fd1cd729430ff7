"""The environments × models matrix: every target's cell kept in memory, brought up to date by the rows that
changed since the last look, and rendered per reader from cells rendered once per change.

A target is a (repo, environment, model); its cell shows the newest ``deployed`` row (what runs) and the
state of the newest row of any state (a rollout under way, a failure). Every reader's matrix is a filter of
the same cells by the repositories they can read, so the cells are shared and kept here:

- a look (``refresh``), at most once per ``stamp_ttl`` for all readers, is one statement
  (``bot.store.deployments.matrix_look``): the table's stamp, and the newest and the running row of each
  target with a row changed since the last look (minus ``margin``: a writer whose transaction commits a
  little after its timestamp is found too); only the cells whose rows differ are rebuilt;
- a deleted row (the bot deletes none) shows as a row count short of the last look's plus the newer ids, or
  as an id shown by another target (SQLite reuses the highest id): then the whole table is read again;
- a page for a set of repositories is a join of model rows rendered once per change of their cells; the live
  fragment is the cells whose target changed after the client's stamp, straight from memory.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import deployments
from bot.store.reviews import artifacts_of

Key = tuple[str, str, str]  # (repo, environment, model)
_SHA = re.compile(r"^[0-9a-f]{7,64}$")
_NONE = '<td><span class="none">—</span></td>'
_RENDERED_MAX = 256  # distinct readers' matrices kept between two changes


def cell_state(newest: Mapping[Any, Any], running: Mapping[Any, Any] | None) -> str:
    """live | rolling | committed | failed | …: what the newest row says about the target. Live tracking's
    ``rollout`` (committed → rolling_out → live | failed) wins where the table has it."""
    rollout = newest.get("rollout")
    if isinstance(rollout, str) and rollout and newest["state"] == "deployed":
        return {"rolling_out": "rolling"}.get(rollout, rollout)
    return {"deployed": "live", "pending": "rolling", "failed": "failed"}.get(
        str(newest["state"]), "live" if running is not None else str(newest["state"])
    )


def digest_of(row: Mapping[Any, Any]) -> str:
    """The artifact reference the version was published as (its review's), else the model file's sha256."""
    for key in ("artifact_digest", "artifact", "digest"):
        value = row.get(key)
        if isinstance(value, str) and value:
            return value
    return f"sha256:{row['sha256']}" if row.get("sha256") else ""


def cell_id(repo: str, env: str, model: str) -> str:
    return "cell-" + re.sub(r"[^A-Za-z0-9_-]", "_", f"{repo}-{env}-{model}")


def utc(value: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes, PostgreSQL aware ones: compare them as aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stamp(value: datetime | None) -> str:
    return utc(value).isoformat() if value is not None else ""


@dataclass
class Cell:
    """One target as the matrix shows it: ``row`` is what runs (the newest ``deployed`` row, else the newest
    row), ``newest`` the newest row of any state, ``changed_at`` when any of the target's rows last changed."""

    key: Key
    newest: dict[str, Any]
    running: dict[str, Any] | None
    changed_at: datetime
    id: str = field(init=False)
    row: dict[str, Any] = field(init=False)
    state: str = field(init=False)
    digest: str = field(init=False)
    html: Markup = field(init=False)
    _oob: Markup | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.id = cell_id(*self.key)
        self.row = self.running if self.running is not None else self.newest
        self.state = cell_state(self.newest, self.running)
        self.digest = digest_of(self.row)
        self.html = cell_html(self)

    @property
    def oob(self) -> Markup:
        """The cell as the live fragment sends it (swapped into the page by its id)."""
        if self._oob is None:
            self._oob = cell_html(self, oob=True)
        return self._oob

    def rows(self) -> list[dict[str, Any]]:
        return [self.newest] if self.running is None or self.running is self.newest else [self.running, self.newest]


def cell_html(c: Cell, oob: bool = False) -> Markup:
    """One matrix cell. Plain Python rather than a Jinja macro: the matrix has a thousand of them; every value
    is escaped. A pure function of the rows (absolute times, not "3m ago"), so it is rendered once per change."""
    row, newest = c.row, c.newest
    e = html.escape
    version = str(row["version"] or "")
    short = version[:7] if _SHA.match(version) else version
    created = newest["created_at"]
    when = utc(created).strftime("%Y-%m-%d %H:%M UTC") if created is not None else ""
    pinned = f'<dt>pinned</dt><dd class="pinned">{e(row["detail"] or "pinned")}</dd>' if row["pinned"] else ""
    why = newest.get("rollout_detail") if c.state == "failed" else None
    if why:
        pinned += f'<dt>why</dt><dd class="error">{e(str(why)[:200])}</dd>'
    link = f"/ui/models/{quote(str(row['repo']), safe='/')}/{quote(str(row['model']), safe='/')}"
    swap = ' hx-swap-oob="true"' if oob else ""
    return Markup(
        f'<div id="{c.id}" class="cell state-{e(c.state)}"{swap}>'
        f'<a href="{link}"><span class="version">{e(short)}</span></a> <span class="badge">{e(c.state)}</span>'
        f"<dl><dt>variant</dt><dd>{e(str(row['variant']))}</dd>"
        f'<dt>digest</dt><dd class="digest" title="{e(c.digest)}">{e(c.digest.rpartition("@")[2][:19])}</dd>'
        f'<dt>guard</dt><dd class="health-{e(str(row["health"]))}">{e(str(row["health"]))}</dd>{pinned}'
        f'<dt>deployed</dt><dd><time datetime="{stamp(created)}">{when}</time></dd></dl></div>'
    )


@dataclass
class Matrix:
    """The cells of every repository, shared by all readers (see the module's docstring)."""

    engine: AsyncEngine
    stamp_ttl: float = 1.0
    margin: timedelta = timedelta(seconds=5)
    clock: Callable[[], float] = time.monotonic
    reloads: int = field(default=0, init=False)  # whole-table reads (the first look, a deleted row)
    _cells: dict[Key, Cell] = field(default_factory=dict, init=False)
    _shown: dict[int, Key] = field(default_factory=dict, init=False)  # row id -> the target showing it
    _models: dict[tuple[str, str], dict[str, Cell]] = field(default_factory=dict, init=False)
    _envs: dict[str, set[str]] = field(default_factory=dict, init=False)  # repo -> its environments
    _tr: dict[tuple[str, str], tuple[tuple[str, ...], bytes]] = field(default_factory=dict, init=False)
    _seen: deployments.MatrixStamp | None = field(default=None, init=False)
    _checked: float = field(default=float("-inf"), init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _version: int = field(default=0, init=False)  # moves with every visible change
    _rendered: dict[tuple[str, tuple[str, ...]], tuple[int, Any]] = field(default_factory=dict, init=False)
    last_change: datetime | None = field(default=None, init=False)  # the newest changed_at of any cell
    # repo -> when a target of it appeared or went (a page from before then has no slot for it)
    _reshaped: dict[str, datetime] = field(default_factory=dict, init=False)

    # ------------------------------------------------------------------ keeping up with the table
    async def refresh(self) -> None:
        """Bring the cells up to date with the table, asking it at most once per ``stamp_ttl`` for all
        readers (every open matrix polls; a second of delay is live enough)."""
        if self.clock() - self._checked < self.stamp_ttl:
            return
        async with self._lock:  # one look at a time; who waited finds it done
            if self.clock() - self._checked < self.stamp_ttl:
                return
            async with self.engine.connect() as conn:
                seen = self._seen
                if seen is None or seen.last is None:
                    now = await self._reload(conn)  # the first look (or an empty table)
                else:
                    # Every look reads the targets changed within ``margin`` before the last stamp, moved or not:
                    # a writer that commits late (its timestamp older than a stamp already seen) is found there.
                    since = utc(seen.last) - self.margin
                    now, changed = await deployments.matrix_look(conn, since, seen.max_id)
                    if now.rows != seen.rows + now.newer or not self._update(changed):
                        now = await self._reload(conn)  # a row went (or a deleted row's id came back)
            self._seen, self._checked = now, self.clock()

    async def _reload(self, conn: Any) -> deployments.MatrixStamp:
        now, found = await deployments.matrix_look(conn)  # first: readers meanwhile see the old cells
        self.reloads += 1
        before = {k: c.html for k, c in self._cells.items()} if self._seen is not None else None
        last = self.last_change
        self._cells.clear()
        self._shown.clear()
        self._models.clear()
        self._envs.clear()
        self._tr.clear()
        self.last_change = None
        self._update(found, whole=True)
        if before is not None and self.last_change is not None:
            # After a deleted row a cell may show an older row, or be gone: the repositories whose cells differ
            # are reshaped just after every stamp a page was given (so their pages load again, once).
            differ = {k[0] for k in before.keys() ^ self._cells.keys()}
            differ |= {k[0] for k, c in self._cells.items() if k in before and before[k] != c.html}
            if differ:
                self.last_change = max(self.last_change, last or self.last_change) + timedelta(microseconds=1)
                for repo in differ:
                    self._reshaped[repo] = self.last_change
        return now

    def _update(self, found: Sequence[Mapping[Any, Any]], *, whole: bool = False) -> bool:
        """Rebuild the cells of the targets in ``found`` (each one's newest and running row); False when a
        row id is shown by another target (a deleted row's id reused: the caller reads the whole table)."""
        by_key: dict[Key, list[dict[str, Any]]] = {}
        for row in found:  # plain dicts: a RowMapping's .get of a missing column raises inside
            plain = dict(row)
            key = (plain["repo"], plain["environment"], plain["model"])
            if self._shown.get(plain["id"], key) != key:
                return False
            by_key.setdefault(key, []).append(plain)
        late = self.last_change  # every stamp a page was given is at most this
        moved = False
        for key, rows in by_key.items():
            changed_at = utc(max(r.pop("changed_at") for r in rows))
            for r in rows:
                r.setdefault("artifact", artifacts_of(r.pop("review_summary")).get(r["model"]))
            newest = rows[-1]  # oldest first
            running = next((r for r in reversed(rows) if r["state"] == "deployed"), None)
            old = self._cells.get(key)
            if old is not None and old.newest == newest and old.running == running:
                continue  # read again within the margin, unchanged
            moved = True
            if not whole and late is not None and changed_at <= late:
                # committed after a look that saw a newer stamp: newer than every page's, so fragments send it
                changed_at = late + timedelta(microseconds=1)
            if old is not None:
                for r in old.rows():
                    self._shown.pop(r["id"], None)
            elif not whole:  # a new target (a whole read compares the targets before and after)
                self._reshaped[key[0]] = max(changed_at, self._reshaped.get(key[0], changed_at))
            cell = self._cells[key] = Cell(key, newest, running, changed_at)
            for r in cell.rows():
                self._shown[r["id"]] = key
            repo, env, model = key
            self._models.setdefault((repo, model), {})[env] = cell
            self._envs.setdefault(repo, set()).add(env)
            self._tr.pop((repo, model), None)
            if self.last_change is None or changed_at > self.last_change:
                self.last_change = changed_at
        if moved:
            self._version += 1
        return True

    # ------------------------------------------------------------------ what a reader sees
    def table(self, repos: Sequence[str]) -> Markup:
        """The matrix of ``repos`` as HTML ("" when they have no deployments)."""
        return Markup(self.table_bytes(repos).decode())

    def table_bytes(self, repos: Sequence[str]) -> bytes:
        """The matrix of ``repos`` as UTF-8 HTML (b"" when they have no deployments), kept until a cell changes:
        a join of model rows kept encoded (the page is half a megabyte; encoding it whole was most of a page)."""
        key = ("table", tuple(repos))
        kept = self._rendered.get(key)
        if kept is not None and kept[0] == self._version:
            return bytes(kept[1])
        readable = set(repos)
        envs = tuple(sorted({env for repo in readable for env in self._envs.get(repo, ())}))
        rows = [self._row(m, envs) for m in sorted(self._models) if m[0] in readable]
        table = b""
        if rows:
            head = "".join(f'<th scope="col">{html.escape(env)}</th>' for env in envs)
            table = b"".join(
                [
                    '<table class="matrix"><caption>What runs where (the newest deployed version per environment)'
                    f'</caption><thead><tr><th scope="col">Model</th>{head}</tr></thead><tbody>'.encode(),
                    *rows,
                    b"</tbody></table>",
                ]
            )
        self._remember(key, table)
        return table

    def _row(self, model: tuple[str, str], envs: tuple[str, ...]) -> bytes:
        kept = self._tr.get(model)
        if kept is not None and kept[0] == envs:
            return kept[1]
        repo, name = model
        cells = self._models[model]
        link = f"/ui/models/{quote(repo, safe='/')}/{quote(name, safe='/')}"
        tds = "".join(f"<td>{cells[env].html}</td>" if env in cells else _NONE for env in envs)
        tr = (
            f'<tr><th scope="row"><a href="{link}">{html.escape(name)}</a><br><small>{html.escape(repo)}</small>'
            f"</th>{tds}</tr>"
        ).encode()
        self._tr[model] = (envs, tr)
        return tr

    def changed(self, repos: Sequence[str], after: datetime) -> list[Cell]:
        """The cells of ``repos`` whose target changed after ``after`` (the live fragment)."""
        if self.last_change is None or self.last_change <= after:
            return []
        readable = set(repos)
        found = [c for c in self._cells.values() if c.changed_at > after and c.key[0] in readable]
        return sorted(found, key=lambda c: c.key)

    def reshaped(self, repos: Sequence[str], after: datetime) -> bool:
        """Whether a target of ``repos`` appeared (a new environment or model) or went after ``after``: a
        page from then has no slot for it, so the fragment asks for the whole page again."""
        return any(self._reshaped.get(repo, after) > after for repo in repos)

    def json(self, repos: Sequence[str]) -> str:
        """The newest and the running row of every target of ``repos``, oldest first, as JSON."""
        key = ("json", tuple(repos))
        kept = self._rendered.get(key)
        if kept is not None and kept[0] == self._version:
            return str(kept[1])
        readable = set(repos)
        rows = sorted(
            (r for c in self._cells.values() if c.key[0] in readable for r in c.rows()), key=lambda r: r["id"]
        )
        items = [{k: (stamp(v) if isinstance(v, datetime) else v) for k, v in r.items()} for r in rows]
        body = json.dumps({"repositories": list(repos), "deployments": items}, separators=(",", ":"))
        self._remember(key, body)
        return body

    def _remember(self, key: tuple[str, tuple[str, ...]], value: Any) -> None:
        if len(self._rendered) >= _RENDERED_MAX:  # many distinct readers between two changes: start over
            self._rendered.clear()
        self._rendered[key] = (self._version, value)
