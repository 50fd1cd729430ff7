"""The product wheel holds the bot and what ships with it, never the dev kit: no devhub, no demo, no
GitHub OpenAPI descriptions, no tests or benchmarks. The wheel is built from a copy of the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", ".modelship", "build", "dist", "*.egg-info", "__pycache__")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [wheel] = tmp.glob("modelship-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_the_bot_and_the_pipelines(wheel_names: list[str]) -> None:
    tops = {name.split("/")[0] for name in wheel_names if not name.startswith("modelship-")}

    assert {"bot", "pipelines"} <= tops
    assert tops <= {"bot", "pipelines", "contract", "model_server"}
    assert "bot/cli.py" in wheel_names and "bot/store/migrations/env.py" in wheel_names
    # the dashboard's templates and its vendored htmx with the licence it ships under
    assert {"bot/ui/templates/base.html", "bot/ui/static/htmx-2.0.4.min.js", "bot/ui/static/LICENSE-htmx.org"} <= set(
        wheel_names
    )


def test_the_wheel_holds_no_dev_kit_and_no_openapi_description(wheel_names: list[str]) -> None:
    assert [n for n in wheel_names if "devhub" in n or n.startswith(("devkit/", "tests/", "bench/"))] == []
    assert [n for n in wheel_names if "openapi" in n.lower() or n.endswith(("rest.json", "webhooks.json"))] == []
    assert [n for n in wheel_names if n.endswith("demo.py") or "demo_processes" in n] == []
