"""What only PostgreSQL refuses, and how its errors are told apart: refusals are quarantined, outages waited out.

SQLite accepts a string longer than its column and a NUL byte in text; PostgreSQL refuses both (and a NUL
escaped inside JSONB), on the executemany path and on the COPY path, where psycopg's errors arrive without
SQLAlchemy's wrapping. The scenarios shared with SQLite are in tests/support/store_scenarios.py (``StoreCases``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.faults.tcp_proxy import TcpProxy
from schemas import topics
from sinks.quarantine import Record
from sinks.store import ResultsStore
from support.store_scenarios import nip

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str, store_cases: Any) -> Iterator[ResultsStore]:
    s = store_cases.reset(ResultsStore(pg_url))
    yield s
    s.dispose()


def _with_payload(e: Any, **changes: Any) -> Any:
    return e.model_copy(update={"payload": e.payload.model_copy(update=changes)})


@pytest.mark.parametrize("copy_min_rows", [10**9, 1], ids=["executemany", "copy"])
def test_rows_postgresql_refuses_are_quarantined_and_the_batch_is_written(
        store: ResultsStore, store_cases: Any, copy_min_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.store.COPY_MIN_ROWS", copy_min_rows)
    events = [store_cases.scored(nip(i)) for i in range(1, 41)]
    events[7] = _with_payload(events[7], blueprint_version="2026." + "9" * 40)  # results.blueprint_version: 32
    events[20] = _with_payload(events[20], category="Optimal\x00")  # NUL in a text column
    events[33] = _with_payload(events[33], flags=["rescored\x00"])  # NUL escaped in JSONB
    records = [Record(topics.RESULTS.name, 2, 100 + i, e.to_bytes(), e) for i, e in enumerate(events)]
    new = store.write_records(records)
    reasons = {q["source_offset"]: q["reason"] for q in new}
    assert reasons == {
        107: "StringDataRightTruncation: value too long for type character varying(32)",
        120: "DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes",
        133: "UntranslatableCharacter: unsupported Unicode escape sequence",
    }
    assert store.summary()["results_in_store"] == 37
    snapshot = store_cases.snapshot(store)
    assert store.write_records(records) == [] and store_cases.snapshot(store) == snapshot
    assert all(nip(i) not in r for i in (8, 21, 34) for r in reasons.values())  # no NIP in the reasons


def test_errors_are_told_apart_as_outages_or_refusals(pg_url: str) -> None:
    """A lost connection (wrapped by SQLAlchemy, or raw from psycopg on the COPY path) is an outage."""
    direct = make_url(pg_url)
    with TcpProxy(direct.host or "127.0.0.1", direct.port or 5432, lifetime_s=60) as proxy:
        store = ResultsStore(direct.set(port=proxy.port).render_as_string(hide_password=False))
        seen: list[BaseException] = []
        for raw in (False, True):
            conn = store.engine.connect()
            conn.execute(text("SELECT 1"))
            proxy.cut()
            try:
                if raw:
                    conn.connection.driver_connection.cursor().execute("SELECT 1")
                else:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:  # noqa: BLE001 - what was raised is the point of the test
                seen.append(exc)
            try:
                conn.close()  # the rollback on a lost connection fails too (SQLAlchemy did not see the raw error)
            except Exception as exc:  # noqa: BLE001
                assert raw and store.is_outage(exc), exc
            proxy.restore()
        proxy.cut()
        try:
            with store.engine.connect():
                pass
        except Exception as exc:  # noqa: BLE001
            seen.append(exc)
        assert [type(e).__module__.split(".")[0] for e in seen] == ["sqlalchemy", "psycopg", "sqlalchemy"]
        assert [store.is_outage(e) for e in seen] == [True, True, True]
        assert [store.is_refusal(e) for e in seen] == [False, False, False]
        store.dispose()
