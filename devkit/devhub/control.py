"""`/_devhub/...`: scripted actions and inspection over HTTP, for the demo and out-of-process tests.

`POST /_devhub/actions/{name}` calls the DevHub method of that name with the JSON body as keyword
arguments (file contents as strings, or `{"base64": ...}` for bytes, or null to delete).
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json
from typing import Any

from aiohttp import web

from devkit.devhub.faults import KINDS, Fault
from devkit.devhub.hub import DevHub, DevHubError
from devkit.devhub.model import Repo
from devkit.devhub.webhooks import Delivery

ACTIONS = (
    "create_app",
    "install",
    "create_repo",
    "fork",
    "push",
    "open_pr",
    "close_pr",
    "merge_pr",
    "comment",
    "edit_comment",
    "delete_comment",
    "review",
    "approve",
    "set_permission",
    "add_team_member",
    "ping",
)


def _files(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {path: base64.b64decode(data["base64"]) if isinstance(data, dict) else data for path, data in value.items()}


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "guid": d.guid,
        "event": d.event,
        "action": d.action,
        "headers": d.headers,
        "payload": d.payload,
        "attempts": [{"at": a.at, "status": a.status, "error": a.error} for a in d.attempts],
    }


def _result(value: Any) -> Any:
    if isinstance(value, Repo):
        return {"full_name": value.full_name, "id": value.id}
    if isinstance(value, Delivery):
        return delivery_json(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"message": message}, status=status)


def control_routes(hub: DevHub) -> list[web.RouteDef]:
    async def action(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ACTIONS:
            return _bad(f"unknown action {name!r}; expected one of {', '.join(ACTIONS)}", 404)
        try:
            kwargs = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return _bad("body must be a JSON object of keyword arguments")
        if not isinstance(kwargs, dict):
            return _bad("body must be a JSON object of keyword arguments")
        if "files" in kwargs:
            kwargs["files"] = _files(kwargs["files"])
        method = getattr(hub, name)
        try:
            inspect.signature(method).bind(**kwargs)
        except TypeError as exc:
            return _bad(f"{name}: {exc}")
        try:
            result = method(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except (DevHubError, KeyError) as exc:
            return _bad(f"{name}: {exc}", 422)
        return web.json_response({"result": _result(result)})

    async def deliveries(request: web.Request) -> web.Response:
        return web.json_response([delivery_json(d) for d in hub.deliveries])

    async def redeliver(request: web.Request) -> web.Response:
        try:
            return web.json_response(delivery_json(await hub.redeliver(request.match_info["guid"])))
        except KeyError as exc:
            return _bad(str(exc), 404)

    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "pending": [dataclasses.asdict(f) for f in hub.faults.pending],
                "log": [dataclasses.asdict(r) for r in hub.faults.log],
            }
        )

    async def add_fault(request: web.Request) -> web.Response:
        try:
            data = await request.json()
            fault = hub.add_fault(Fault(**data))
        except (json.JSONDecodeError, TypeError, ValueError) as exc:
            return _bad(f"fault: {exc}; kinds are {', '.join(KINDS)}")
        return web.json_response(dataclasses.asdict(fault), status=201)

    async def clear_faults(request: web.Request) -> web.Response:
        hub.faults.clear()
        return web.Response(status=204)

    async def violations(request: web.Request) -> web.Response:
        return web.json_response(hub.contract_violations)

    async def reset(request: web.Request) -> web.Response:
        hub.reset()
        return web.Response(status=204)

    return [
        web.post("/_devhub/actions/{name}", action),
        web.get("/_devhub/deliveries", deliveries),
        web.post("/_devhub/deliveries/{guid}/redeliver", redeliver),
        web.get("/_devhub/faults", list_faults),
        web.post("/_devhub/faults", add_fault),
        web.delete("/_devhub/faults", clear_faults),
        web.get("/_devhub/violations", violations),
        web.post("/_devhub/reset", reset),
    ]
