"""Guard fixtures: a small ONNX model and real model-server subprocesses to scrape."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.onnx_models import write_iris_classifier
from tests.fixtures.prometheus import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ModelServer:
    address: str
    version: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("guard-model") / "iris.onnx"
    return path, write_iris_classifier(path)


@pytest.fixture(scope="session")
def start_model_server(
    iris_model: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ModelServer]]:
    """Starts ``python -m model_server.serve`` subprocesses (fault injection on); all stop at session end."""
    started: list[ModelServer] = []
    logs = tmp_path_factory.mktemp("model-server-logs")

    def start(version: str, *, name: str = "iris", env: str = "production") -> ModelServer:
        path, sha = iris_model
        port = free_port()
        log = logs / f"{name}-{version}-{port}.log"
        command = [sys.executable, "-m", "model_server.serve", "--model", str(path), "--name", name]
        command += ["--version", version, "--sha256", sha, "--env", env, "--port", str(port)]
        command += ["--allow-fault-injection"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        server = ModelServer(f"127.0.0.1:{port}", version, process)
        started.append(server)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"model server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{server.url}/v2/health/ready", timeout=1):
                    return server
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"model server not ready within 30s: {log.read_text()[-2000:]}")

    yield start
    for server in started:
        server.process.terminate()
    for server in started:
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
