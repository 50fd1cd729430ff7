"""The HTTP side of the stand-in: Kubernetes' REST paths, verbs, Status errors and watch streams.

Request bodies are validated against the published 1.33 schema of their kind (strict: an unknown
field is an error) and refused with 422 Invalid naming each field; objects are validated when
committed (``Store``), Status objects and list envelopes before they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from devkit.kubeapi import podspec, schemas
from devkit.kubeapi.controllers import FOREGROUND, Controllers, place, scheduled_condition
from devkit.kubeapi.kubelet import POD_PIDS_LIMIT, Kubelet, bound_here
from devkit.kubeapi.model import (
    DEPLOYMENTS,
    JOBS,
    KINDS,
    NAMESPACES,
    NETWORK_POLICIES,
    NODE_NAME,
    PODS,
    ApiError,
    Filter,
    Kind,
    generated_name,
    invalid,
    name_problem,
    not_found,
    now,
    parse_field_selector,
    parse_selector,
    success_status,
)
from devkit.kubeapi.store import Obj, Store

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-modelship-kubeapi",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
LOG_CHUNK = 256 * 1024


class KubeAPI:
    """A Kubernetes API server subset on 127.0.0.1 (plain HTTP, bearer token) with a kubelet on podman.

    ``docker_client`` None runs the API and controllers only: pods stay Pending as on a cluster with no
    node. Use it as ``async with KubeAPI(...) as api`` on the current loop, or ``running_in_thread``
    when the blocking ``kubernetes`` client is called from the same thread as the tests.
    """

    def __init__(
        self,
        *,
        docker_client: Any = None,
        workdir: Path | None = None,
        token: str | None = None,
        bookmark_interval: float = 1.0,
        history: int = 10_000,
        pod_pids_limit: int = POD_PIDS_LIMIT,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.tokens = {self.token}  # plus the service-account tokens the kubelet mounts into pods
        self.store = Store(history=history)
        self.bookmark_interval = bookmark_interval
        self.controllers = Controllers(self.store, self._delete_quietly)
        self.controllers.admitted = self._admit
        self.controllers.admission = self._mutating_admission
        # Mutating admission for tests, as a cluster's MutatingAdmissionWebhooks: each hook may rewrite an
        # object being created (by a client or a controller) before it is placed and stored.
        self.mutating_webhooks: list[Callable[[Kind, Obj], None]] = []
        self.instance = uuid.uuid4().hex[:12]
        self.kubelet: Kubelet | None = None
        if docker_client is not None:
            root = workdir or Path(f"/tmp/modelship-kubeapi-{self.instance}")
            self.kubelet = Kubelet(
                self.store,
                docker_client,
                instance=self.instance,
                workdir=root,
                pod_pids_limit=pod_pids_limit,
                issue_token=self._issue_token,
            )
        self.controllers.node = NODE_NAME if self.kubelet is not None else None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        for name in ("default", "kube-system", "kube-public"):
            self.store.create(NAMESPACES, _namespace(name))

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> KubeAPI:
        self.loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        if self.kubelet is not None:
            self.kubelet.start()
        return self

    async def stop(self) -> None:
        self.controllers.stop()
        self.store.close_watches()
        for task in list(self._tasks):
            task.cancel()
        if self.kubelet is not None:
            await self.kubelet.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> KubeAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def write_kubeconfig(self, path: Path) -> Path:
        return write_kubeconfig(path, self.url, self.token)

    @property
    def violations(self) -> list[str]:
        return self.store.violations

    def compact(self) -> None:
        """Forget the watch history (etcd compaction): a watch from an older resourceVersion gets 410."""
        self._on_loop(self.store.compact)

    def _on_loop(self, fn: Any) -> Any:
        if self.loop is None or _running_loop() is self.loop:
            return fn()
        return asyncio.run_coroutine_threadsafe(_call(fn), self.loop).result(30)

    def _issue_token(self, service_account: str) -> str:
        token = f"kubeapi-sa-{service_account}-{secrets.token_urlsafe(16)}"
        self.tokens.add(token)
        return token

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _admit(self, pod: Obj) -> None:
        if self.kubelet is not None and bound_here(pod):
            self.kubelet.admit(pod)

    def _mutating_admission(self, kind: Kind, obj: Obj) -> None:
        for hook in list(self.mutating_webhooks):
            hook(kind, obj)

    def _schedule(self, ns: str, name: str, uid: str) -> None:
        """The scheduler, for a pod whose last scheduling gate was just removed: bind it to the node."""
        pod = self.store.get(PODS, ns, name)
        if (
            self.kubelet is None  # no node: it stays Pending, as on a cluster without one
            or pod is None
            or pod["metadata"]["uid"] != uid
            or pod["metadata"].get("deletionTimestamp")
            or pod["spec"].get("nodeName")
            or podspec.gates(pod["spec"])
        ):
            return

        def bind(p: Obj) -> None:
            p["spec"]["nodeName"] = NODE_NAME
            p.setdefault("status", {})["conditions"] = [scheduled_condition()]

        bound = self.store.mutate(PODS, ns, name, bind)
        if bound is not None:
            self._admit(bound)

    # --- dispatch ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.headers.get("Authorization", "").removeprefix("Bearer ").strip() not in self.tokens:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return await self._route(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code, definition=schemas.STATUS)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts in (["version"], ["version", ""]):
            return _json(VERSION)
        if parts in (["healthz"], ["readyz"], ["livez"]):
            return web.Response(text="ok")
        if parts == ["api"]:
            return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if parts == ["apis"]:
            groups = sorted({k.group for k in KINDS.values() if k.group})
            return _json(
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [
                        {
                            "name": g,
                            "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                            "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                        }
                        for g in groups
                    ],
                }
            )
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace: str | None = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:  # /namespaces/NS/RESOURCE[/NAME[/SUB]]
            namespace, rest = rest[1], rest[2:]
        if not rest:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        kind = KINDS.get((group, version, rest[0]))
        if kind is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({'/'.join(parts)})")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in ("status", "log")) or (sub == "log" and kind != PODS):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if kind.namespaced and namespace is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not kind.namespaced and namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        method = request.method
        if name is None:
            if method == "GET":
                return await self._list(request, kind, namespace)
            if method == "POST" and (namespace is not None or not kind.namespaced):
                return await self._create(request, kind, namespace or "")
            if method == "DELETE" and namespace is not None:
                return await self._delete_collection(request, kind, namespace)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {'/'.join(parts)}")
        ns = namespace or ""
        if sub == "log":
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on pods/log")
            return await self._log(request, ns, name)
        if method == "GET":
            return _json(copy.deepcopy(self.store.require(kind, ns, name)))
        if method == "PUT":
            return await self._replace(request, kind, ns, name, sub)
        if method == "PATCH":
            return await self._patch(request, kind, ns, name, sub)
        if method == "DELETE" and sub is None:
            return await self._delete(request, kind, ns, name)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {'/'.join(parts)}")

    # --- create -----------------------------------------------------------------------------

    async def _body(self, request: web.Request, kind: Kind | None, name: str = "") -> Any:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"the request body is not JSON: {exc}") from exc
        return body

    def _checked(self, body: Any, kind: Kind, name: str) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"the request body must be a {kind.kind} object")
        body.setdefault("apiVersion", kind.api_version)
        body.setdefault("kind", kind.kind)
        if body["apiVersion"] != kind.api_version or body["kind"] != kind.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version and kind in the data ({body['apiVersion']}, {body['kind']}) do not match "
                f"the expected ({kind.api_version}, {kind.kind})",
            )
        body.setdefault("metadata", {})
        if problems := schemas.errors(body, schemas.definition_for(kind.group, kind.version, kind.kind)):
            label = (
                (body.get("metadata") or {}).get("name") or name or (body.get("metadata") or {}).get("generateName", "")
            )
            raise invalid(kind, str(label), problems)
        return body

    async def _create(self, request: web.Request, kind: Kind, namespace: str) -> web.StreamResponse:
        body = self._checked(await self._body(request, kind), kind, "")
        meta = body["metadata"]
        if kind.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
            ns = self.store.get(NAMESPACES, "", namespace)
            if ns is None:
                raise not_found(NAMESPACES, namespace)
            if ns["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f"{kind.qualified} is forbidden: unable to create new content in namespace {namespace} "
                    "because it is being terminated",
                    kind=kind,
                )
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = generated_name(meta["generateName"])
            else:
                raise invalid(kind, "", [("metadata.name", "Required value: name or generateName is required")])
        if problem := name_problem(meta["name"], label=kind in (NAMESPACES,)):
            raise invalid(kind, meta["name"], [("metadata.name", problem)])
        for drop in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp", "generation", "managedFields"):
            meta.pop(drop, None)
        meta["uid"] = str(uuid.uuid4())
        self._prepare(kind, body)
        self._mutating_admission(kind, body)
        if kind == PODS:
            place(body, self.controllers.node)
        created = self.store.create(kind, body)
        if kind == PODS:
            self._admit(created)
        if kind == NETWORK_POLICIES and self.kubelet is not None:
            self._spawn(self.kubelet.network_changed(namespace))
        return _json(created, 201)

    def _prepare(self, kind: Kind, body: Obj) -> None:
        """Defaulting and the validation the schema cannot express, per kind (as the API server)."""
        meta, name = body["metadata"], body["metadata"]["name"]
        if kind == NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            body["spec"] = {"finalizers": ["kubernetes"]}
            body["status"] = {"phase": "Active"}
        elif kind == PODS:
            spec = body["spec"]
            podspec.default_pod_spec(spec)
            if problems := podspec.gate_problems(spec, "spec"):
                raise invalid(kind, name, problems)
            self._enforceable(kind, name, spec, "spec")
            body["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif kind == JOBS:
            self._prepare_job(body)
        elif kind == DEPLOYMENTS:
            spec = body["spec"]
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
            )
            podspec.default_pod_spec(spec["template"].setdefault("spec", {"containers": []}))
            body["status"] = {}
        elif kind == NETWORK_POLICIES:
            self._deny_all_only(body)

    def _enforceable(self, kind: Kind, name: str, spec: dict[str, Any], path: str) -> None:
        if self.kubelet is None or (spec.get("nodeName") not in (None, NODE_NAME)):
            return
        if problems := podspec.unenforceable(spec, path):
            raise invalid(kind, name, problems, reason="FieldValueNotSupported")

    def _prepare_job(self, body: Obj) -> None:
        meta, spec = body["metadata"], body["spec"]
        name = meta["name"]
        template_spec = spec["template"].setdefault("spec", {"containers": []})
        problems = []
        if template_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            problems.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Required value: valid values: "OnFailure", "Never" (got {template_spec.get("restartPolicy")!r})',
                )
            )
        for key in ("completions", "parallelism"):
            if spec.get(key) not in (None, 1):
                problems.append(
                    (f"spec.{key}", "Forbidden: the kubeapi stand-in's Job controller runs one pod at a time (1)")
                )
        for key in ("podFailurePolicy", "successPolicy", "backoffLimitPerIndex", "maxFailedIndexes", "managedBy"):
            if spec.get(key) is not None:
                problems.append(
                    (f"spec.{key}", "Forbidden: the kubeapi stand-in's Job controller does not implement this field")
                )
        if spec.get("completionMode") not in (None, "NonIndexed"):
            problems.append(
                ("spec.completionMode", "Forbidden: only NonIndexed is implemented by the kubeapi stand-in")
            )
        if spec.get("manualSelector") or spec.get("selector"):
            problems.append(
                ("spec.selector", "Forbidden: the selector is generated (manualSelector is not implemented)")
            )
        if problems:
            raise invalid(JOBS, name, problems)
        uid = meta["uid"]
        spec.update(completions=1, parallelism=1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        meta.setdefault("labels", {}).update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        podspec.default_pod_spec(template_spec)
        if problems := podspec.gate_problems(template_spec, "spec.template.spec"):
            raise invalid(JOBS, name, problems)
        template_spec.setdefault("nodeName", None)
        if template_spec.get("nodeName") is None:
            template_spec.pop("nodeName")
        self._enforceable(JOBS, name, template_spec, "spec.template.spec")
        body["status"] = {}

    def _deny_all_only(self, body: Obj) -> None:
        spec = body["spec"]
        problems = []
        for key in ("ingress", "egress"):
            if spec.get(key):
                problems.append(
                    (
                        f"spec.{key}",
                        "Forbidden: the kubeapi stand-in enforces only deny-all policies (no rules); "
                        "allow rules cannot be enforced on its engine",
                    )
                )
        types = set(spec.get("policyTypes") or ["Ingress"])
        if types != {"Ingress", "Egress"}:
            problems.append(
                (
                    "spec.policyTypes",
                    f"Unsupported value: {sorted(types)}: the kubeapi stand-in enforces only policies isolating both "
                    'Ingress and Egress (a pod without network); set policyTypes: ["Ingress", "Egress"]',
                )
            )
        if problems:
            raise invalid(NETWORK_POLICIES, body["metadata"]["name"], problems, reason="FieldValueNotSupported")

    # --- list and watch ---------------------------------------------------------------------

    async def _list(self, request: web.Request, kind: Kind, namespace: str | None) -> web.StreamResponse:
        query = request.query
        flt = Filter(
            namespace,
            tuple(parse_selector(query.get("labelSelector"))),
            tuple(parse_field_selector(query.get("fieldSelector"))),
        )
        if query.get("watch") in ("true", "1", "True"):
            return await self._watch(request, kind, flt)
        listing: dict[str, Any] = {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": [],
        }
        _validate(listing, schemas.definition_for(kind.group, kind.version, f"{kind.kind}List"))
        listing["items"] = [copy.deepcopy(o) for o in self.store.items(kind, flt)]
        return _json(listing)

    async def _watch(self, request: web.Request, kind: Kind, flt: Filter) -> web.StreamResponse:
        query = request.query
        raw_rv = query.get("resourceVersion")
        since: int | None = None
        if raw_rv not in (None, "", "0"):
            try:
                since = int(str(raw_rv))
            except ValueError as exc:
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {raw_rv!r}") from exc
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1", "True")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            watcher = self.store.watch(kind, flt, since)
        except ApiError as exc:
            status = exc.status()
            _validate(status, schemas.STATUS)
            await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            return response
        loop = asyncio.get_running_loop()
        ends = loop.time() + timeout if timeout else None
        try:
            while True:
                wait = self.bookmark_interval if bookmarks else 30.0
                if ends is not None:
                    wait = min(wait, ends - loop.time())
                    if wait <= 0:
                        break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and (ends is None or loop.time() < ends):
                        mark = {
                            "kind": kind.kind,
                            "apiVersion": kind.api_version,
                            "metadata": {"resourceVersion": str(self.store.rv)},
                        }
                        await response.write(json.dumps({"type": "BOOKMARK", "object": mark}).encode() + b"\n")
                    continue
                if event is None:
                    break
                await response.write(json.dumps({"type": event.type, "object": event.obj}).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(watcher)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    # --- update -----------------------------------------------------------------------------

    async def _replace(
        self, request: web.Request, kind: Kind, ns: str, name: str, sub: str | None
    ) -> web.StreamResponse:
        body = self._checked(await self._body(request, kind, name), kind, name)
        return _json(self._apply(kind, ns, name, sub, body))

    async def _patch(self, request: web.Request, kind: Kind, ns: str, name: str, sub: str | None) -> web.StreamResponse:
        patch = await self._body(request, kind, name)
        # Read only now, with nothing awaited until it is stored: a JSON patch's test applies to what is replaced.
        current = copy.deepcopy(self.store.require(kind, ns, name))
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(
                    400,
                    "BadRequest",
                    "a JSON patch (application/json-patch+json) must be a list of operations; send an object as "
                    "application/merge-patch+json or application/strategic-merge-patch+json",
                )
            merged = _json_patch(current, patch)
        elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", f"a {content_type} body must be a JSON object")
            merged = _merge_patch(current, patch)
        else:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
            )
        expect = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        if not expect:
            merged["metadata"].pop("resourceVersion", None)
        body = self._checked(merged, kind, name)
        return _json(self._apply(kind, ns, name, sub, body))

    def _apply(self, kind: Kind, ns: str, name: str, sub: str | None, body: Obj) -> Obj:
        current = self.store.require(kind, ns, name)
        meta = body["metadata"]
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        if kind.namespaced and meta.get("namespace", ns) != ns:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        if meta.get("uid") not in (None, current["metadata"]["uid"]):
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {meta.get('uid')}, "
                f"UID in object meta: {current['metadata']['uid']}",
                kind=kind,
                name=name,
            )
        updated = copy.deepcopy(current)
        if sub == "status":
            updated["status"] = body.get("status") or {}
        else:
            for key in ("labels", "annotations", "finalizers", "ownerReferences"):
                if meta.get(key) is None:
                    updated["metadata"].pop(key, None)
                else:
                    updated["metadata"][key] = meta[key]
            if kind != NAMESPACES and "spec" in body:
                new_spec = copy.deepcopy(body["spec"])
                self._check_spec_update(kind, name, current, new_spec)
                if new_spec != current.get("spec"):
                    updated["spec"] = new_spec
                    if kind.generation:
                        updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        result = self.store.update(kind, updated, expect_rv=meta.get("resourceVersion"))
        if kind == PODS and podspec.gates(current["spec"]) and not podspec.gates(result["spec"]):
            asyncio.get_running_loop().call_soon(self._schedule, ns, name, result["metadata"]["uid"])
        if kind == NETWORK_POLICIES and self.kubelet is not None:  # a changed selector may isolate running pods
            self._spawn(self.kubelet.network_changed(ns))
        if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            self.store.remove(kind, ns, name)
        return result

    def _check_spec_update(self, kind: Kind, name: str, current: Obj, spec: dict[str, Any]) -> None:
        if kind == PODS:
            podspec.default_pod_spec(spec)
            if current["spec"].get("nodeName"):
                spec.setdefault("nodeName", current["spec"]["nodeName"])
            if problems := podspec.added_gate_problems(current["spec"], spec, "spec"):
                raise invalid(PODS, name, problems)
            if not podspec.gates(spec):
                spec.pop("schedulingGates", None)
            others = [{k: v for k, v in s.items() if k != "schedulingGates"} for s in (spec, current["spec"])]
            if others[0] != others[1]:
                raise invalid(
                    PODS,
                    name,
                    [
                        (
                            "spec",
                            "Forbidden: pod updates may not change fields other than image, "
                            "activeDeadlineSeconds, tolerations or schedulingGates (removal) "
                            "(the stand-in allows only the removal of scheduling gates)",
                        )
                    ],
                )
        elif kind == JOBS:
            podspec.default_pod_spec(spec.get("template", {}).get("spec", {}))
            for key in ("template", "selector", "completions", "completionMode"):
                if key in spec and spec[key] != current["spec"].get(key):
                    raise invalid(JOBS, name, [(f"spec.{key}", "Invalid value: field is immutable")])
            for key in (
                "template",
                "selector",
                "completions",
                "parallelism",
                "completionMode",
                "backoffLimit",
                "suspend",
                "podReplacementPolicy",
            ):
                spec.setdefault(key, current["spec"].get(key))
        elif kind == DEPLOYMENTS:
            podspec.default_pod_spec(spec.get("template", {}).setdefault("spec", {"containers": []}))
            for key in ("replicas", "revisionHistoryLimit", "progressDeadlineSeconds", "strategy"):
                spec.setdefault(key, current["spec"].get(key))
        elif kind == NETWORK_POLICIES:
            self._deny_all_only({"metadata": {"name": name}, "spec": spec})

    # --- delete -----------------------------------------------------------------------------

    async def _delete(self, request: web.Request, kind: Kind, ns: str, name: str) -> web.StreamResponse:
        options = await self._body(request, None) or {}
        if not isinstance(options, dict):
            raise ApiError(400, "BadRequest", "DeleteOptions must be a JSON object")
        if options:
            options.setdefault("kind", "DeleteOptions")
            options.setdefault("apiVersion", "v1")
            if problems := schemas.errors(options, schemas.DELETE_OPTIONS):
                raise ApiError(422, "Invalid", f"invalid DeleteOptions: {problems}")
        policy = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if options.get("orphanDependents") is not None and policy is None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise invalid(
                kind,
                name,
                [
                    (
                        "propagationPolicy",
                        f'Unsupported value: {policy!r}: supported values: "Foreground", "Background", "Orphan"',
                    )
                ],
            )
        grace = request.query.get("gracePeriodSeconds") or options.get("gracePeriodSeconds")
        code, result = await self.delete_object(
            kind,
            ns,
            name,
            policy,
            grace=int(grace) if grace is not None else None,
            preconditions=options.get("preconditions"),
        )
        return _json(result, code, definition=schemas.STATUS if result.get("kind") == "Status" else None)

    async def _delete_collection(self, request: web.Request, kind: Kind, ns: str) -> web.StreamResponse:
        flt = Filter(
            ns,
            tuple(parse_selector(request.query.get("labelSelector"))),
            tuple(parse_field_selector(request.query.get("fieldSelector"))),
        )
        policy = request.query.get("propagationPolicy")
        options = await self._body(request, None) or {}
        policy = policy or (options.get("propagationPolicy") if isinstance(options, dict) else None)
        items = self.store.items(kind, flt)
        for obj in items:
            with contextlib.suppress(ApiError):
                await self.delete_object(kind, ns, obj["metadata"]["name"], policy)
        listing: dict[str, Any] = {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": [],
        }
        listing["items"] = [copy.deepcopy(o) for o in items]
        return _json(listing)

    async def _delete_quietly(self, kind: Kind, ns: str, name: str, policy: str | None) -> None:
        with contextlib.suppress(ApiError):
            await self.delete_object(kind, ns, name, policy)

    async def delete_object(
        self,
        kind: Kind,
        ns: str,
        name: str,
        policy: str | None,
        *,
        grace: int | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> tuple[int, Obj]:
        obj = self.store.require(kind, ns, name)
        meta = obj["metadata"]
        for key in ("uid", "resourceVersion"):
            wanted = (preconditions or {}).get(key)
            if wanted and wanted != meta[key]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {key} in precondition: {wanted}, {key} in object meta: {meta[key]}",
                    kind=kind,
                    name=name,
                )
        if kind == PODS and self.kubelet is not None and bound_here(obj):
            if meta.get("deletionTimestamp"):
                return 200, copy.deepcopy(obj)

            def mark(pod: Obj) -> None:
                pod["metadata"]["deletionTimestamp"] = now()
                pod["metadata"]["deletionGracePeriodSeconds"] = (
                    grace if grace is not None else pod["spec"].get("terminationGracePeriodSeconds", 30)
                )

            marked = self.store.mutate(PODS, ns, name, mark)
            assert marked is not None
            self._spawn(self.kubelet.terminate(marked))
            return 200, marked
        if meta.get("deletionTimestamp"):
            return 202, copy.deepcopy(obj)
        if kind == NAMESPACES:
            if name in ("default", "kube-system", "kube-public"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    kind=kind,
                    name=name,
                )

            def terminating(ns_obj: Obj) -> None:
                ns_obj["metadata"]["deletionTimestamp"] = now()
                ns_obj["status"] = {"phase": "Terminating"}

            marked = self.store.mutate(NAMESPACES, "", name, terminating)
            assert marked is not None
            asyncio.get_running_loop().call_soon(self.controllers.namespace_check, name)
            return 200, marked
        policy = policy or ("Orphan" if kind == JOBS else "Background")  # batch/v1 Jobs orphan by default
        if policy == "Foreground":

            def foreground(owner: Obj) -> None:
                owner["metadata"]["deletionTimestamp"] = now()
                owner["metadata"]["deletionGracePeriodSeconds"] = 0
                owner["metadata"]["finalizers"] = [*(owner["metadata"].get("finalizers") or ()), FOREGROUND]

            marked = self.store.mutate(kind, ns, name, foreground)
            assert marked is not None
            return 202, marked
        if policy == "Orphan":
            for dep_kind, dependent in list(self.store.dependents(meta["uid"])):
                dmeta = dependent["metadata"]

                def orphan(d: Obj, uid: str = meta["uid"]) -> None:
                    refs = [r for r in d["metadata"].get("ownerReferences") or () if r["uid"] != uid]
                    if refs:
                        d["metadata"]["ownerReferences"] = refs
                    else:
                        d["metadata"].pop("ownerReferences", None)

                self.store.mutate(dep_kind, dmeta.get("namespace", ""), dmeta["name"], orphan)
        if meta.get("finalizers"):

            def pending(o: Obj) -> None:
                o["metadata"]["deletionTimestamp"] = now()
                o["metadata"]["deletionGracePeriodSeconds"] = 0

            marked = self.store.mutate(kind, ns, name, pending)
            assert marked is not None
            return 202, marked
        removed = self.store.remove(kind, ns, name)
        assert removed is not None
        return 200, (removed if kind == PODS else success_status(kind, removed))

    # --- logs -------------------------------------------------------------------------------

    async def _log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        pod = copy.deepcopy(self.store.require(PODS, ns, name))
        query = request.query
        inits = [c["name"] for c in pod["spec"].get("initContainers") or ()]
        mains = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container")
        if not container:
            if len(mains) != 1:
                extra = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(mains)}]{extra}",
                )
            container = mains[0]
        if container not in inits + mains:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if query.get("previous") in ("true", "1"):
            raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found')
        cid = self.kubelet.container_id(pod, container) if self.kubelet is not None else None
        if cid is None:
            statuses = (pod.get("status") or {}).get("initContainerStatuses", []) + (pod.get("status") or {}).get(
                "containerStatuses", []
            )
            waiting = next(
                (s["state"].get("waiting", {}).get("reason") for s in statuses if s["name"] == container), None
            )
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: {waiting or "ContainerCreating"}',
            )
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        since = int(query["sinceSeconds"]) if query.get("sinceSeconds") else None
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None
        timestamps = query.get("timestamps") in ("true", "1")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        assert self.kubelet is not None
        follow = query.get("follow") in ("true", "1")
        chunks = self.kubelet.log_chunks(cid, tail=tail, timestamps=timestamps, since=since, follow=follow)
        sent = 0
        async for chunk in _in_thread(chunks):
            if limit is not None:
                chunk = chunk[: max(limit - sent, 0)]
            if chunk:
                await response.write(chunk)
                sent += len(chunk)
            if limit is not None and sent >= limit:
                break
        await response.write_eof()
        return response


# --- helpers -------------------------------------------------------------------------------------


def _namespace(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _validate(document: Any, definition: str) -> None:
    if problems := schemas.errors(document, definition):
        raise ApiError(
            500, "InternalError", f"kubeapi stand-in bug: a response would not conform to {definition}: {problems}"
        )


def _json(document: Any, status: int = 200, *, definition: str | None = None) -> web.Response:
    if definition is not None:
        _validate(document, definition)
    return web.Response(body=json.dumps(document).encode(), status=status, content_type="application/json")


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patches are applied the same way: lists are replaced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _json_patch(document: Any, operations: list[Any]) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    doc = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise ApiError(400, "BadRequest", f"invalid JSON patch operation: {op!r}")
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        parent = doc
        try:
            for token in tokens[:-1]:
                parent = parent[int(token)] if isinstance(parent, list) else parent[token]
            last = tokens[-1] if tokens else ""
            if op["op"] == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent[last]
                if current != op.get("value"):
                    raise ApiError(422, "Invalid", f"JSON patch test failed at {op['path']}")
            elif op["op"] == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif op["op"] in ("add", "replace"):
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif op["op"] == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if op["op"] == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            else:
                raise ApiError(400, "BadRequest", f"unsupported JSON patch operation {op['op']!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"JSON patch cannot be applied at {op['path']}: {exc!r}") from exc
    return doc


async def _in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Iterate a blocking iterator on a thread, a bounded queue in between (big logs never pile up).

    When the consumer stops early (limitBytes, a client gone) the thread is told to stop and the
    iterator is closed, so no reader is left blocked on a full queue.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=16)
    stopped = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def pump() -> None:
        try:
            buffer = b""
            for chunk in chunks:
                if stopped.is_set():
                    return
                buffer += chunk
                if len(buffer) >= LOG_CHUNK:
                    put(buffer)
                    buffer = b""
            if buffer:
                put(buffer)
            put(None)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    threading.Thread(target=pump, name="kubeapi-log", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise ApiError(500, "InternalError", f"reading the container's log failed: {item}")
            yield item
    finally:
        stopped.set()
        while not queue.empty():  # unblock a put in flight; the pump then sees ``stopped``
            queue.get_nowait()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _call(fn: Any) -> Any:
    return fn()


def write_kubeconfig(path: Path, server: str, token: str, *, namespace: str = "default") -> Path:
    """A kubeconfig for ``server`` with a bearer-token user, as the official client reads it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubeapi", "cluster": {"server": server}}],
        "users": [{"name": "kubeapi", "user": {"token": token}}],
        "contexts": [{"name": "kubeapi", "context": {"cluster": "kubeapi", "user": "kubeapi", "namespace": namespace}}],
        "current-context": "kubeapi",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def running_in_thread(**kwargs: Any) -> Iterator[KubeAPI]:
    """A KubeAPI serving from its own thread and event loop (for callers of the blocking client)."""
    ready: dict[str, Any] = {}
    started = threading.Event()
    loop = asyncio.new_event_loop()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["api"] = loop.run_until_complete(KubeAPI(**kwargs).start())
        except BaseException as exc:
            ready["error"] = exc
        started.set()
        if "api" in ready:
            loop.run_forever()

    thread = threading.Thread(target=serve, name="kubeapi", daemon=True)
    thread.start()
    started.wait(60)
    if "error" in ready:
        raise ready["error"]
    api: KubeAPI = ready["api"]
    try:
        yield api
    finally:
        asyncio.run_coroutine_threadsafe(api.stop(), loop).result(120)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
