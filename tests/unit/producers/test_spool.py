"""The spool keeps events in order, across a reopen, and batches autosaves in order.

No broker: the emitter points at a port nothing listens on, so everything stays pending, as in an outage.
Across a killed process (a real ``kill -9``): tests/integration/producers/test_spool_killed_process.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cact.cli import app
from producers.emitter import LabEmitter
from producers.spool import NewRow, Spool, spool_status
from schemas import events as ev
from schemas.settings import Settings
from streams.broker import free_port
from support.clock import FakeClock

WIB = timezone(timedelta(hours=7))
AT = datetime(2026, 11, 3, 9, 0, tzinfo=WIB)
NIP_A = "199001012015031001"
NIP_B = "198505122010012002"


def row(i: int, topic: str = "cact.lab.v1", event_type: str = "SectionStarted") -> NewRow:
    return NewRow(topic, f"S-{i % 3}".encode(), f'{{"n": {i}}}'.encode(), f"id-{i}", event_type)


def events(path: Path) -> list[dict[str, Any]]:
    """Every spooled event, oldest first, decoded."""
    with sqlite3.connect(path) as db:
        return [{"seq": s, "status": st, **json.loads(v)}
                for s, st, v in db.execute("SELECT seq, status, value FROM events ORDER BY seq")]


def dead_broker_settings(path: Path, **extra: Any) -> Settings:
    return Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", lab_spool_path=path, lab_id="kanreg-v",
                    **extra)


@pytest.fixture
def emitter(tmp_path: Path) -> Iterator[LabEmitter]:
    e = LabEmitter(dead_broker_settings(tmp_path / "spool.db", lab_autosave_batch=3, lab_autosave_seconds=600),
                   bootstrap_timeout_ms=200)
    yield e
    e.close(timeout=0)


# ---- the spool itself ----------------------------------------------------------------------------


def test_pending_rows_come_back_in_seq_order_and_leave_once_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", "127.0.0.1:9092")
    seqs = spool.append([row(i) for i in range(5)]) + spool.append([row(5)])
    assert seqs == sorted(seqs) and len(set(seqs)) == 6
    assert [r.value for r in spool.pending()] == [f'{{"n": {i}}}'.encode() for i in range(6)]
    spool.mark_sent(seqs[:2])
    spool.mark_failed(seqs[3], "MessageSizeTooLargeError: too big")
    assert [r.seq for r in spool.pending()] == [seqs[2], seqs[4], seqs[5]]
    with sqlite3.connect(tmp_path / "s.db") as db:  # acknowledged payloads are kept too: a resend needs them
        rows = {seq: (status, value) for seq, status, value in db.execute("SELECT seq, status, value FROM events")}
    assert [rows[s] for s in seqs] == [("sent", b'{"n": 0}'), ("sent", b'{"n": 1}'), ("pending", b'{"n": 2}'),
                                       ("failed", b'{"n": 3}'), ("pending", b'{"n": 4}'), ("pending", b'{"n": 5}')]
    assert [r.seq for r in spool.pending(after_seq=seqs[2], limit=1)] == [seqs[4]]
    spool.close()


def test_a_closed_emitters_rows_are_adopted_in_order_by_the_next_one(tmp_path: Path) -> None:
    first = Spool(tmp_path / "s.db", "kafka-a:9092,kafka-b:9092")
    first.append([row(i) for i in range(4)])
    first.mark_sent([first.pending()[0].seq])
    first.close()
    second = Spool(tmp_path / "s.db", " kafka-b:9092 , kafka-a:9092")  # same cluster, spelled differently
    assert second.pending() == []
    assert second.adopt() == 3
    assert [r.value for r in second.pending()] == [f'{{"n": {i}}}'.encode() for i in (1, 2, 3)]
    second.close()


def test_rows_of_a_live_emitter_are_not_taken_until_its_lease_expires(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000.0)
    live = Spool(tmp_path / "s.db", "k:9092", clock=clock)
    live.append([row(1)])
    other = Spool(tmp_path / "s.db", "k:9092", lease_seconds=15, clock=clock)
    clock.advance(14)
    assert other.adopt() == 0 and other.pending() == []
    clock.advance(2)  # no heartbeat from ``live`` for 16 s: it is hung, so its rows move on
    assert other.adopt() == 1
    live.close()
    other.close()


def test_rows_meant_for_another_cluster_are_never_adopted(tmp_path: Path) -> None:
    test_cluster = Spool(tmp_path / "s.db", "127.0.0.1:40000")
    test_cluster.append([row(1), row(2)])
    test_cluster.close()
    production = Spool(tmp_path / "s.db", "kafka.bkn.go.id:9093")
    assert production.adopt() == 0
    production.append([row(3)])
    status = spool_status(tmp_path / "s.db")
    assert {(g["destination"], g["pending"]) for g in status["groups"]} == {
        ("127.0.0.1:40000", 2), ("kafka.bkn.go.id:9093", 1)}
    production.close()


def test_status_counts_per_topic_and_type_and_prune_keeps_unsent_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = Spool(path, "k:9092")
    seqs = spool.append([row(i, event_type="AnswersSaved") for i in range(4)] +
                        [row(9, topic="cact.schedule.v1", event_type="SessionScheduled")])
    spool.mark_sent(seqs[:2])
    spool.mark_failed(seqs[2], "MessageSizeTooLargeError: 2 MB")
    status = spool_status(path, now=time.time() + 90)
    assert (status["pending"], status["sent"], status["failed"]) == (2, 2, 1)
    assert 89 <= status["oldest_pending_age_seconds"] <= 120
    assert status["last_error"] == "MessageSizeTooLargeError: 2 MB"
    groups = {(g["topic"], g["event_type"]): (g["pending"], g["sent"], g["failed"]) for g in status["groups"]}
    assert groups == {("cact.lab.v1", "AnswersSaved"): (1, 2, 1), ("cact.schedule.v1", "SessionScheduled"): (1, 0, 0)}
    assert spool.prune_sent(keep_hours=0) == 2
    after = spool_status(path)
    assert (after["pending"], after["sent"], after["failed"]) == (2, 0, 1)
    spool.close()


def test_lab_status_command_reports_the_spool(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = Spool(path, "k:9092")
    spool.append([row(1), row(2)])
    result = CliRunner().invoke(app, ["lab", "status", "--json", "--spool", str(path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["pending"], report["sent"], report["failed"], report["owners"]) == (2, 0, 0, 1)
    table = CliRunner().invoke(app, ["lab", "status", "--spool", str(path)], env={"COLUMNS": "160"})
    assert table.exit_code == 0 and "SectionStarted" in table.stdout and "total" in table.stdout
    missing = CliRunner().invoke(app, ["lab", "status", "--json", "--spool", str(tmp_path / "none.db")])
    assert json.loads(missing.stdout)["exists"] is False and not (tmp_path / "none.db").exists()
    spool.close()


# ---- the emitter on the spool --------------------------------------------------------------------


def checked_in(nip: str, session: str = "S-1") -> ev.Event:
    return ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-v", occurred_at=AT,
                        payload={"session_id": session, "nip": nip})


def submitted(nip: str, section: str = "mansoskul", session: str = "S-1") -> ev.Event:
    return ev.new_event(ev.SectionSubmitted, lab_id="kanreg-v", occurred_at=AT + timedelta(minutes=30), payload={
        "session_id": session, "nip": nip, "section": section, "completion": "submitted", "answers": []})


def test_an_outage_keeps_events_pending_and_a_reopened_spool_resends_them_in_order(tmp_path: Path) -> None:
    settings = dead_broker_settings(tmp_path / "s.db")
    first = LabEmitter(settings, bootstrap_timeout_ms=200)
    sent = [checked_in(NIP_A), checked_in(NIP_B), submitted(NIP_A)]
    for e in sent:
        first.send(e)
    assert first.pending() == 3
    first.close(timeout=0.2)  # cannot deliver: logged, and the events stay spooled
    second = LabEmitter(settings, bootstrap_timeout_ms=200)
    try:
        assert second.pending() == 3  # adopted, still in their original order
        assert [e["event_id"] for e in events(settings.lab_spool_path)] == [str(e.event_id) for e in sent]
        with pytest.raises(TimeoutError, match="3 events not yet acknowledged"):
            second.flush(timeout=0.3)
    finally:
        second.close(timeout=0)


def test_autosaves_are_batched_per_participant_section_after_n_answers(emitter: LabEmitter) -> None:
    for item, option in (("MSK-1", "A"), ("MSK-2", "B"), ("MSK-1", "C")):  # MSK-1 re-answered: the last wins
        emitter.autosave("S-1", NIP_A, "mansoskul", item, option, AT)
    emitter.autosave("S-1", NIP_B, "mansoskul", "MSK-1", "D", AT)
    assert events(emitter.spool_path) == []  # two distinct items of A, one of B: below the batch of 3
    emitter.autosave("S-1", NIP_A, "mansoskul", "MSK-3", None, AT + timedelta(seconds=5))
    [saved] = events(emitter.spool_path)
    assert saved["event_type"] == "AnswersSaved"
    assert saved["payload"] == {"session_id": "S-1", "nip": NIP_A, "section": "mansoskul", "answers": [
        {"item_id": "MSK-2", "option": "B"}, {"item_id": "MSK-1", "option": "C"}, {"item_id": "MSK-3", "option": None}]}
    assert saved["occurred_at"] == (AT + timedelta(seconds=5)).isoformat()
    assert saved["lab_id"] == "kanreg-v"
    assert spool_status(emitter.spool_path)["autosave_buffered"] == 1  # B's answer is still waiting


def test_autosaves_go_out_before_the_participants_submission_and_the_session_close(emitter: LabEmitter) -> None:
    emitter.autosave("S-1", NIP_A, "mansoskul", "MSK-1", "A", AT)
    emitter.autosave("S-1", NIP_B, "mansoskul", "MSK-1", "B", AT)
    emitter.autosave("S-2", NIP_B, "digital_literacy", "DL-1", "C", AT)
    emitter.send(submitted(NIP_A))
    assert [(e["event_type"], e["payload"]["nip"]) for e in events(emitter.spool_path)] == [
        ("AnswersSaved", NIP_A), ("SectionSubmitted", NIP_A)]  # B's buffer is not A's business
    emitter.send(ev.new_event(ev.SessionClosed, lab_id="kanreg-v", occurred_at=AT, payload={"session_id": "S-1"}))
    kinds = [(e["event_type"], e["payload"]["session_id"], e["payload"].get("nip")) for e in events(emitter.spool_path)]
    assert kinds[2:] == [("AnswersSaved", "S-1", NIP_B), ("SessionClosed", "S-1", None)]
    assert spool_status(emitter.spool_path)["autosave_buffered"] == 1  # S-2 waits for its own time


def test_autosaves_go_out_after_t_seconds(tmp_path: Path) -> None:
    e = LabEmitter(dead_broker_settings(tmp_path / "s.db", lab_autosave_seconds=0.3), bootstrap_timeout_ms=200)
    try:
        e.autosave("S-1", NIP_A, "emerging_skills", "ES-1", "A", AT)
        deadline = time.monotonic() + 10
        while not events(e.spool_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        [saved] = events(e.spool_path)
        assert saved["payload"]["answers"] == [{"item_id": "ES-1", "option": "A"}]
        assert spool_status(e.spool_path)["autosave_buffered"] == 0
    finally:
        e.close(timeout=0)
