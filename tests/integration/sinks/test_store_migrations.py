"""The Alembic migrations are the schema: applied to an empty PostgreSQL database they equal the models."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from sinks.models import Base
from sinks.store import ResultsStore


@pytest.mark.postgres
def test_migrations_create_exactly_the_models(pg_database: str) -> None:
    store = ResultsStore(pg_database)
    store.create_schema()
    store.create_schema()  # idempotent: a second worker starting changes nothing
    engine = create_engine(pg_database)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    assert diff == [], diff
    assert {"results", "attendance", "siasn_outbox", "alembic_version"} <= tables
    engine.dispose()
    store.dispose()


@pytest.mark.postgres
def test_processes_migrating_an_empty_database_together_all_succeed(pg_database: str) -> None:
    """A worker and a sink (or several workers) start at once on a new database: all of them come up."""
    code = f"from sinks.store import ResultsStore; ResultsStore({pg_database!r}).create_schema()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    failures = [p.communicate(timeout=120)[1][-500:] for p in procs if p.wait(120) != 0]
    assert failures == []
    engine = create_engine(pg_database)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()
