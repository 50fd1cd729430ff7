"""The demo's helper processes: a real Prometheus starts, takes targets at run time and stops."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from devkit.processes import Process, ProcessError, Prometheus, free_port


def test_prometheus_starts_scrapes_an_added_target_and_stops(tmp_path: Path) -> None:
    prometheus = Prometheus(tmp_path)
    prometheus.process.start()
    try:
        prometheus.add_target(f"127.0.0.1:{prometheus.port}")  # Prometheus scrapes its own /metrics
        [target_file] = prometheus.targets.glob("*.json")
        assert json.loads(target_file.read_text())[0]["targets"] == [f"127.0.0.1:{prometheus.port}"]
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/status/config", timeout=5) as response:
            assert "file_sd_configs" in json.load(response)["data"]["yaml"]
    finally:
        prometheus.process.stop()
    assert prometheus.process.popen is not None and prometheus.process.popen.poll() is not None


def test_a_process_that_exits_at_once_is_reported_with_its_log(tmp_path: Path) -> None:
    failing = Process(
        "broken server",
        [sys.executable, "-c", "import sys; print('no model here'); sys.exit(3)"],
        tmp_path / "broken.log",
        f"http://127.0.0.1:{free_port()}/",
    )
    with pytest.raises(ProcessError, match="broken server exited with 3: no model here"):
        failing.start(timeout=20)
