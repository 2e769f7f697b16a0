"""The sink's loop without a broker: outages waited out, refused commits redelivered, refused rows quarantined.

The consumer is a fake with real Kafka semantics where they matter here (per-partition logs, a position that
advances on fetch, a committed offset that only ``commit`` moves, ``seek``), the store a real SQLite store;
database outages are injected as the OperationalError SQLAlchemy raises, and the backoff sleeps through an
injected function, so nothing waits for real.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from prometheus_client import REGISTRY
from sqlalchemy import exc as sa_exc

from schemas import topics
from schemas.settings import Settings
from sinks.quarantine import Record
from sinks.runner import Backoff, ResultsSink
from sinks.store import ResultsStore
from support.store_scenarios import nip

RESULTS = TopicPartition(topics.RESULTS.name, 0)
ATTENDANCE = TopicPartition(topics.ATTENDANCE.name, 1)
T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone(timedelta(hours=7)))


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def outage() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("unable to open database file"))


@dataclass
class Msg:
    offset: int
    value: bytes | None


class FakeConsumer:
    """Per-partition logs read from a position; the run ends (``stop``) once everything has been fetched."""

    def __init__(self, logs: dict[TopicPartition, list[bytes | None]], stop: asyncio.Event,
                 failing_commits: int = 0) -> None:
        self.logs, self.stop = logs, stop
        self.position = {tp: 0 for tp in logs}
        self.committed: dict[TopicPartition, int] = {}
        self.failing_commits = failing_commits
        self.seeks: list[tuple[TopicPartition, int]] = []

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Msg]]:
        await asyncio.sleep(0)
        out: dict[TopicPartition, list[Msg]] = {}
        for tp, log in self.logs.items():
            msgs = [Msg(o, log[o]) for o in range(self.position[tp], len(log))][:max_records]
            if msgs:
                out[tp] = msgs
                self.position[tp] = msgs[-1].offset + 1
        if not out:
            self.stop.set()
        return out

    async def commit(self) -> None:
        if self.failing_commits:
            self.failing_commits -= 1
            raise CommitFailedError("rebalanced")
        self.committed = dict(self.position)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.position[tp] = offset

    def assignment(self) -> set[TopicPartition]:
        return set(self.logs)


class FlakyStore(ResultsStore):
    """A SQLite store whose database is down for the next ``down`` attempts (or raises ``error`` once)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.down = 0
        self.error: Exception | None = None
        self.attempts = 0
        self.batches = 0

    def _maybe_fail(self) -> None:
        self.attempts += 1
        if self.error is not None:
            raise self.error
        if self.down:
            self.down -= 1
            raise outage()

    def create_schema(self) -> None:
        self._maybe_fail()
        super().create_schema()

    def write_records(self, records: Sequence[Record]) -> list[dict[str, Any]]:
        self._maybe_fail()
        return super().write_records(records)

    def write_batch(self, events: Sequence[Any]) -> None:
        self.batches += 1
        super().write_batch(events)


@pytest.fixture
def store(tmp_path: Path) -> FlakyStore:
    s = FlakyStore(f"sqlite:///{tmp_path / 'results.db'}")
    s.create_schema()
    s.attempts = 0
    return s


def make_sink(store: ResultsStore, stop: asyncio.Event, sleep: Any, batch: int = 500,
              backoff: Backoff | None = None) -> ResultsSink:
    settings = Settings(database_url=str(store.engine.url), sink_batch_size=batch, sink_batch_seconds=0.01)
    return ResultsSink(store, settings, stop=stop, sleep=sleep, backoff=backoff)


def scored_log(store_cases: Any, n: int) -> list[bytes | None]:
    return [store_cases.scored(nip(i)).to_bytes() for i in range(1, n + 1)]


