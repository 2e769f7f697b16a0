"""Acknowledged events stay resendable for the configured retention, then are pruned and counted; a resend puts
exactly the acknowledged rows of its time range back to pending, in their original order.

The spool's clock is injected, so hours pass without sleeping. No broker: only the spool file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from producers.spool import SCHEMA_VERSION, NewRow, Spool, connect, spool_status
from support.clock import FakeClock

T0 = 1_793_680_000.0  # 2026-11-03 around 10:00 WIB, unix time
HOUR = 3600.0


def row(i: int, key: str = "S-1") -> NewRow:
    return NewRow("cact.lab.v1", key.encode(), f'{{"n": {i}}}'.encode(), f"id-{i}", "SectionStarted")


def values(spool: Spool) -> list[bytes]:
    return [r.value for r in spool.pending()]


def table(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_an_acknowledged_payload_is_kept_for_the_retention_then_the_row_is_pruned_and_counted(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    spool = Spool(tmp_path / "s.db", "k:9092", clock=clock)
    seqs = spool.append([row(i) for i in range(3)])
    spool.mark_sent(seqs[:2])            # acknowledged at T0
    clock.now = T0 + 24 * HOUR - 1       # a second before the retention ends: nothing goes
    assert spool.prune_sent(keep_hours=24) == 0
    assert table(tmp_path / "s.db", "SELECT status, value FROM events ORDER BY seq") == [
        ("sent", b'{"n": 0}'), ("sent", b'{"n": 1}'), ("pending", b'{"n": 2}')]
    status = spool_status(tmp_path / "s.db")
    assert (status["resendable"], status["resendable_bytes"], status["pruned"]) == (2, 16, 0)
    assert status["resendable_since"] is not None

    clock.now = T0 + 24 * HOUR + 1
    assert spool.prune_sent(keep_hours=24) == 2
    assert table(tmp_path / "s.db", "SELECT status, value FROM events") == [("pending", b'{"n": 2}')]  # never pruned
    assert table(tmp_path / "s.db", "SELECT destination, minute, events FROM pruned") == [
        ("k:9092", T0 // 60 * 60, 2)]
    status = spool_status(tmp_path / "s.db")
    assert (status["sent"], status["resendable"], status["pruned"]) == (0, 0, 2)
    spool.close()


def test_requeue_takes_the_acknowledged_rows_of_the_range_in_seq_order_and_nothing_else(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    spool = Spool(tmp_path / "s.db", "k:9092", clock=clock)
    seqs = spool.append([row(i) for i in range(8)])
    for i, seq in enumerate(seqs[:6]):  # acknowledged one an hour: 10:00, 11:00, ... 15:00
        clock.now = T0 + i * HOUR
        spool.mark_sent([seq])
    spool.mark_failed(seqs[6], "MessageSizeTooLargeError")  # refused for good: never resent
    # seqs[7] is still pending: it goes anyway, a resend must not touch it
    clock.now = T0 + 7 * HOUR
    other = Spool(tmp_path / "s.db", "k:9092", clock=clock)  # e.g. ``cact lab resend`` beside the lab app
    got = other.requeue_sent(T0 + 2 * HOUR, T0 + 5 * HOUR)  # [12:00, 15:00): 12, 13 and 14 o'clock
    assert (got.events, got.first_seq, got.last_seq, got.payload_gone) == (3, seqs[2], seqs[4], 0)
    assert values(other) == [b'{"n": 2}', b'{"n": 3}', b'{"n": 4}']
    assert values(spool) == [b'{"n": 7}']  # the lab app's own pending row stays its own
    assert table(tmp_path / "s.db", "SELECT status, sent_at IS NULL FROM events ORDER BY seq") == [
        ("sent", 0), ("sent", 0), ("pending", 1), ("pending", 1), ("pending", 1), ("sent", 0), ("failed", 1),
        ("pending", 1)]
    assert other.requeue_sent(T0 + 2 * HOUR, T0 + 5 * HOUR).events == 0  # already pending: not twice
    other.mark_sent([seqs[2]])
    assert other.requeue_sent(T0 + 6 * HOUR).events == 1  # resent now, so its send time is now
    spool.close()
    other.close()


def test_requeue_counts_what_retention_already_pruned_and_leaves_other_clusters_alone(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "s.db"
    old_cluster = Spool(path, "kafka-old:9092", clock=clock)
    old_cluster.mark_sent(old_cluster.append([row(i) for i in range(2)]))
    old_cluster.close()
    spool = Spool(path, "k:9092", clock=clock)
    early = spool.append([row(i) for i in range(10, 14)])
    spool.mark_sent(early)                                   # 4 sent at T0
    clock.now = T0 + 2 * HOUR
    late = spool.append([row(20), row(21)])
    spool.mark_sent(late)                                    # 2 sent at T0 + 2 h
    clock.now = T0 + 25 * HOUR
    assert spool.prune_sent(keep_hours=24) == 6              # every row sent at T0, of both clusters

    got = spool.requeue_sent(T0 - HOUR)
    assert (got.events, got.payload_gone) == (2, 4)          # the early four are gone, the late two resent
    assert got.other_destinations == {}                      # the old cluster's rows were pruned as well
    assert values(spool) == [b'{"n": 20}', b'{"n": 21}']
    assert spool.requeue_sent(T0 + 3 * HOUR).payload_gone == 0  # pruned minutes outside the range do not count
    spool.close()


def test_rows_acknowledged_by_another_cluster_move_only_when_asked(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "s.db"
    lost = Spool(path, "kafka-a:9092,kafka-b:9092", clock=clock)
    lost.mark_sent(lost.append([row(i) for i in range(3)]))
    lost.close()
    rebuilt = Spool(path, "kafka-new:9092", clock=clock)
    got = rebuilt.requeue_sent(T0 - 1)
    assert (got.events, got.other_destinations) == (0, {"kafka-a:9092,kafka-b:9092": 3})
    got = rebuilt.requeue_sent(T0 - 1, from_destination=" kafka-b:9092, kafka-a:9092")  # any spelling of it
    assert got.events == 3 and values(rebuilt) == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert table(path, "SELECT DISTINCT destination FROM events") == [("kafka-new:9092",)]
    rebuilt.close()


def test_requeued_rows_of_a_resend_that_died_are_adopted_in_their_order(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    path = tmp_path / "s.db"
    lab = Spool(path, "k:9092", clock=clock)
    lab.mark_sent(lab.append([row(i) for i in range(3)]))
    resender = Spool(path, "k:9092", clock=clock)
    assert resender.requeue_sent(T0).events == 3
    resender.close()  # killed or closed before Kafka took them
    lab.append([row(9)])
    assert lab.adopt() == 3
    assert values(lab) == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}', b'{"n": 9}']  # the resent rows still go first
    lab.close()


def test_a_version_1_spool_is_upgraded_and_its_dropped_payloads_are_reported_as_not_resendable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = connect(path)
    db.executescript("DROP TABLE pruned; PRAGMA user_version = 1;")
    db.execute("INSERT INTO events (owner, destination, topic, key, value, event_id, event_type, status, created_at,"
               " sent_at) VALUES ('gone', 'k:9092', 'cact.lab.v1', X'', X'', 'e1', 'SectionStarted', 'sent', ?, ?)",
               (T0, T0))  # what version 1 left after an acknowledgement
    db.close()
    assert spool_status(path)["pruned"] == 0 and spool_status(path)["resendable"] == 0
    spool = Spool(path, "k:9092", clock=FakeClock(T0 + HOUR))
    assert table(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)] and table(path, "SELECT * FROM pruned") == []
    got = spool.requeue_sent(T0 - HOUR)
    assert (got.events, got.payload_gone) == (0, 1)
    spool.close()
