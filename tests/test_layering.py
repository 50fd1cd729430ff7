"""The shape of the code, enforced: who may import whom, no cycles, and a product wheel without the dev kit.

The import graph is read from the source (every ``import``, function-level ones included, except those
under ``if TYPE_CHECKING:``), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "contract", "pipelines", "model_server", "devkit")
# The feature slices: each may import the foundation and the features listed for it, nothing else.
FEATURES = ("chatops", "review", "deploy", "guard", "artifacts", "ui", "notify")
FOUNDATION = {
    "bot.context",
    "bot.store",
    "bot.github",
    "bot.config",
    "bot.settings",
    "bot.errors",
    "bot.logs",
    "bot.metrics",
    "bot.sandbox",
    "bot.worker",
    "contract",
}
# Declared links between features (importer -> imported), each for a reason:
LINKS = {
    "chatops": {"review"},  # `/modelship evaluate` enqueues a review
    # whether a PR may run at all is chat-ops' trust decision (ok-to-test); a kept variant is published
    "review": {"chatops", "artifacts"},
    # its commands are chat-ops commands; a merged rollback PR ends an incident; it pins published artifacts
    "deploy": {"chatops", "guard", "artifacts"},
    "guard": {"chatops", "deploy"},  # rollback is a command; it writes values through the deploy repository
    # the dashboard's retry/cancel go through chat-ops' authorization and audit; incidents are the guard's table
    "ui": {"chatops", "guard", "review"},  # the PR page formats the review with the PR comment's functions
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path) -> set[str]:
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` depends on pkg.sub (a module) — on pkg itself only for its names
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in KNOWN else base for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


KNOWN = set(modules())


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for target in imports_of(name, path):
            # the module itself, or the package a `from pkg import name` names
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges[name].add(target)
    return edges


def test_no_import_cycles() -> None:
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in edges.get(node, ()):
            if succ not in index:
                strongconnect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(modules()):
        if node not in index:
            strongconnect(node)
    assert cycles == []


def _top(name: str) -> str:
    return name.split(".")[0]


def _feature(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "bot" and parts[1] in FEATURES else None


def test_nothing_in_the_product_imports_the_dev_kit_and_the_sandbox_side_imports_no_bot() -> None:
    offenders = sorted(
        f"{src} -> {dst}"
        for src, targets in graph().items()
        for dst in targets
        if (_top(src) in {"bot", "contract", "pipelines", "model_server"} and _top(dst) == "devkit")
        or (_top(src) in {"pipelines", "model_server", "contract"} and _top(dst) == "bot")
    )
    assert offenders == []


def test_features_import_only_the_foundation_and_their_declared_links() -> None:
    offenders = []
    for src, targets in graph().items():
        feature = _feature(src)
        if feature is None or src.endswith(".cli"):  # a feature's CLI is an entry point: it may ask the root
            continue
        for dst in targets:
            if _top(dst) != "bot" or _feature(dst) == feature:
                continue
            other = _feature(dst)
            if other is not None and other in LINKS.get(feature, set()):
                continue
            if any(dst == f or dst.startswith(f + ".") for f in FOUNDATION):
                continue
            offenders.append(f"{src} -> {dst}")
    assert sorted(offenders) == []


def test_the_foundation_imports_no_feature_and_no_root() -> None:
    offenders = sorted(
        f"{src} -> {dst}"
        for src, targets in graph().items()
        if any(src == f or src.startswith(f + ".") for f in FOUNDATION)
        for dst in targets
        if _feature(dst) is not None or dst in {"bot.app", "bot.cli", "bot.handlers"}
    )
    assert offenders == []