def test_an_outage_is_waited_out_with_backoff_and_nothing_committed_meanwhile(
        store: FlakyStore, store_cases: Any, caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    consumer = FakeConsumer({RESULTS: scored_log(store_cases, 3)}, stop)
    delays: list[float] = []
    during: list[tuple[dict[TopicPartition, int], float]] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        during.append((dict(consumer.committed), metric("cact_sink_db_up")))

    retries = metric("cact_sink_db_retries_total")
    store.down = 5
    caplog.set_level(logging.WARNING, logger="cact.sink")
    asyncio.run(make_sink(store, stop, sleep, backoff=Backoff(0.5, 3.0)).run(consumer))

    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]  # doubling, capped
    assert during == [({}, 0.0)] * 5  # no commit and db_up 0 all along the outage
    assert consumer.committed == {RESULTS: 3} and metric("cact_sink_db_up") == 1.0
    assert metric("cact_sink_db_retries_total") - retries == 5
    assert store.summary()["results_in_store"] == 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # one line when it goes, one when it is back: not one per retry
    assert lines[0].startswith("results store unreachable (OperationalError: unable to open database file)")
    assert lines[1].startswith("results store reachable again after") and "5 retries" in lines[1]


def test_the_schema_migration_at_start_waits_for_the_database(store: FlakyStore) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    store.down = 3
    asyncio.run(make_sink(store, asyncio.Event(), sleep).prepare())
    assert store.attempts == 4 and delays == [0.5, 1.0, 2.0]  # the documented defaults
    assert metric("cact_sink_db_up") == 1.0 and metric("cact_sink_quarantine_rows") == 0.0


