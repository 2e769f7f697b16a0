"""The results store on SQLite (a file under tmp_path): the laptop and demo configuration.

The behavioural scenarios live in tests/support/store_scenarios.py (``StoreCases``) and run unchanged on
PostgreSQL in tests/integration/sinks/test_store_postgres.py, so both dialects are held to one contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from sinks.store import ResultsStore
from support.store_scenarios import StoreCases


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultsStore]:
    s = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    s.create_schema()
    yield s
    s.dispose()


def test_store_scenario(store: ResultsStore, store_cases: StoreCases, store_scenario: str) -> None:
    getattr(store_cases, store_scenario)(store)


def test_missing_parent_folder_is_created_and_wal_is_on(tmp_path: Path) -> None:
    target = tmp_path / "not" / "yet" / "there" / "results.db"
    s = ResultsStore(f"sqlite:///{target}")
    s.create_schema()
    with s.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    s.dispose()
    assert target.exists()


def test_create_schema_twice_is_harmless(store: ResultsStore, store_cases: StoreCases) -> None:
    store.write_batch([store_cases.scored("199001012015031001")])
    store.create_schema()
    assert store.summary()["results_in_store"] == 1
