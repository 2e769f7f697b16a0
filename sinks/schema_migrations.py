"""Schema migrations of the results store (Alembic), runnable from code: workers migrate at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

SCRIPT_LOCATION = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


#: Key of the PostgreSQL advisory lock that serialises migrations (any constant shared by every process).
MIGRATION_LOCK = 0x43414354  # "CACT"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the store to ``revision``; idempotent, and safe when several processes start together.

    On PostgreSQL a transaction-scoped advisory lock makes a worker and a sink (or two workers) migrating an empty
    database take turns: without it both try to create ``alembic_version`` and the second one dies.
    """
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
