"""Session-wide fixtures live in tests/fixtures/ and are shared by every test package."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.devhub",
    "tests.fixtures.bot",
    "tests.fixtures.prometheus",
    "tests.fixtures.model_servers",
    "tests.fixtures.podman",
    "tests.fixtures.registry",
    "tests.fixtures.product_image",
    "tests.fixtures.kubeapi",
    "tests.fixtures.sandbox_backend",
]
