"""The pods of one sandbox run, as a Kubernetes watch reports them, for the run's supervising coroutine.

Polling (a list every 0.25 s per run) cost a list call, its schema checks on a stand-in and the
client's deserialization four times a second for the whole run; with 20 concurrent reviews that was
a steady load on the bot and the API server for nothing, and more the slower the runs. A watch sends
only changes: a run's pod changes about half a dozen times in its life.

One daemon thread per run (the official client blocks; a thread of its own rather than the default
executor, which a watch held open would starve): list (the snapshot and its resourceVersion), then
watch from there with bookmarks, each watch call ending after ``timeout_s`` so that a closed watcher's
thread ends soon; a 410 Expired (the history was compacted) lists again. Events are plain JSON
(``deserialize=False``), the shape the pure checks in bot.sandbox.kube_jobs take. Errors other than
410 reach the caller, as a failed list did.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any

_GONE = 410


class RunPods:
    """The latest pods matching ``selector`` in ``namespace``, kept current by a watch."""

    def __init__(self, core: Any, api: Any, namespace: str, selector: str, *, timeout_s: int = 10) -> None:
        self._core, self._api = core, api
        self._namespace, self._selector, self._timeout_s = namespace, selector, timeout_s
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._pods: dict[str, dict[str, Any]] = {}
        self._error: BaseException | None = None
        self._stopped = threading.Event()
        threading.Thread(target=self._follow, name=f"pods {selector}", daemon=True).start()

    async def pods(self, wait: float) -> list[dict[str, Any]]:
        """The run's pods after the next change, or after ``wait`` seconds without one (none listed yet: [])."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), wait)
        self._changed.clear()
        if self._error is not None:
            raise self._error
        return list(self._pods.values())

    def close(self) -> None:
        """Stop following (the thread ends at its watch call's next event or timeout)."""
        self._stopped.set()

    # ---- the thread ----

    def _follow(self) -> None:
        from kubernetes import watch

        version: str | None = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    listed = self._core.list_namespaced_pod(self._namespace, label_selector=self._selector)
                    version = listed.metadata.resource_version
                    pods = {p.metadata.name: self._api.sanitize_for_serialization(p) for p in listed.items}
                    self._publish(functools.partial(self._replace, pods))
                stream = watch.Watch().stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    label_selector=self._selector,
                    resource_version=version,
                    timeout_seconds=self._timeout_s,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                )
                for event in stream:
                    if self._stopped.is_set():
                        return
                    pod = event.get("object") or {}
                    version = (pod.get("metadata") or {}).get("resourceVersion") or version
                    kind, name = event.get("type"), (pod.get("metadata") or {}).get("name")
                    if kind in ("ADDED", "MODIFIED") and name:
                        self._publish(functools.partial(self._pods.__setitem__, name, pod))
                    elif kind == "DELETED" and name:
                        self._publish(functools.partial(self._pods.pop, name, None))
            except Exception as exc:
                if getattr(exc, "status", None) == _GONE:
                    version = None  # compacted: list again
                    continue
                self._publish(functools.partial(self._fail, exc))
                return

    def _replace(self, pods: dict[str, dict[str, Any]]) -> None:
        self._pods = pods

    def _fail(self, exc: BaseException) -> None:
        self._error = exc

    def _publish(self, change: Callable[[], object]) -> None:
        def apply() -> None:  # on the event loop
            change()
            self._changed.set()

        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            self._loop.call_soon_threadsafe(apply)
