"""Engine creation and schema migration (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        # Deliveries are written by one group-commit writer; a generous busy timeout covers the CLI
        # reading jobs while the service writes.
        engine = create_async_engine(url, connect_args={"timeout": 30})

        event.listen(engine.sync_engine, "connect", lambda conn, _record: sqlite_pragmas(conn))
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def sqlite_pragmas(dbapi_conn: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; NORMAL sync in WAL mode survives a process crash
    # (SIGKILL) without an fsync per commit.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent)."""

    def upgrade(sync_conn: Any) -> None:
        cfg = _alembic_config()
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, "heads")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)


async def schema_revisions(engine: AsyncEngine) -> tuple[set[str], set[str]]:
    """(the database's current Alembic revisions, the newest ones this code knows), read-only."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    def read(sync_conn: Any) -> set[str]:
        return set(MigrationContext.configure(sync_conn).get_current_heads())

    async with engine.connect() as conn:
        current = await conn.run_sync(read)
    return current, set(ScriptDirectory.from_config(_alembic_config()).get_heads())
