"""Databases for tests: a fresh PostgreSQL database each, and a results store's rows as plain data.

CI and developers share the machine's PostgreSQL, so no test writes to a database it did not create:
:func:`fresh_database` makes an empty one with a random name and drops it afterwards, ``WITH (FORCE)`` so a
connection a test leaked cannot keep it alive. The conftest fixtures are one line over it: ``pg_url`` (one per
session, emptied by :func:`reset` before each test) and ``pg_database`` (one per test, for pipeline runs).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select

from bench.faults.harness import fresh_database as harness_database
from sinks import models
from sinks.store import ResultsStore

#: The maintenance database tests create theirs through (trust auth as ``postgres`` on 127.0.0.1:5432).
PG_TEST_ADMIN_URL = os.environ.get("CACT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def fresh_database(prefix: str, admin_url: str = PG_TEST_ADMIN_URL) -> AbstractContextManager[str]:
    """The URL of a new, empty database ``<prefix>_<random>`` on ``admin_url``'s server, dropped on exit: the
    fault suite's own (bench/faults/harness.py), so tests and the soak create databases one way."""
    return harness_database(admin_url, prefix=prefix)


def snapshot(store: ResultsStore) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in key order: what "changes nothing" is checked against."""
    out: dict[str, list[dict[str, Any]]] = {}
    with store.engine.connect() as conn:
        for table in models.Base.metadata.sorted_tables:
            order = list(table.primary_key.columns)
            out[table.name] = [dict(r) for r in conn.execute(select(table).order_by(*order)).mappings()]
    return out


def reset(store: ResultsStore) -> ResultsStore:
    """Create the schema and delete every row, children first: tests sharing one database start clean."""
    store.create_schema()
    with store.engine.begin() as conn:
        for table in reversed(models.Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return store
