"""Reuse of a finished sandbox result for a run whose inputs are byte-identical (any backend).

Twenty PRs opened against one base commit evaluate the same base tree with the same config, image and
limits twenty times; on a small cluster that is half of all the sandbox work. ``ReusingRunner`` wraps a
``SandboxRunner`` and answers a run with the result of an earlier one when both would see exactly the
same thing. The key is the sha256 of everything the sandbox sees:

- the image's identity as the backend resolves it (``ImageIdentity.image_identity``: the engine's image
  id, or the registry digest of a tag) — a backend that cannot name it exactly gets no reuse;
- the command, environment, working directory and every limit (cpus, memory, pids, timeout, scratch,
  output and result caps);
- every input mount: its path in the container and, walked without following links, each entry's
  relative path, type, mode and bytes (files) or target (links). The pipeline spec (the base branch's
  config as the sandbox reads it) is one of these files.

Only runs that have inputs (one without is a probe of the sandbox itself, e.g. the doctor's), succeeded
and keep no files (``spec.keep`` unset: kept variants must be written to each review's own directory)
are remembered, in this process, for ``ttl_s`` and at most ``max_entries``.
Concurrent identical runs share the first one's result (single flight): the others wait for it rather
than start their own, and each runs its own when it fails or is cancelled (a failure is not reused: it may
be the cluster's, not the inputs'). A reused result carries
``SandboxResult.reused`` (the key and the age of the run it came from), so the review says so.

Why this is sound: the untrusted code of a run sees only the inputs the key covers, so a second run
could differ only by what it cannot control (timing: measured latencies come from the first run, which
the review's note says) — and a result is only ever reused under the same sha256 of all of it, so a
head tree cannot stand in for a base tree or another head.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from bot.sandbox.runner import Reused, SandboxResult, SandboxRunner, SandboxSpec

log = logging.getLogger(__name__)
_CHUNK = 1024 * 1024


@runtime_checkable
class ImageIdentity(Protocol):
    """A backend that can name the exact image a spec would run (None when it cannot)."""

    async def image_identity(self, image: str) -> str | None: ...


class InputsChanged(OSError):
    """An input is neither a file, a directory nor a link (nothing the sandbox could be given either)."""


def inputs_digest(spec: SandboxSpec, image_identity: str) -> str:
    """The sha256 (hex) of everything a run of ``spec`` sees (blocking: reads every input file)."""
    digest = hashlib.sha256()

    def put(*fields: object) -> None:
        digest.update(json.dumps(fields, separators=(",", ":")).encode() + b"\n")

    described = asdict(spec)
    for name in ("image", "inputs", "keep", "keep_to"):
        described.pop(name)
    put("image", image_identity)
    put("spec", sorted((k, repr(v)) for k, v in described.items()))
    for mount in sorted(spec.inputs, key=lambda m: m.container_path):
        put("mount", mount.container_path)
        _put_tree(Path(mount.host_path), put, digest)
    return digest.hexdigest()


def _put_tree(root: Path, put: Callable[..., None], digest: hashlib._Hash) -> None:
    def entry(path: Path, rel: str) -> None:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            put("link", rel, os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            put("dir", rel, mode)
        elif stat.S_ISREG(info.st_mode):
            put("file", rel, mode, info.st_size)
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        else:
            raise InputsChanged(f"input {path} is neither a file, a directory nor a link")

    entry(root, ".")
    if root.is_dir() and not root.is_symlink():
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted([*dirnames, *filenames]):
                path = Path(dirpath) / name
                entry(path, path.relative_to(root).as_posix())


@dataclass(frozen=True)
class _Entry:
    result: SandboxResult
    finished: float


class ReusingRunner:
    """``SandboxRunner`` that answers a run identical to a finished one with its result (see the module)."""

    def __init__(
        self,
        inner: SandboxRunner,
        *,
        ttl_s: float = 900.0,
        max_entries: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._done: OrderedDict[str, _Entry] = OrderedDict()
        self._running: dict[str, asyncio.Future[_Entry | None]] = {}
        self.reused = 0  # results answered from an earlier run (the scale benchmark counts them)

    async def run(self, spec: SandboxSpec) -> SandboxResult:
        key = await self._key(spec)
        if key is None:
            return await self.inner.run(spec)
        while True:
            if (entry := self._fresh(key)) is not None:
                return self._reuse(key, entry)
            running = self._running.get(key)
            if running is None:
                break
            # An identical run is under way: wait for it (shielded: our cancellation must not cancel it).
            if (entry := await asyncio.shield(running)) is not None:
                return self._reuse(key, entry)
            # It failed or was cancelled: each waiter runs its own (side by side, not one after another).
            return await self.inner.run(spec)
        future: asyncio.Future[_Entry | None] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        entry = None
        try:
            result = await self.inner.run(spec)
            if result.ok:
                entry = _Entry(result, self._clock())
                self._remember(key, entry)
            return result
        finally:
            del self._running[key]
            future.set_result(entry)

    def __getattr__(self, name: str) -> object:
        """The backend's other operations (e.g. the Kubernetes runner's ``delete_orphans`` at start-up)."""
        if name.startswith("__") or name == "inner":  # copy/pickle probe dunders before __init__ ran
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def _key(self, spec: SandboxSpec) -> str | None:
        # No inputs: a probe of the sandbox itself (the doctor's), which must really run every time.
        if self.ttl_s <= 0 or not spec.inputs or spec.keep is not None or not isinstance(self.inner, ImageIdentity):
            return None
        try:
            identity = await self.inner.image_identity(spec.image)
        except Exception as exc:  # never the review's failure: the run itself reports an unreachable registry
            log.info("sandbox reuse: the image %s could not be resolved (%s); running", spec.image, exc)
            return None
        if identity is None:
            return None
        try:
            return await asyncio.to_thread(inputs_digest, spec, identity)
        except OSError as exc:  # the run itself will say what is wrong with its inputs
            log.info("sandbox reuse: inputs not hashed (%s); running", exc)
            return None

    def _fresh(self, key: str) -> _Entry | None:
        entry = self._done.get(key)
        if entry is None:
            return None
        if self._clock() - entry.finished > self.ttl_s:
            del self._done[key]
            return None
        self._done.move_to_end(key)
        return entry

    def _remember(self, key: str, entry: _Entry) -> None:
        self._done[key] = entry
        self._done.move_to_end(key)
        while len(self._done) > self.max_entries:
            self._done.popitem(last=False)

    def _reuse(self, key: str, entry: _Entry) -> SandboxResult:
        self.reused += 1
        age = max(0.0, self._clock() - entry.finished)
        log.info("sandbox reuse: inputs sha256:%s answered from a run that finished %.1f s ago", key[:12], age)
        return replace(entry.result, reused=Reused(key=key, age_s=age))
