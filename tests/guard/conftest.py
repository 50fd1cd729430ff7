"""Guard fixtures: a small ONNX model and real model-server subprocesses (devkit's launcher) to scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devkit.onnx_models import write_iris_classifier
from devkit.processes import ModelServer, free_port, model_server

__all__ = ["ModelServer", "iris_model", "start_model_server"]


@pytest.fixture(scope="session")
def iris_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("guard-model") / "iris.onnx"
    return path, write_iris_classifier(path)


@pytest.fixture(scope="session")
def start_model_server(
    iris_model: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ModelServer]]:
    """Starts model servers (fault injection on); all stop at session end."""
    started: list[ModelServer] = []
    logs = tmp_path_factory.mktemp("model-server-logs")

    def start(version: str, *, name: str = "iris", env: str = "production") -> ModelServer:
        path, sha = iris_model
        port = free_port()
        log = logs / f"{name}-{version}-{port}.log"
        server = model_server(path, name=name, version=version, sha256=sha, env=env, log=log, port=port)
        started.append(server)
        server.start(timeout=30)
        return server

    yield start
    for server in started:
        server.stop()
