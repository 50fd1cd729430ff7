"""Git LFS: recognise a pointer file, and download the object it names through the batch API (stdlib only).

Shared by the bot (the review's checkout) and the model server (``modelship fetch-model --git``), which
must never take a pointer for the model. Both fetch with our own client rather than git-lfs's smudge
filter because what is downloaded must be decided before it is downloaded:

- the sizes come from the pointers, so the operator's caps refuse a 50 GB object before a byte of it
  moves, and a download stops at the announced size;
- every object is checked against its oid (its sha256, by the LFS spec) before it replaces the pointer;
- the git credentials go to the batch endpoint only (never through a redirect, never to the transfer
  URLs, which get the action's own header, as the spec says), and the endpoint is derived from the
  repository's clone URL the way git-lfs does (``<clone_url>/info/lfs``, GitHub's documented location):
  a ``.lfsconfig`` in the repository (PR content) cannot send them elsewhere.

Spec: https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md and docs/api/batch.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

MEDIA_TYPE = "application/vnd.git-lfs+json"
POINTER_MAX_BYTES = 1024  # the spec: a pointer file is smaller than 1024 bytes
_VERSION = b"version https://git-lfs.github.com/spec/v1\n"
_POINTER = re.compile(
    rb"\Aversion https://git-lfs\.github\.com/spec/v1\n"
    rb"(?:[a-z0-9.-]+ [^\n]*\n)*?"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"(?:[a-z0-9.-]+ [^\n]*\n)*?"
    rb"size (?P<size>0|[1-9][0-9]{0,18})\n"
    rb"(?:[a-z0-9.-]+ [^\n]*\n)*\Z"
)
_BATCH_SIZE = 100  # objects per batch request (git-lfs's own default)


class LfsError(Exception):
    """An LFS object could not be had; the message names the path and never carries credentials.

    ``transient``: another attempt may work (a 5xx, a reset connection); a missing object stays missing.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Pointer:
    oid: str  # the object's sha256 (hex)
    size: int


def parse_pointer(data: bytes) -> Pointer | None:
    """The pointer ``data`` is, or None for anything else (any real model file)."""
    if len(data) >= POINTER_MAX_BYTES or not data.startswith(_VERSION):
        return None
    match = _POINTER.match(data)
    return Pointer(match["oid"].decode(), int(match["size"])) if match else None


def read_pointer(path: Path) -> Pointer | None:
    """The pointer a regular file holds (links are not followed), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return parse_pointer(handle.read(POINTER_MAX_BYTES))


def endpoint(clone_url: str) -> str:
    """The LFS server of a repository, as git-lfs derives it from the remote URL (GitHub serves it there)."""
    url = clone_url.rstrip("/")
    return f"{url}/info/lfs" if url.endswith(".git") else f"{url}.git/info/lfs"


class Objects(Protocol):
    """Where LFS objects come from: the LFS server, or a local repository's object store."""

    def fetch(self, wanted: Mapping[str, Pointer], dest: Path) -> dict[str, Path]:
        """Write each wanted object (by path) into ``dest``, verified; return path -> file."""
        ...


