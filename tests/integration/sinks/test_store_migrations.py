"""The Alembic migrations are the schema: applied to an empty PostgreSQL database they equal the models."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from sinks.models import Base
from sinks.schema_migrations import alembic_config
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
    assert {"results", "attendance", "siasn_outbox", "siasn_decisions", "alembic_version"} <= tables
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


@pytest.mark.postgres
def test_0004_keeps_earlier_results_counted_and_downgrades(pg_database: str, store_cases: Any) -> None:
    """A store migrated before result standings existed: its results count and their pushes go out as before;
    going back to 0003 turns held pushes into the pending ones that version knows (and void ones retired)."""
    from sinks.schema_migrations import upgrade

    store = ResultsStore(pg_database)
    upgrade(store.engine, "0003")
    row = {"nip": "199001012015031001", "activity_id": "ACT-1", "result_version": 1, "result_id": str(uuid.uuid4()),
           "event_id": str(uuid.uuid4()), "session_id": "S-1", "agency_id": "AG-1", "purpose": "mapping",
           "position_tier": "pelaksana", "blueprint_id": "cact-full", "blueprint_version": "1", "jpm": 100.0,
           "category": "Optimal", "assessed_on": "2026-11-03", "valid_until": "2029-11-03", "flags": "[]",
           "provenance": "[]", "payload": "{}", "status": "current", "created_at": "2026-11-03T01:00:00+00:00"}
    with store.engine.begin() as conn:
        conn.execute(text(f"INSERT INTO results ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row)
    store.create_schema()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT standing, standing_detail FROM results")).one() == ("counted", None)
    store.write_batch([store_cases.scored("199001012015031001", activity="ACT-2")])
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE siasn_outbox SET status = 'held'"))
        with pytest.raises(IntegrityError):  # the CHECK names every status the pusher and operators know
            with conn.begin_nested():
                conn.execute(text("UPDATE siasn_outbox SET status = 'parked'"))
    cfg = alembic_config(store.engine)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM siasn_outbox")).scalars().all() == ["pending"]
        assert "siasn_decisions" not in inspect(conn).get_table_names()
    store.create_schema()  # and up again
    store.dispose()


@pytest.mark.postgres
def test_0006_keys_by_content_keeps_earlier_rows_for_their_position_and_downgrades(pg_database: str) -> None:
    """A store from before 0006: its dead letter and quarantined record keep standing for their positions (a
    replay adds nothing, though the replay's digest is new to them); after it, a rebuilt log's new message at a
    used position is a row of its own; going back to 0005 leaves one row per position again."""
    from schemas import topics
    from sinks.quarantine import Record
    from sinks.schema_migrations import upgrade
    from streams.deadletter import dead_letter

    def letter(offset: int, value: bytes) -> Any:
        return dead_letter(topic="cact.lab.v1", partition=0, offset=offset, key=None, value=value, timestamp=0.0,
                           reason="bad_json", detail="not valid JSON")

    store = ResultsStore(pg_database)
    upgrade(store.engine, "0005")
    old = letter(5, b"{")
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO deadletters (event_id, reason, detail, source_topic, source_partition, source_offset, "
            "occurred_at) VALUES (:id, 'bad_json', 'x', 'cact.lab.v1', 0, 5, now())"), {"id": str(uuid.uuid4())})
        conn.execute(text(
            "INSERT INTO sink_quarantine (source_topic, source_partition, source_offset, event_type, reason, "
            "event_json, event_bytes, first_seen_at) VALUES (:t, 0, 2, 'unknown', 'r', 'x', 1, now())"),
            {"t": topics.ATTENDANCE.name})
    store.create_schema()
    store.write_batch([old])  # the replay of the stored one
    replayed = Record(topics.ATTENDANCE.name, 0, 2, b"x", None, "undecodable output (invalid_json): r")
    assert store.write_records([replayed]) == []
    store.write_batch([letter(6, b"{"), letter(6, b"[")])
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT source_offset, value_sha256 FROM deadletters ORDER BY 1, 2")).all()
    assert [(o, bool(d)) for o, d in rows] == [(5, False), (6, True), (6, True)]
    cfg = alembic_config(store.engine)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT source_offset FROM deadletters ORDER BY 1")).scalars().all() == [5, 6]
        assert conn.execute(text("SELECT count(*) FROM sink_quarantine")).scalar() == 1
    store.create_schema()  # and up again
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    store.dispose()
