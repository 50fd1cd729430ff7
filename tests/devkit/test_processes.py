"""devkit's launchers: a real Prometheus starts, takes and drops targets at run time and stops; a process
that dies at once is reported with its log."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from devkit.processes import Process, ProcessError, Prometheus, free_port


def test_prometheus_starts_scrapes_an_added_target_and_stops(tmp_path: Path) -> None:
    prometheus = Prometheus(tmp_path)
    prometheus.start()
    try:
        address = f"127.0.0.1:{prometheus.port}"
        prometheus.add_target(address, env="self")  # Prometheus scrapes its own /metrics
        [target_file] = prometheus.targets_dir.glob("*.json")
        assert json.loads(target_file.read_text()) == [{"targets": [address], "labels": {"env": "self"}}]
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/status/config", timeout=5) as response:
            assert "file_sd_configs" in json.load(response)["data"]["yaml"]
        [up] = prometheus.wait_for(f'up{{instance="{address}"}} == 1', 30)
        assert up["metric"]["env"] == "self"
        prometheus.remove_target(address)
        assert not list(prometheus.targets_dir.glob("*.json"))
    finally:
        prometheus.stop()
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
