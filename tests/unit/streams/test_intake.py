"""The worker's intake against records nobody here wrote: it never raises, answers every bad record with one
bounded dead letter, parks an event that breaks the processor without leaving half its state behind, and caps
the state input alone can create. Real processor and real decoder; the Faust tables are plain dicts."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.reasons import Reason
from streams.intake import Chunk, Intake
from streams.processor import SessionProcessor, StateLimits
from streams.scoring import ScoringPolicy
from streams.state import TableOverlay

LAB, SCHEDULE = "cact.lab.v1", "cact.schedule.v1"
START = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
NIPS = [f"19900101201503100{i}" for i in range(1, 10)]


class FakeTable(dict):
    """What TableOverlay reads of a Faust table."""


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


DEFAULT_LIMITS = StateLimits()


class Worker:
    """The intake as the worker wires it, over dict tables; ``commit`` plays the acknowledged flush."""

    def __init__(self, registry: BlueprintRegistry, limits: StateLimits = DEFAULT_LIMITS, max_bytes: int = 1_000_000,
                 processor_cls: type[SessionProcessor] = SessionProcessor) -> None:
        self.sessions, self.participants = FakeTable(), FakeTable()
        self.offset = 0

        def new_chunk() -> Chunk:
            overlays = TableOverlay(self.sessions), TableOverlay(self.participants)  # type: ignore[arg-type]
            return Chunk(processor_cls(registry, ScoringPolicy(), *overlays, limits=limits), *overlays)

        self.intake = Intake(new_chunk, max_message_bytes=max_bytes)
        self.chunk = new_chunk()

    def feed(self, value: Any, *, topic: str = LAB, key: Any = b"S1", timestamp: Any = 1.8e9) -> None:
        message = SimpleNamespace(topic=topic, partition=0, offset=self.offset, key=key, value=value,
                                  timestamp=timestamp)
        self.offset += 1
        self.chunk = self.intake.take(self.chunk, SimpleNamespace(message=message))

    def commit(self) -> list[ev.Event]:
        """Apply the chunk's state as the acknowledged flush does, and hand back its outputs."""
        for overlay, table in ((self.chunk.sessions, self.sessions), (self.chunk.participants, self.participants)):
            for key in overlay._dirty:
                table[key] = orjson.loads(orjson.dumps(overlay._cache[key]))
        out = self.chunk.out
        self.chunk = self.intake.new_chunk()
        self.intake.forget_parked()
        return out


def session(session_id: str = "S1") -> ev.Event:
    return ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1), payload={
        "session_id": session_id, "activity_id": "A1", "agency_id": "pemkot-makassar", "starts_at": START,
        "checkin_closes_at": START + timedelta(minutes=30), "ends_at": START + timedelta(hours=3),
        "blueprint_id": "mansoskul-only", "purpose": "mapping"})


def scheduled(nip: str, session_id: str = "S1") -> ev.Event:
    return ev.new_event(ev.ParticipantScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                        payload={"session_id": session_id, "nip": nip, "name": "Dewi",
                                 "position_tier": "administrator"})


def checkin(nip: str, session_id: str = "S1", minutes: float = 5) -> ev.Event:
    return ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-iv", occurred_at=START + timedelta(minutes=minutes),
                        payload={"session_id": session_id, "nip": nip})


def deadletters(out: list[ev.Event]) -> list[ev.DeadLettered]:
    return [e for e in out if isinstance(e, ev.DeadLettered)]


HOSTILE: list[tuple[str, Any, Any, Any, str]] = [
    # (what, value, key, record timestamp, expected reason)
    ("no value (tombstone)", None, b"S1", 1.8e9, Reason.BAD_JSON),
    ("empty value", b"", b"S1", 1.8e9, Reason.BAD_JSON),
    ("random bytes", bytes(random.Random(1).randrange(256) for _ in range(300)), None, 1.8e9, Reason.BAD_JSON),
    ("invalid utf-8", b'{"event_type": "\xff\xfe"}', b"S1", 1.8e9, Reason.BAD_JSON),
    ("truncated json", session().to_bytes()[:57], b"S1", 1.8e9, Reason.BAD_JSON),
    ("not an object", b"[1, 2, 3]", b"S1", 1.8e9, Reason.NOT_AN_OBJECT),
    ("deeply nested", b"[" * 5000 + b"]" * 5000, b"S1", 1.8e9, Reason.BAD_JSON),
    ("800 kB string", orjson.dumps({"event_type": "x" * 800_000}), b"S1", 1.8e9, Reason.UNKNOWN_EVENT_TYPE),
    ("over the size limit", b'{"a": "' + b"y" * 1_100_000 + b'"}', b"S1", 1.8e9, Reason.TOO_LARGE),
    ("year 82269 record timestamp", b"{}", b"S1", 2_533_000_000_000.0, Reason.UNKNOWN_EVENT_TYPE),
    ("negative record timestamp", b"{}", b"S1", -1e12, Reason.UNKNOWN_EVENT_TYPE),
    ("year 0 record timestamp", b"{}", b"S1", -62_135_596_800.0 - 86_400, Reason.UNKNOWN_EVENT_TYPE),
    ("NaN record timestamp", b"{}", b"S1", float("nan"), Reason.UNKNOWN_EVENT_TYPE),
    ("no record timestamp", b"{}", b"S1", None, Reason.UNKNOWN_EVENT_TYPE),
    ("10 kB binary key", b"{}", bytes(range(256)) * 40, 1.8e9, Reason.UNKNOWN_EVENT_TYPE),
    ("schedule event on the lab topic", session().to_bytes(), b"S1", 1.8e9, Reason.WRONG_TOPIC),
]


