"""`python -m devkit devhub` (and `modelship devhub`, which forwards there) command-line entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from devkit.devhub.cli import devhub

ROOT = Path(__file__).resolve().parents[3]


def test_help_names_every_option() -> None:
    result = CliRunner().invoke(devhub, ["--help"])

    assert result.exit_code == 0
    for option in ("--host", "--port", "--data-dir", "--webhook-url", "--webhook-secret"):
        assert option in result.output


def test_webhook_url_without_a_secret_is_refused() -> None:
    result = CliRunner().invoke(devhub, ["--webhook-url", "http://127.0.0.1:1/hook"], env={"DEVHUB_WEBHOOK_SECRET": ""})

    assert result.exit_code == 2
    assert "--webhook-secret is required" in result.output


def test_serves_until_stopped(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        "from devkit.devhub.cli import devhub; devhub()",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            base_url = banner.split(" listening on ")[1].split()[0]
            with urllib.request.urlopen(f"{base_url}/_devhub/violations", timeout=10) as response:
                violations = json.load(response)
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert violations == []
