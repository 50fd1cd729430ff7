"""Alembic environment: always handed a live connection by bot.store.db.migrate."""

from alembic import context

import bot.store.all_models  # noqa: F401  (registers every table on Base.metadata)
from bot.store.base import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