@pytest.mark.parametrize(("what", "value", "key", "timestamp", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_every_hostile_record_gets_exactly_one_bounded_dead_letter(registry: BlueprintRegistry, what: str, value: Any,
                                                                   key: Any, timestamp: Any, reason: str) -> None:
    worker = Worker(registry)
    worker.feed(value, key=key, timestamp=timestamp)
    out = worker.commit()
    [letter] = deadletters(out)
    assert len(out) == 1
    p = letter.payload
    assert p.reason == reason
    assert (p.source_topic, p.source_partition, p.source_offset) == (LAB, 0, 0)
    raw = value or b""
    assert p.value_bytes == len(raw) and p.value_sha256 == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(p.value_b64) == raw[:4096] and p.value_truncated == (len(raw) > 4096)
    assert len(letter.to_bytes()) < 8_000, "a dead letter stays far below the producer's message limit"
    assert abs(letter.occurred_at.year - datetime.now(UTC).year) <= 75  # never the broken record clock's year
    # and it decodes as the sink decodes it
    assert ev.DeadLettered.model_validate_json(letter.to_bytes()) == letter


def test_a_batch_of_good_and_bad_events_keeps_the_good_ones(registry: BlueprintRegistry) -> None:
    worker = Worker(registry)
    worker.feed(session().to_bytes(), topic=SCHEDULE)
    worker.feed(scheduled(NIPS[0]).to_bytes(), topic=SCHEDULE)
    batch = ev.new_event(ev.EventBatch, lab_id="kanreg-iv", occurred_at=START, payload={
        "session_id": "S1", "events": [orjson.loads(checkin(NIPS[0]).to_bytes()), {"event_type": "Nope"},
                                       {**orjson.loads(checkin(NIPS[1]).to_bytes()), "occurred_at": "yesterday"}]})
    worker.feed(batch.to_bytes())
    out = worker.commit()
    [letter] = deadletters(out)
    assert letter.payload.source_offset == 2
    assert "events[1]" in letter.payload.detail and "events[2]" in letter.payload.detail
    attendance = [e for e in out if isinstance(e, ev.AttendanceChanged) and e.payload.status == "checked_in"]
    assert [a.payload.nip for a in attendance] == [NIPS[0]]


class BreaksOnSecondCheckin(SessionProcessor):
    """A processor with a bug one event triggers, after it has already changed that session's state."""

    def handle(self, event: ev.Event) -> list[ev.Event]:
        out = super().handle(event)
        if isinstance(event, ev.ParticipantCheckedIn) and event.payload.nip == NIPS[1]:
            self.sessions[event.payload.session_id]["max_at"] = "2099-01-01T00:00:00+00:00"  # the half-applied change
            raise ZeroDivisionError("a bug")
        return out


def test_an_event_that_breaks_the_processor_is_parked_and_leaves_no_trace(registry: BlueprintRegistry) -> None:
    clean, buggy = Worker(registry), Worker(registry, processor_cls=BreaksOnSecondCheckin)
    schedule = [session().to_bytes()] + [scheduled(nip).to_bytes() for nip in NIPS[:3]]
    lab_day = [checkin(NIPS[0]).to_bytes(), checkin(NIPS[1]).to_bytes(), checkin(NIPS[2], minutes=6).to_bytes()]
    for worker in (clean, buggy):
        for value in schedule:
            worker.feed(value, topic=SCHEDULE)
        worker.commit()
        for value in lab_day:
            if worker is clean and value is lab_day[1]:
                worker.offset += 1  # the clean run never sees the poisoned event
            else:
                worker.feed(value)
    clean_out, buggy_out = clean.commit(), buggy.commit()
    [letter] = deadletters(buggy_out)
    assert letter.payload.reason == Reason.PROCESSING_ERROR and "ZeroDivisionError" in letter.payload.detail
    assert letter.payload.source_offset == 5
    assert [e.event_id for e in buggy_out if e is not letter] == [e.event_id for e in clean_out]
    assert buggy.sessions == clean.sessions and buggy.participants == clean.participants


def test_unscheduled_sessions_are_capped_and_the_rest_dead_lettered(registry: BlueprintRegistry) -> None:
    worker = Worker(registry, limits=StateLimits(unscheduled_sessions=5, unexpected_participants=3))
    for i in range(12):
        worker.feed(checkin(NIPS[0], session_id=f"GHOST-{i}").to_bytes(), key=f"GHOST-{i}".encode())
    out = worker.commit()
    refused = deadletters(out)
    assert [d.payload.source_offset for d in refused] == list(range(5, 12))
    assert {d.payload.reason for d in refused} == {Reason.STATE_LIMIT}
    kept = {k for k in worker.sessions if k.startswith("GHOST-")}
    assert kept == {f"GHOST-{i}" for i in range(5)}
    # a session that gets its schedule leaves the count, so the next unknown one is kept
    worker.feed(session("GHOST-0").to_bytes(), topic=SCHEDULE, key=b"GHOST-0")
    worker.feed(checkin(NIPS[0], session_id="GHOST-99").to_bytes(), key=b"GHOST-99")
    assert not deadletters(worker.commit())
    assert "GHOST-99" in worker.sessions


def test_unexpected_participants_of_a_session_are_capped(registry: BlueprintRegistry) -> None:
    worker = Worker(registry, limits=StateLimits(unscheduled_sessions=5, unexpected_participants=3))
    worker.feed(session().to_bytes(), topic=SCHEDULE)
    worker.feed(scheduled(NIPS[0]).to_bytes(), topic=SCHEDULE)
    for nip in NIPS:
        worker.feed(checkin(nip).to_bytes())
    out = worker.commit()
    assert [d.payload.source_offset for d in deadletters(out)] == [6, 7, 8, 9, 10]  # NIPS[4:] refused
    assert len(worker.sessions["S1"]["nips"]) == 4
    # the scheduled participant was never counted against the cap, and scheduling a late one frees a slot
    worker.feed(scheduled(NIPS[1]).to_bytes(), topic=SCHEDULE)
    worker.feed(checkin(NIPS[8]).to_bytes())
    assert not deadletters(worker.commit())
    assert NIPS[8] in worker.sessions["S1"]["nips"]


def test_fuzzed_bytes_never_raise(registry: BlueprintRegistry) -> None:
    """Mutations of valid events (flipped, cut, spliced bytes): one outcome per record, never an exception."""
    rng = random.Random(12)
    valid = [(session().to_bytes(), SCHEDULE), (scheduled(NIPS[0]).to_bytes(), SCHEDULE),
             (checkin(NIPS[0]).to_bytes(), LAB)]
    worker = Worker(registry)
    for _n in range(600):
        template, topic = rng.choice(valid)
        raw = bytearray(template)
        for _ in range(rng.randrange(0, 6)):
            i = rng.randrange(len(raw))
            op = rng.randrange(3)
            if op == 0:
                raw[i] = rng.randrange(256)
            elif op == 1:
                del raw[i:i + rng.randrange(1, 20)]
            else:
                raw[i:i] = rng.choice(valid)[0][: rng.randrange(1, 40)]
        worker.feed(bytes(raw), topic=topic if rng.random() < 0.8 else rng.choice([LAB, SCHEDULE]),
                    key=b"S1" if rng.random() < 0.8 else rng.choice([None, b"", b"\x00" * 9]),
                    timestamp=rng.choice([None, -5.0, 1.8e9, 9e15]))
    accepted = list(worker.chunk.accepted)
    letters = deadletters(worker.commit())
    assert len({d.payload.source_offset for d in letters}) == len(letters)  # one per record at most
    assert len(letters) + len(accepted) == 600  # every record: accepted, or answered by its dead letter
    assert 0 < len(accepted) < len(letters)


def test_a_held_event_refused_when_its_schedule_arrives_is_dead_lettered_at_its_own_position(
        registry: BlueprintRegistry) -> None:
    """Judged late, dead-lettered all the same: at the lab record's position, counted with its reason."""
    worker = Worker(registry)
    hosted = ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                          payload={**session().payload.model_dump(mode="json"), "lab_id": "kanreg-iv"})
    forged = ev.new_event(ev.ParticipantCheckedIn, lab_id="lab-elsewhere", occurred_at=START,
                          payload={"session_id": "S1", "nip": NIPS[1]})
    worker.feed(checkin(NIPS[0]).to_bytes())  # offset 0: the host's, held
    worker.feed(ev.new_event(ev.EventBatch, lab_id="lab-elsewhere", occurred_at=START, payload={
        "session_id": "S1", "events": [orjson.loads(forged.to_bytes())]}).to_bytes())  # offset 1, index 0
    assert worker.commit() == []
    worker.feed(hosted.to_bytes(), topic=SCHEDULE)
    worker.feed(scheduled(NIPS[0]).to_bytes(), topic=SCHEDULE)
    counted = list(worker.chunk.deadletters)
    out = worker.commit()
    [letter] = deadletters(out)
    assert (letter.payload.reason, letter.payload.source_topic, letter.payload.source_offset) == (
        Reason.WRONG_LAB, LAB, 1)
    assert letter.payload.detail.startswith("events[0]: held until the schedule arrived")
    assert orjson.loads(base64.b64decode(letter.payload.value_b64))["event_id"] == str(forged.event_id)
    assert counted == [(Reason.WRONG_LAB, LAB)]
    assert [e.payload.status for e in out if isinstance(e, ev.AttendanceChanged)][-1] == "checked_in"
