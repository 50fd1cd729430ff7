"""The podman fixtures, until tests/conftest.py lists ``tests.fixtures.podman`` in ``pytest_plugins``."""

from tests.fixtures.podman import (  # noqa: F401  (fixtures register by name)
    docker_client,
    local_runtime,
    podman_url,
    runner_image,
    sandbox_runner,
)
