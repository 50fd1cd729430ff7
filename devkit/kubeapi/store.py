"""The stand-in's etcd: objects by kind/namespace/name, one resourceVersion counter, an event history
that watches replay from, and compaction (after which an older resourceVersion is 410 Gone).

Everything here is synchronous and runs on the server's event loop, so a watch that replays history
and then registers for new events can never miss one in between. Every object version is checked
against Kubernetes' schema when it is committed, which is why every response (made of committed
objects) conforms; a stand-in bug that would commit a non-conforming object is a 500 and is recorded
in ``violations`` for the test fixture to fail on.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from devkit.kubeapi import schemas
from devkit.kubeapi.model import KINDS, ApiError, Filter, Kind, not_found, now

Obj = dict[str, Any]
Key = tuple[str, str, str]  # plural, namespace ("" when cluster-scoped), name


@dataclass(frozen=True)
class Event:
    rv: int
    kind: Kind
    type: str  # ADDED / MODIFIED / DELETED
    obj: Obj
    old: Obj | None


@dataclass
class Watcher:
    kind: Kind
    filter: Filter
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self, history: int = 10_000) -> None:
        self.objects: dict[Key, Obj] = {}
        self.rv = 1
        self.history: collections.deque[Event] = collections.deque(maxlen=history)
        self.compacted = 1  # the oldest resourceVersion a watch may still start from
        self.watchers: list[Watcher] = []
        self.listeners: list[Callable[[Event], None]] = []
        self.violations: list[str] = []

    # --- reads --------------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        return self.objects.get((kind.plural, namespace if kind.namespaced else "", name))

    def require(self, kind: Kind, namespace: str, name: str) -> Obj:
        obj = self.get(kind, namespace, name)
        if obj is None:
            raise not_found(kind, name)
        return obj

    def items(self, kind: Kind, flt: Filter | None = None) -> list[Obj]:
        found = [o for (plural, _, _), o in self.objects.items() if plural == kind.plural]
        if flt is not None:
            found = [o for o in found if flt.matches(o)]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def dependents(self, uid: str) -> Iterator[tuple[Kind, Obj]]:
        by_plural = {k.plural: k for k in KINDS.values()}
        for (plural, _, _), obj in list(self.objects.items()):
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or ()):
                yield by_plural[plural], obj

    def by_uid(self, uid: str) -> Obj | None:
        return next((o for o in self.objects.values() if o["metadata"].get("uid") == uid), None)

    # --- writes -------------------------------------------------------------------------------

    def _commit(self, kind: Kind, key: Key, obj: Obj, type_: str, old: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        problems = schemas.errors(obj, schemas.definition_for(kind.group, kind.version, kind.kind))
        if problems:
            text = f"{kind.kind} {key[1]}/{key[2]} would not conform to the schema: {problems}"
            self.violations.append(text)
            raise ApiError(500, "InternalError", f"kubeapi stand-in bug: {text}")
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        event = Event(self.rv, kind, type_, obj, old)
        self.history.append(event)
        if len(self.history) == self.history.maxlen:
            self.compacted = self.history[0].rv - 1
        for watcher in list(self.watchers):
            if watcher.kind == kind:
                self._offer(watcher, event)
        for listener in list(self.listeners):
            listener(event)
        return obj

    def create(self, kind: Kind, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = (kind.plural, meta.get("namespace", "") if kind.namespaced else "", meta["name"])
        if key in self.objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{kind.qualified} "{meta["name"]}" already exists',
                kind=kind,
                name=meta["name"],
            )
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())  # the API layer may have drawn it already
        meta["creationTimestamp"] = now()
        if kind.generation:
            meta["generation"] = 1
        for drop in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(drop, None)
        return copy.deepcopy(self._commit(kind, key, obj, "ADDED", None))

    def update(self, kind: Kind, obj: Obj, *, expect_rv: str | None = None) -> Obj:
        """Replace the stored object (same uid); ``expect_rv`` is optimistic concurrency (409 Conflict)."""
        meta = obj["metadata"]
        key = (kind.plural, meta.get("namespace", "") if kind.namespaced else "", meta["name"])
        old = self.objects.get(key)
        if old is None:
            raise not_found(kind, meta["name"])
        if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.qualified} "{meta["name"]}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                kind=kind,
                name=meta["name"],
            )
        if obj == old:
            return copy.deepcopy(old)  # a no-op write does not bump the resourceVersion (as the API server)
        return copy.deepcopy(self._commit(kind, key, obj, "MODIFIED", old))

    def mutate(self, kind: Kind, namespace: str, name: str, change: Callable[[Obj], None]) -> Obj | None:
        """Apply ``change`` to a copy of the stored object and commit it; None if the object is gone."""
        current = self.get(kind, namespace, name)
        if current is None:
            return None
        updated = copy.deepcopy(current)
        change(updated)
        return self.update(kind, updated)

    def remove(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        key = (kind.plural, namespace if kind.namespaced else "", name)
        old = self.objects.get(key)
        if old is None:
            return None
        return self._commit(kind, key, copy.deepcopy(old), "DELETED", old)

    def compact(self) -> None:
        """Forget the history up to now, as etcd compaction does: older resourceVersions are 410 Gone."""
        self.history.clear()
        self.compacted = self.rv

    # --- watch --------------------------------------------------------------------------------

    def watch(self, kind: Kind, flt: Filter, since: int | None) -> Watcher:
        """A watcher fed from ``since`` (exclusive), or from now with ADDED for what exists (``since`` None)."""
        watcher = Watcher(kind, flt)
        if since is None:
            for obj in self.items(kind, flt):
                watcher.queue.put_nowait(Event(int(obj["metadata"]["resourceVersion"]), kind, "ADDED", obj, None))
        else:
            if since < self.compacted:
                raise ApiError(
                    410,
                    "Expired",
                    f"too old resource version: {since} ({self.compacted})",
                )
            for event in self.history:
                if event.rv > since and event.kind == kind:
                    self._offer(watcher, event)
        self.watchers.append(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        if watcher in self.watchers:
            self.watchers.remove(watcher)

    def close_watches(self) -> None:
        for watcher in self.watchers:
            watcher.queue.put_nowait(None)
        self.watchers.clear()

    @staticmethod
    def _offer(watcher: Watcher, event: Event) -> None:
        # A label change that moves an object into or out of the selection is an ADDED or DELETED for
        # this watcher, as the API server's watch cache reports it.
        now_in = watcher.filter.matches(event.obj)
        was_in = event.old is not None and watcher.filter.matches(event.old)
        if event.type == "MODIFIED" and now_in and not was_in:
            event = Event(event.rv, event.kind, "ADDED", event.obj, event.old)
        elif event.type == "MODIFIED" and was_in and not now_in:
            event = Event(event.rv, event.kind, "DELETED", event.obj, event.old)
        elif not (now_in or (event.type == "DELETED" and was_in)):
            return
        watcher.queue.put_nowait(event)