def test_asked_to_stop_during_an_outage_the_sink_returns_without_committing(
        store: FlakyStore, store_cases: Any) -> None:
    stop = asyncio.Event()
    consumer = FakeConsumer({RESULTS: scored_log(store_cases, 2)}, stop)
    sleeps = 0

    async def sleep(seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        if sleeps == 3:
            stop.set()  # SIGTERM while the database is away

    store.down = 10**6
    asyncio.run(make_sink(store, stop, sleep).run(consumer))
    assert sleeps == 3 and consumer.committed == {} and store.summary()["results_in_store"] == 0


def test_an_unexpected_error_stops_the_sink_without_committing(store: FlakyStore, store_cases: Any) -> None:
    """Crash-only: a bug is neither retried forever nor quarantined; the batch stays uncommitted."""
    stop = asyncio.Event()
    consumer = FakeConsumer({RESULTS: scored_log(store_cases, 2)}, stop)
    store.error = RuntimeError("a bug")

    async def sleep(seconds: float) -> None:
        raise AssertionError("a bug is not an outage")

    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(make_sink(store, stop, sleep).run(consumer))
    assert consumer.committed == {}


def test_a_refused_commit_redelivers_the_batch_and_nothing_is_lost_or_doubled(
        store: FlakyStore, store_cases: Any, tmp_path: Path) -> None:
    stop = asyncio.Event()
    log = scored_log(store_cases, 5)
    consumer = FakeConsumer({RESULTS: log}, stop, failing_commits=1)
    failures = metric("cact_sink_commit_failures_total")
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    asyncio.run(make_sink(store, stop, sleep, batch=2).run(consumer))
    assert consumer.seeks == [(RESULTS, 0)]  # rewound to the first offset of the batch whose commit failed
    assert delays == [0.5]  # a pause before the next fetch, so a commit that keeps failing is no busy loop
    assert consumer.committed == {RESULTS: 5}
    assert store.attempts == 4  # batches 0-1, 0-1 again, 2-3, 4
    assert metric("cact_sink_commit_failures_total") - failures == 1
    # The same rows as one clean pass over the log: nothing lost, nothing twice.
    reference = ResultsStore(f"sqlite:///{tmp_path / 'reference.db'}")
    reference.create_schema()
    reference.write_batch([store_cases.scored(e.payload.nip) for e in map(_decode, log)])
    assert _comparable(store_cases.snapshot(store)) == _comparable(store_cases.snapshot(reference))


def _decode(raw: bytes | None) -> Any:
    from schemas.decode import decode_output

    assert raw is not None
    return decode_output(raw)


def _comparable(snapshot: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Rows without the wall-clock columns the store sets itself."""
    clock = {"created_at", "next_attempt_at"}
    return {t: [{k: v for k, v in row.items() if k not in clock} for row in rows] for t, rows in snapshot.items()}


def test_refused_records_are_quarantined_counted_and_committed_and_a_replay_adds_nothing(
        store: FlakyStore, store_cases: Any, caplog: pytest.LogCaptureFixture) -> None:
    a = store_cases.scored(nip(1))
    clash = store_cases.scored(nip(2)).model_copy(update={"event_id": a.event_id})
    summary = store_cases.session_summary("S-JKT-02", T0, scheduled=3, no_show=1)
    logs: dict[TopicPartition, list[bytes | None]] = {
        RESULTS: [a.to_bytes(), clash.to_bytes()],
        ATTENDANCE: [summary.to_bytes(), b"not json", None, b'{"event_type": "ParticipantScored"}'],
    }
    before = {t: metric("cact_sink_quarantined_total", event_type=t) for t in ("ParticipantScored", "unknown")}
    stop = asyncio.Event()
    consumer = FakeConsumer(logs, stop)

    async def sleep(seconds: float) -> None:
        raise AssertionError("nothing here is an outage")

    caplog.set_level(logging.WARNING, logger="cact.sink")
    asyncio.run(make_sink(store, stop, sleep).run(consumer))

    assert consumer.committed == {RESULTS: 2, ATTENDANCE: 4}  # the sink went past them, and stopped on none
    rows = {(q["source_topic"], q["source_partition"], q["source_offset"]): q for q in store.quarantined()}
    assert sorted(rows) == [(ATTENDANCE.topic, 1, 1), (ATTENDANCE.topic, 1, 2), (ATTENDANCE.topic, 1, 3),
                            (RESULTS.topic, 0, 1)]
    assert rows[(ATTENDANCE.topic, 1, 3)]["reason"].startswith("undecodable output (wrong_topic)")
    assert rows[(ATTENDANCE.topic, 1, 2)]["event_bytes"] == 0  # a tombstone
    assert store.summary()["results_in_store"] == 1 and len(store_cases.snapshot(store)["session_summaries"]) == 1
    assert metric("cact_sink_quarantined_total", event_type="ParticipantScored") - before["ParticipantScored"] == 2
    assert metric("cact_sink_quarantined_total", event_type="unknown") - before["unknown"] == 2
    assert metric("cact_sink_quarantine_rows") == 4.0
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 4 and all(r.startswith("quarantined ") for r in errors)
    assert nip(1) not in caplog.text and nip(2) not in caplog.text  # no NIPs in the log

    # A new sink replaying the topics from the start (offsets reset): nothing quarantined or counted twice.
    snapshot = store_cases.snapshot(store)
    stop = asyncio.Event()
    asyncio.run(make_sink(store, stop, sleep).run(FakeConsumer(logs, stop)))
    assert store_cases.snapshot(store) == snapshot
    assert metric("cact_sink_quarantined_total", event_type="ParticipantScored") - before["ParticipantScored"] == 2
    assert metric("cact_sink_quarantine_rows") == 4.0


def test_a_clean_batch_is_one_write(store: FlakyStore, store_cases: Any) -> None:
    """The common path pays nothing for quarantine: one transaction for the whole fetch."""
    stop = asyncio.Event()

    async def sleep(seconds: float) -> None:
        raise AssertionError

    asyncio.run(make_sink(store, stop, sleep).run(FakeConsumer({RESULTS: scored_log(store_cases, 50)}, stop)))
    assert (store.batches, store.summary()["results_in_store"]) == (1, 50)


def test_a_refused_row_costs_a_bisection_not_a_write_per_row(store: FlakyStore, store_cases: Any) -> None:
    events = [store_cases.scored(nip(i)) for i in range(1, 65)]
    events[40] = events[40].model_copy(update={"event_id": events[3].event_id})
    records = [Record(RESULTS.topic, 0, i, e.to_bytes(), e) for i, e in enumerate(events)]
    assert [q["source_offset"] for q in store.write_records(records)] == [40]
    assert store.summary()["results_in_store"] == 63
    assert store.batches <= 2 * 6 + 1  # log2(64) levels, two halves each, plus the first try
