"""The results store on PostgreSQL (psycopg 3): the production configuration.

One database per test session (``pg_url``), emptied before each test. The scenarios are the same
``StoreCases`` the SQLite unit tests run, so ``ON CONFLICT`` behaves alike on both dialects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect

from sinks.store import ResultsStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str, store_cases: Any) -> Iterator[ResultsStore]:
    s = store_cases.reset(ResultsStore(pg_url))
    yield s
    s.dispose()


@pytest.mark.parametrize("copy_min_rows", [10**9, 1], ids=["executemany", "copy"])
def test_store_scenario(store: ResultsStore, store_cases: Any, store_scenario: str, copy_min_rows: int,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scenario both ways rows reach PostgreSQL: executemany (small batches) and COPY via staging."""
    monkeypatch.setattr("sinks.store.COPY_MIN_ROWS", copy_min_rows)
    getattr(store_cases, store_scenario)(store)


def test_payload_is_jsonb_and_offsets_are_bigint(store: ResultsStore) -> None:
    """JSONB so payloads compare and index on PostgreSQL; BIGINT because Kafka offsets are 64-bit."""
    cols = {t: {c["name"]: str(c["type"]) for c in inspect(store.engine).get_columns(t)}
            for t in ("results", "deadletters")}
    assert cols["results"]["payload"] == "JSONB" and cols["deadletters"]["source_offset"] == "BIGINT"
