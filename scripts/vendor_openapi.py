"""Vendor a pruned copy of GitHub's OpenAPI descriptions for the devhub simulator.

Reads the full descriptions (from the `@octokit/openapi` and `@octokit/openapi-webhooks` npm packages)
and keeps only the operations and webhook schemas devhub implements, plus every `$ref` they reach, so
the project never needs the 17 MB originals at run time.

    python scripts/vendor_openapi.py [SOURCE_DIR] [TARGET_DIR]
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SOURCE = Path("/work/shared/github")
TARGET = Path(__file__).resolve().parent.parent / "devkit" / "devhub" / "openapi"


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


REST_OPERATIONS = words(
    """
    apps/get-authenticated apps/create-installation-access-token apps/get-installation
    apps/list-installations apps/get-repo-installation apps/list-repos-accessible-to-installation
    repos/get
    pulls/get pulls/list pulls/create pulls/update pulls/merge pulls/list-files pulls/list-reviews pulls/create-review
    issues/get issues/create-comment issues/list-comments issues/get-comment issues/update-comment
    issues/delete-comment reactions/create-for-issue-comment
    checks/create checks/update checks/get checks/list-for-ref
    repos/create-commit-status repos/get-combined-status-for-ref repos/list-commit-statuses-for-ref
    repos/get-collaborator-permission-level teams/get-membership-for-user-in-org
    git/get-ref git/create-ref git/update-ref repos/get-content
    repos/create-deployment repos/list-deployments repos/create-deployment-status
    repos/list-deployment-statuses
    users/get-authenticated repos/list-for-authenticated-user orgs/list-for-authenticated-user
    """
)
# Error bodies devhub sends for statuses GitHub's description does not list on every operation.
EXTRA_SCHEMAS = ("basic-error", "validation-error", "validation-error-simple")

WEBHOOKS = words(
    """
    ping push installation-created installation-repositories-added
    pull-request-opened pull-request-synchronize pull-request-edited pull-request-closed pull-request-review-submitted
    issue-comment-created issue-comment-edited issue-comment-deleted
    """
)


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def lookup(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def closure(doc: dict[str, Any], roots: list[Any]) -> dict[str, Any]:
    """Return the `components` section holding every local `$ref` reachable from roots."""
    components: dict[str, dict[str, Any]] = {}
    pending = [ref for root in roots for ref in refs_in(root)]
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        if not ref.startswith("#/components/"):
            raise ValueError(f"unsupported $ref {ref!r}: only local component refs are vendored")
        _, _, kind, name = ref.split("/", 3)
        target = lookup(doc, ref)
        components.setdefault(kind, {})[name] = target
        pending.extend(refs_in(target))
    return {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())}


def prune_rest(doc: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, item in doc["paths"].items():
        kept = {
            method: op
            for method, op in item.items()
            if isinstance(op, dict) and op.get("operationId") in REST_OPERATIONS
        }
        if kept:
            shared = {k: v for k, v in item.items() if k == "parameters"}
            paths[path] = {**shared, **kept}
    found = {op["operationId"] for item in paths.values() for op in item.values() if isinstance(op, dict)}
    if missing := REST_OPERATIONS - found:
        raise SystemExit(f"operations missing from the REST description: {sorted(missing)}")
    extras = [{"$ref": f"#/components/schemas/{name}"} for name in EXTRA_SCHEMAS]
    return {
        "openapi": doc["openapi"],
        "info": doc["info"],
        "servers": doc["servers"],
        "paths": paths,
        "components": closure(doc, [paths, extras]),
    }


def prune_webhooks(doc: dict[str, Any]) -> dict[str, Any]:
    hooks = {name: item for name, item in doc["webhooks"].items() if name in WEBHOOKS}
    if missing := WEBHOOKS - hooks.keys():
        raise SystemExit(f"webhooks missing from the webhooks description: {sorted(missing)}")
    return {
        "openapi": doc["openapi"],
        "info": doc["info"],
        "webhooks": hooks,
        "components": closure(doc, [hooks]),
    }


def write(target: Path, name: str, doc: dict[str, Any]) -> None:
    # Pruned, the descriptions are small enough to vendor as reviewable, diffable plain JSON.
    data = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    (target / f"{name}.json").write_text(data)
    print(f"{name}.json: {len(data) / 1e6:.2f} MB")


def main(argv: list[str]) -> None:
    source = Path(argv[1]) if len(argv) > 1 else SOURCE
    target = Path(argv[2]) if len(argv) > 2 else TARGET
    target.mkdir(parents=True, exist_ok=True)
    write(target, "rest", prune_rest(json.loads((source / "rest-api.github.com.json").read_text())))
    hooks = json.loads((source / "webhooks-api.github.com.json").read_text())
    write(target, "webhooks", prune_webhooks(hooks))
    for licence in ("LICENSE-octokit-openapi", "LICENSE-octokit-openapi-webhooks"):
        shutil.copyfile(source / licence, target / licence)


if __name__ == "__main__":
    main(sys.argv)
