"""Autogenerate an Alembic revision from the models: `python scripts/make_migration.py "message"`."""

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

MIGRATIONS = Path(__file__).resolve().parents[1] / "bot" / "store" / "migrations"


def main() -> None:
    message = sys.argv[1] if len(sys.argv) > 1 else "schema change"
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/db.sqlite")
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
            command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":
    main()
