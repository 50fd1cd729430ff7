"""Imports every module that defines tables, so Base.metadata is complete (Alembic, tests)."""

import bot.store.chatops_models
import bot.store.guard_models
import bot.store.notify_models
import bot.store.review_models
import bot.store.ui_models  # noqa: F401
from bot.store import models  # noqa: F401
