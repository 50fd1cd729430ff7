"""The guard's tests use the session's model-server fixtures (tests/fixtures/model_servers.py)."""

from __future__ import annotations

from tests.fixtures.model_servers import ModelServer

__all__ = ["ModelServer"]
