from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.deploy.githttp import GitHttpServer


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def git_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GitHttpServer]:
    server = GitHttpServer(root=tmp_path_factory.mktemp("git-server"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A fresh repository name per test, readable in failures."""
    return f"acme/deploy-{request.node.name.replace('[', '-').replace(']', '')}"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "clones"