def _copy_verified(source: Iterable[bytes], pointer: Pointer, target: Path, path: str) -> None:
    """Stream into ``target``, stopping past the announced size; refuse bytes that are not the object."""
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        for chunk in source:
            size += len(chunk)
            if size > pointer.size:
                break
            digest.update(chunk)
            out.write(chunk)
    if size != pointer.size or digest.hexdigest() != pointer.oid:
        target.unlink(missing_ok=True)
        raise LfsError(
            f"`{path}`: the Git LFS server sent bytes that are not object {pointer.oid[:12]}… "
            f"({size if size <= pointer.size else 'more than ' + str(pointer.size)} bytes, "
            f"{pointer.size} announced)"
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The batch call carries the git credentials: a redirect must not take them to another URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _DropAuthOnRedirect(urllib.request.HTTPRedirectHandler):
    """A transfer URL may redirect (e.g. to storage); its action header stays with its own host."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            new.headers = {k: v for k, v in new.headers.items() if k.lower() != "authorization"}
        return new


def _http_url(url: Any, what: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise LfsError(f"the Git LFS server gave no usable {what} URL")
    return url


class LfsServer:
    """The batch API of one repository (basic transfer), authenticated like git over HTTP."""

    def __init__(self, clone_url: str, authorization: str | None = None, *, timeout: float = 60) -> None:
        self.url = endpoint(clone_url)
        self._authorization = authorization  # an ``Authorization`` header value; never logged
        self._timeout = timeout
        self._batch_opener = urllib.request.build_opener(_NoRedirect)
        self._transfer_opener = urllib.request.build_opener(_DropAuthOnRedirect)

    def fetch(self, wanted: Mapping[str, Pointer], dest: Path) -> dict[str, Path]:
        by_oid: dict[str, list[str]] = {}
        for path, pointer in wanted.items():
            by_oid.setdefault(pointer.oid, []).append(path)
        pointers = {p.oid: p for p in wanted.values()}
        oids = sorted(pointers)
        fetched: dict[str, Path] = {}
        for start in range(0, len(oids), _BATCH_SIZE):
            chunk = [pointers[o] for o in oids[start : start + _BATCH_SIZE]]
            for answer in self._batch(chunk, by_oid):
                oid = answer["oid"]
                path = by_oid[oid][0]
                target = dest / oid
                self._download(answer, pointers[oid], target, path)
                for each in by_oid[oid]:
                    fetched[each] = target
        return fetched

    def _batch(self, pointers: list[Pointer], by_oid: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        body = {
            "operation": "download",
            "transfers": ["basic"],
            "objects": [{"oid": p.oid, "size": p.size} for p in pointers],
            "hash_algo": "sha256",
        }
        headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE}
        if self._authorization:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self.url + "/objects/batch", json.dumps(body).encode(), headers, method="POST")
        names = ", ".join(f"`{by_oid[p.oid][0]}`" for p in pointers[:3]) + (" …" if len(pointers) > 3 else "")
        try:
            with self._batch_opener.open(request, timeout=self._timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            message = _server_message(exc)
            raise LfsError(
                f"Git LFS batch request for {names} failed: HTTP {exc.code}{message}",
                transient=exc.code >= 500 or exc.code == 429,
            ) from None
        except (OSError, ValueError) as exc:
            raise LfsError(f"Git LFS server unreachable for {names}: {type(exc).__name__}", transient=True) from None
        objects = answer.get("objects") if isinstance(answer, dict) else None
        if not isinstance(objects, list):
            raise LfsError(f"Git LFS batch answer for {names} has no objects")
        found = {o.get("oid"): o for o in objects if isinstance(o, dict)}
        for pointer in pointers:
            entry = found.get(pointer.oid)
            path = by_oid[pointer.oid][0]
            if entry is None:
                raise LfsError(f"`{path}`: the Git LFS server did not answer for object {pointer.oid[:12]}…")
            error = entry.get("error")
            if isinstance(error, dict):
                raise LfsError(
                    f"`{path}`: Git LFS object {pointer.oid[:12]}… ({pointer.size} bytes) could not be fetched: "
                    f"{error.get('code')} {str(error.get('message', ''))[:200]}"
                )
        return [found[p.oid] for p in pointers]

    def _download(self, entry: Mapping[str, Any], pointer: Pointer, target: Path, path: str) -> None:
        action = (entry.get("actions") or {}).get("download")
        if not isinstance(action, dict):
            raise LfsError(f"`{path}`: the Git LFS server gave no download for object {pointer.oid[:12]}…")
        href = _http_url(action.get("href"), "download")
        header = action.get("header")
        header = header if isinstance(header, dict) else {}
        request = urllib.request.Request(href, headers={str(k): str(v) for k, v in header.items()})
        try:
            with self._transfer_opener.open(request, timeout=self._timeout) as response:
                _copy_verified(iter(lambda: response.read(1 << 20), b""), pointer, target, path)
        except urllib.error.HTTPError as exc:
            raise LfsError(
                f"`{path}`: downloading Git LFS object {pointer.oid[:12]}… failed: HTTP {exc.code}",
                transient=exc.code >= 500 or exc.code == 429,
            ) from None
        except OSError as exc:
            raise LfsError(
                f"`{path}`: downloading Git LFS object {pointer.oid[:12]}… failed: {type(exc).__name__}",
                transient=True,
            ) from None


def _server_message(exc: urllib.error.HTTPError) -> str:
    try:
        message = json.loads(exc.read()).get("message")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" ({str(message)[:200]})" if message else ""


class LocalObjects:
    """A local repository's own LFS store (``<git dir>/lfs/objects``), for ``modelship eval --repo``."""

    def __init__(self, git_dir: Path) -> None:
        self.root = git_dir / "lfs" / "objects"

    def fetch(self, wanted: Mapping[str, Pointer], dest: Path) -> dict[str, Path]:
        fetched = {}
        for path, pointer in wanted.items():
            source = self.root / pointer.oid[:2] / pointer.oid[2:4] / pointer.oid
            if not source.is_file():
                raise LfsError(
                    f"`{path}`: Git LFS object {pointer.oid[:12]}… is not in this repository's LFS store "
                    "(run `git lfs fetch` for the commit)"
                )
            target = dest / pointer.oid
            if not target.exists():
                with source.open("rb") as handle:
                    _copy_verified(iter(lambda: handle.read(1 << 20), b""), pointer, target, path)
            fetched[path] = target
        return fetched


def resolve_tree(root: Path, objects: Objects, *, max_bytes: int | None = None) -> list[str]:
    """Replace every pointer file under ``root`` by its verified object; returns the resolved paths.

    ``max_bytes`` caps the tree's size WITH the objects' sizes (from the pointers), checked before anything
    is downloaded. Raises ``LfsError`` naming the path when an object cannot be had: a pointer never stays.
    """
    wanted: dict[str, Pointer] = {}
    total = 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        pointer = read_pointer(path) if size < POINTER_MAX_BYTES else None
        if pointer is not None:
            wanted[path.relative_to(root).as_posix()] = pointer
            size = pointer.size
        total += size
    if not wanted:
        return []
    if max_bytes is not None and total > max_bytes:
        biggest = max(wanted, key=lambda p: wanted[p].size)
        raise LfsError(
            f"the tree is {total} bytes with its Git LFS objects, over the cap of {max_bytes} "
            f"(`{biggest}` alone is {wanted[biggest].size} bytes)",
        )
    with tempfile.TemporaryDirectory(dir=root, prefix=".lfs-") as tmp:
        fetched = objects.fetch(wanted, Path(tmp))
        uses: dict[Path, int] = {}
        for relative in wanted:
            uses[fetched[relative]] = uses.get(fetched[relative], 0) + 1
        for relative in wanted:
            target, staged = root / relative, fetched[relative]
            mode = target.stat().st_mode & 0o777
            uses[staged] -= 1
            if uses[staged]:  # the same object at another path too: that one takes the staged file
                shutil.copyfile(staged, target)
            else:
                os.replace(staged, target)
            os.chmod(target, mode)
    return sorted(wanted)
