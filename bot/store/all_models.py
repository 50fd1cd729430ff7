"""Imports every module that defines tables, so Base.metadata is complete (Alembic, tests)."""

from bot.store import models  # noqa: F401
from bot.store import chatops_models  # noqa: F401
