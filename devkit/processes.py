"""The demo's helper processes: a private Prometheus and ONNX model servers (``model_server.serve``).

Both run as subprocesses: the bot's process never imports onnxruntime, and stopping the demo stops
them. Prometheus scrapes every second and discovers model servers through file_sd, so targets are
added while it runs (it picks one up within a few seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"


class ProcessError(Exception):
    """A helper process did not start; the message names it and quotes its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Process:
    """A subprocess with a log file, ready once ``ready_url`` answers 200."""

    name: str
    argv: list[str]
    log: Path
    ready_url: str
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 60.0) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ProcessError(f"{self.name} exited with {self.popen.returncode}: {self._tail()}")
            if _ready(self.ready_url):
                return
            time.sleep(0.2)
        self.stop()
        raise ProcessError(f"{self.name} was not ready within {timeout:g}s: {self._tail()}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"


class Prometheus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = root / "targets"
        self.targets.mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        config.write_text(  # JSON is YAML
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "models",
                            "file_sd_configs": [{"files": [str(self.targets / "*.json")], "refresh_interval": "1s"}],
                        }
                    ],
                }
            )
        )
        self.process = Process(
            "prometheus",
            [
                PROMETHEUS_BINARY,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            root / "prometheus.log",
            f"{self.url}/-/ready",
        )

    def add_target(self, address: str) -> None:
        path = self.targets / f"{address.replace(':', '_')}.json"
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps([{"targets": [address], "labels": {}}]))
        os.replace(staging, path)  # atomic: Prometheus never reads half a file


def model_server(
    model: Path, *, name: str, version: str, sha256: str, env: str, log: Path, port: int | None = None
) -> Process:
    """``python -m model_server.serve`` for one version, with fault injection on (demo only)."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "model_server.serve",
        *("--model", str(model), "--name", name, "--version", version, "--sha256", sha256),
        *("--env", env, "--port", str(port), "--allow-fault-injection"),
    ]
    return Process(f"model server {name}@{version[:7]}", argv, log, f"http://127.0.0.1:{port}/v2/health/live")
