# The lead registers tests.fixtures.devhub in tests/conftest.py; importing keeps this package self-sufficient.
from tests.fixtures.devhub import devhub, webhook_sink

__all__ = ["devhub", "webhook_sink"]
