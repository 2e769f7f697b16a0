"""The lab emitter refuses what breaks the contract, with the worker's reason code, and spools nothing of it.

No broker here: the emitter points at a port nothing listens on, which also shows that validation and
spooling never wait for Kafka.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from producers.emitter import InvalidEvent, LabEmitter
from schemas import events as ev
from schemas.decode import Rejected, decode_event
from schemas.reasons import Reason
from schemas.settings import Settings
from streams.broker import free_port

WIB = timezone(timedelta(hours=7))
AT = datetime(2026, 11, 3, 8, 5, tzinfo=WIB)
NIP = "199001012015031001"


def event_dict(**overrides: Any) -> dict[str, Any]:
    base = ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-ii-medan", occurred_at=AT, payload={
        "session_id": "S-MDN-01", "nip": NIP, "seat": "A-01"}).model_dump(mode="json")
    for path, value in overrides.items():
        target = base
        *parents, leaf = path.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return base


def spooled(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return [(t, s) for t, s in db.execute("SELECT event_type, status FROM events ORDER BY seq")]


def buffered(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM autosaves").fetchone()[0])


@pytest.fixture
def emitter(tmp_path: Path) -> Iterator[LabEmitter]:
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", lab_spool_path=tmp_path / "spool.db",
                        lab_id="kanreg-ii-medan")
    e = LabEmitter(settings, bootstrap_timeout_ms=200)
    yield e
    e.close(timeout=0)


BAD_INPUTS: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("not JSON", b'{"event_type": "ParticipantCheckedIn", ', Reason.BAD_JSON),
    ("a JSON array", b"[1, 2, 3]", Reason.NOT_AN_OBJECT),
    ("unknown event type", event_dict(event_type="ParticipantTeleported"), Reason.UNKNOWN_EVENT_TYPE),
    ("schema version 2", event_dict(schema_version=2), Reason.UNSUPPORTED_SCHEMA_VERSION),
    ("NIP with a bad birth date", event_dict(**{"payload.nip": "199013012015031001"}), Reason.INVALID_NIP),
    ("NIP too short", event_dict(**{"payload.nip": "19900101"}), Reason.INVALID_NIP),
    ("time without UTC offset", event_dict(occurred_at="2026-11-03T08:05:00"), Reason.INVALID_FIELD),
    ("missing session id", event_dict(payload={"nip": NIP}), Reason.INVALID_FIELD),
    ("unknown field", event_dict(**{"payload.mood": "calm"}), Reason.INVALID_FIELD),
    ("event id not a UUID", event_dict(event_id="42"), Reason.INVALID_FIELD),
]


@pytest.mark.parametrize(("case", "raw", "reason"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_invalid_event_is_refused_with_the_workers_reason_and_not_spooled(
        emitter: LabEmitter, case: str, raw: bytes | dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        emitter.send(raw)
    assert refused.value.reason == reason, refused.value
    # The very code the worker would dead-letter the same bytes with.
    as_bytes = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(Rejected) as worker:
        decode_event(as_bytes)
    assert worker.value.reason == reason
    assert spooled(emitter.spool_path) == []
    assert emitter.pending() == 0


def test_dict_bytes_and_built_events_are_accepted_and_spooled_in_order(emitter: LabEmitter) -> None:
    built = ev.new_event(ev.SessionClosed, lab_id="kanreg-ii-medan", occurred_at=AT, payload={"session_id": "S-MDN-01"})
    emitter.send(event_dict())
    emitter.send(json.dumps(event_dict()).encode())
    emitter.send(built)
    assert spooled(emitter.spool_path) == [("ParticipantCheckedIn", "pending")] * 2 + [("SessionClosed", "pending")]
    with sqlite3.connect(emitter.spool_path) as db:
        topic, key, event_id = db.execute("SELECT topic, key, event_id FROM events ORDER BY seq DESC").fetchone()
    assert (topic, key, event_id) == ("cact.lab.v1", b"S-MDN-01", str(built.event_id))


def test_send_all_spools_nothing_when_one_event_is_invalid(emitter: LabEmitter) -> None:
    good = event_dict()
    with pytest.raises(InvalidEvent) as refused:
        emitter.send_all([good, good, event_dict(**{"payload.nip": "12345"}), good])
    assert refused.value.reason == Reason.INVALID_NIP
    assert "event 2" in str(refused.value)
    assert spooled(emitter.spool_path) == []
    assert emitter.send_all([good, good]) == 2
    assert len(spooled(emitter.spool_path)) == 2


@pytest.mark.parametrize(("case", "answer", "reason"), [
    ("bad NIP", {"nip": "199001012015039999"}, Reason.INVALID_NIP),
    ("unknown section", {"section": "astrology"}, Reason.INVALID_FIELD),
    ("option too long", {"option": "ABCDEFGHIJ"}, Reason.INVALID_FIELD),
    ("empty item id", {"item_id": ""}, Reason.INVALID_FIELD),
    ("time without offset", {"at": datetime(2026, 11, 3, 8, 5)}, Reason.INVALID_FIELD),
    ("bad session id", {"session_id": "S MDN 01"}, Reason.INVALID_FIELD),
], ids=lambda v: v if isinstance(v, str) else "")
def test_invalid_autosave_is_refused_at_once_and_not_buffered(
        emitter: LabEmitter, case: str, answer: dict[str, Any], reason: str) -> None:
    args: dict[str, Any] = {"session_id": "S-MDN-01", "nip": NIP, "section": "mansoskul", "item_id": "MSK-001",
                            "option": "B", "at": AT, **answer}
    with pytest.raises(InvalidEvent) as refused:
        emitter.autosave(**args)
    assert refused.value.reason == reason
    assert buffered(emitter.spool_path) == 0
    assert spooled(emitter.spool_path) == []


def test_autosave_without_a_lab_id_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", lab_spool_path=tmp_path / "s.db")
    e = LabEmitter(settings, bootstrap_timeout_ms=200)
    try:
        with pytest.raises(ValueError, match="lab id"):
            e.autosave("S-MDN-01", NIP, "mansoskul", "MSK-001", "B", AT)
    finally:
        e.close(timeout=0)
