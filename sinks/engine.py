"""The results store's SQLAlchemy engine: PostgreSQL as given, SQLite with the pragmas a shared file needs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def aware(at: datetime) -> datetime:
    """SQLite hands timestamps back naive (they were stored in UTC), PostgreSQL aware: read them as UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def json_text(value: Any) -> str:
    """JSON columns through orjson: the stdlib encoder was the sink's costliest step per result."""
    return orjson.dumps(value).decode()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite, create the file's folder and set pragmas on every connection.

    WAL lets the operator page and the demo summary read while the sink writes; ``synchronous=NORMAL`` is
    durable enough under WAL (a crash loses at most uncommitted work, and Kafka offsets are committed only
    after the batch), ``busy_timeout`` makes a second writer wait instead of failing, and ``foreign_keys``
    makes SQLite enforce the detail rows' link to their result as PostgreSQL does.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A host that drops packets would otherwise hang a connect for the OS's minutes, not fail it.
        timeout = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" and (
            "connect_timeout" not in parsed.query) else {}
        return create_engine(url, pool_pre_ping=True, json_serializer=json_text, connect_args=timeout)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine
