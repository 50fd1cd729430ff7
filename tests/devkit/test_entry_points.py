"""The dev kit's own entry point (`python -m devkit`), and `modelship demo|devhub`, which forward to it
from a checkout and say what to run where the dev kit is absent (the installed product)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_python_m_devkit_offers_the_demo_and_devhub() -> None:
    done = run("-m", "devkit", "--help")

    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout and "devhub" in done.stdout


def test_modelship_demo_forwards_to_the_dev_kit_with_its_options() -> None:
    done = run("-m", "bot.cli", "demo", "--help")

    assert done.returncode == 0, done.stderr
    assert "python -m devkit demo" in done.stdout and "--workdir" in done.stdout


def test_modelship_devhub_forwards_and_serves_until_stopped(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bot.cli", "devhub", "--port", "0", "--data-dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            base_url = banner.split(" listening on ")[1].split()[0]
            with urllib.request.urlopen(f"{base_url}/_devhub/violations", timeout=10) as response:
                assert json.load(response) == []
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_without_the_dev_kit_modelship_demo_says_what_to_run(tmp_path: Path) -> None:
    """The installed product: `bot` importable, `devkit` nowhere (neither installed nor in the directory)."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (site / "bot").symlink_to(ROOT / "bot")
    env = {**os.environ, "PYTHONPATH": str(site)}

    done = run("-m", "bot.cli", "demo", cwd=elsewhere, env=env)

    assert done.returncode == 2
    assert "part of the dev kit" in done.stderr and "python -m devkit demo" in done.stderr
