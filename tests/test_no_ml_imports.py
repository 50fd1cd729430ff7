"""The service process never imports the ML stack: models and data are only ever touched in the sandbox.

Two views: the source of bot/ never names an ML library (function-level imports included), and a
real service process that just reviewed a model PR end to end has none of them in `sys.modules`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What loads, converts or unpickles a model or reads a dataset: sandbox-only (pipelines/).
FORBIDDEN = ("onnxruntime", "onnx", "sklearn", "skl2onnx", "skops", "pandas", "joblib", "pipelines")


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_of_the_service_imports_the_ml_stack_even_lazily() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & set(FORBIDDEN))
        for path in sorted((ROOT / "bot").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_contract_the_service_shares_with_the_sandbox_is_stdlib_only() -> None:
    # bot and pipelines both import contract/: anything it imported would land in the service process.
    imported = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) - set(sys.stdlib_module_names) - {"contract"})
        for path in sorted((ROOT / "contract").rglob("*.py"))
    }
    assert imported and {path: names for path, names in imported.items() if names} == {}
    uses = {root for path in (ROOT / "bot").rglob("*.py") for root in imported_roots(path)}
    assert "contract" in uses  # the bot reads the sandbox's documents through it


def test_the_sandbox_and_the_model_server_import_no_bot() -> None:
    offenders = {
        str(path.relative_to(ROOT)): "bot"
        for package in ("pipelines", "model_server")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "bot" in imported_roots(path)
    }
    assert offenders == {}


# Runs in a fresh interpreter: the test process itself imports scikit-learn to check numbers.
REVIEW_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import asyncio, importlib, json, pkgutil, sys, tempfile
    from pathlib import Path

    import bot
    from devkit.devhub import start
    from devkit.harness import WEBHOOK_SECRET, bot_running, shared_key

    FORBIDDEN, PODMAN, IMAGE = json.loads(sys.argv[1])
    SAMPLE = Path("examples/sample-model-repo")
    REPO = "acme/churn-model"


    async def review(tmp: Path) -> str:
        devhub = await start(tmp / "devhub", webhook_secret=WEBHOOK_SECRET, keygen=shared_key)
        try:
            async with bot_running(
                devhub, tmp, container_engine_url=PODMAN, sandbox_mount_runtime=True, sandbox_image=IMAGE
            ) as running:
                hub = devhub.hub
                config = (SAMPLE / ".modelship.yml").read_text()
                config = config.replace("optimize: {onnx: true", "optimize: {onnx: false")
                files = {p: (SAMPLE / p).read_bytes() for p in ("models/churn.skops", "data/eval.csv")}
                await hub.create_repo(REPO, {".modelship.yml": config.encode(), **files})
                await hub.install("acme", [REPO])
                hub.set_permission(REPO, "alice", "write")
                await hub.push(REPO, "more-data", {"data/notes.csv": b"a,label\\n1,0\\n"})
                number = await hub.open_pr(REPO, "more-data")
                await running.idle(timeout=400)
                return next(c.body for c in hub.comments.values() if c.issue_number == number)
        finally:
            await devhub.stop()


    with tempfile.TemporaryDirectory() as tmp:
        body = asyncio.run(review(Path(tmp)))
    # Every module of the service, lazy feature modules included, is importable without the ML stack.
    for module in pkgutil.walk_packages(bot.__path__, "bot."):
        if not module.name.endswith("__main__"):  # entry points run their CLI on import
            importlib.import_module(module.name)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    print(json.dumps({"loaded": loaded, "comment": body}))
    """
)


@pytest.mark.slow
def test_a_service_that_reviewed_a_model_pr_never_imported_the_ml_stack(podman_url: str, runner_image: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", REVIEW_IN_A_FRESH_PROCESS, json.dumps([FORBIDDEN, podman_url, runner_image])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "| accuracy ↑ |" in report["comment"], report["comment"]  # the review really ran
    assert report["loaded"] == []
