"""No message larger than CACT_MAX_MESSAGE_BYTES leaves a lab: the emitter refuses it with ``too_large`` before
spooling, and splits the autosave batches and EventBatch messages it builds itself so that none is too large.

No broker: the emitter points at a port nothing listens on; what matters is what reaches the spool.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from producers.batching import batch_events
from producers.emitter import InvalidEvent, LabEmitter
from producers.spool import spool_status
from schemas import events as ev
from schemas.decode import decode_event, unpack
from schemas.reasons import Reason
from schemas.settings import Settings
from streams.broker import free_port

WIB = timezone(timedelta(hours=7))
AT = datetime(2026, 11, 3, 9, 0, tzinfo=WIB)
NIP = "199001012015031001"
LIMIT = 2048


def spooled(path: Path) -> list[bytes]:
    with sqlite3.connect(path) as db:
        return [v for (v,) in db.execute("SELECT value FROM events ORDER BY seq")]


@pytest.fixture
def emitter(tmp_path: Path) -> Iterator[LabEmitter]:
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", lab_spool_path=tmp_path / "s.db",
                        lab_id="kanreg-v", max_message_bytes=LIMIT, lab_autosave_batch=200,
                        lab_autosave_seconds=600)
    e = LabEmitter(settings, bootstrap_timeout_ms=200)
    yield e
    e.close(timeout=0)


def sheet(answers: int, item_len: int = 60) -> ev.Event:
    return ev.new_event(ev.SectionSubmitted, lab_id="kanreg-v", occurred_at=AT, payload={
        "session_id": "S-1", "nip": NIP, "section": "mansoskul", "completion": "submitted",
        "answers": [{"item_id": f"{i:0{item_len}d}", "option": "A"} for i in range(answers)]})


def test_a_message_just_over_the_limit_is_refused_too_large_in_every_way_of_sending(emitter: LabEmitter) -> None:
    fits = next(sheet(n) for n in range(40, 0, -1) if len(sheet(n).to_bytes()) <= LIMIT)
    over = next(sheet(n) for n in range(1, 60) if len(sheet(n).to_bytes()) > LIMIT)
    assert len(over.to_bytes()) - LIMIT < 100  # a near miss, not an absurd case
    for send in (emitter.send, lambda e: emitter.send_all([fits, e]), emitter.check,
                 lambda e: emitter.send(e.to_bytes()), lambda e: emitter.send(orjson.loads(e.to_bytes()))):
        with pytest.raises(InvalidEvent) as refused:
            send(over)
        assert refused.value.reason == Reason.TOO_LARGE
        assert ("CACT_MAX_MESSAGE_BYTES" in str(refused.value)
                and f"{len(over.to_bytes()):,} bytes" in str(refused.value))
    with pytest.raises(InvalidEvent) as raw:
        emitter.send_raw("cact.lab.v1", b"x" * (LIMIT + 1), b"S-1")
    assert raw.value.reason == Reason.TOO_LARGE
    assert spooled(emitter.spool_path) == []  # send_all refused the whole call, the fitting one included
    emitter.send(fits)
    emitter.send_raw("cact.lab.v1", b"x" * LIMIT, b"S-1")  # exactly the limit is allowed
    assert spooled(emitter.spool_path) == [fits.to_bytes(), b"x" * LIMIT]


def test_an_autosave_batch_too_large_for_one_message_is_split_in_order_and_loses_nothing(emitter: LabEmitter) -> None:
    saved = [(f"MSK-{i:03d}-{'x' * 50}", "ABCDE"[i % 5]) for i in range(60)]
    for n, (item, option) in enumerate(saved):
        emitter.autosave("S-1", NIP, "mansoskul", item, option, AT + timedelta(seconds=n))
    emitter.send(sheet(1))  # the participant's submission: their autosaves go first
    *batches, submitted = [decode_event(v) for v in spooled(emitter.spool_path)]
    assert len(batches) > 1 and all(isinstance(b, ev.AnswersSaved) for b in batches)
    assert all(len(b.to_bytes()) <= LIMIT for b in batches)
    got = [(a["item_id"], a["option"]) for b in batches for a in orjson.loads(b.to_bytes())["payload"]["answers"]]
    assert got == saved
    assert [b.occurred_at for b in batches] == sorted(b.occurred_at for b in batches)
    assert batches[-1].occurred_at == AT + timedelta(seconds=59)
    assert isinstance(submitted, ev.SectionSubmitted)


def test_an_autosaved_answer_whose_batch_of_one_cannot_fit_is_refused_at_once(emitter: LabEmitter) -> None:
    # No valid answer is that large at the smallest allowed setting (1024): lower the emitter's own limit.
    emitter.max_message_bytes = 250  # the AnswersSaved of this one answer is 287 bytes
    with pytest.raises(InvalidEvent) as refused:
        emitter.autosave("S-1", NIP, "mansoskul", "MSK-001", "A", AT)
    assert refused.value.reason == Reason.TOO_LARGE
    assert spool_status(emitter.spool_path)["autosave_buffered"] == 0 and spooled(emitter.spool_path) == []


def random_events(rng: random.Random, n: int) -> list[dict]:
    """Events of a few sessions, of very different sizes (a few bytes to several kB of answers)."""
    out = []
    for i in range(n):
        answers = [{"item_id": f"I-{j}-{'y' * rng.randrange(40)}", "option": "A"}
                   for j in range(rng.choice((0, 3, 60)))]
        out.append(orjson.loads(ev.new_event(ev.SectionSubmitted, lab_id="kanreg-v",
                                             occurred_at=AT + timedelta(seconds=i),
                                             payload={"session_id": f"S-{rng.randrange(4)}", "nip": NIP,
                                                      "section": "mansoskul", "completion": "submitted",
                                                      "answers": answers}).to_bytes()))
    return out


@pytest.mark.parametrize("max_bytes", [1500, 4000, 12_000])
def test_event_batches_are_never_larger_than_the_limit_and_keep_each_sessions_order(max_bytes: int) -> None:
    events = random_events(random.Random(max_bytes), 300)
    messages = list(batch_events(events, max_events=50, max_bytes=max_bytes))
    arrived: list[tuple[str, str]] = []
    near = 0
    for topic, key, raw in messages:
        decoded = decode_event(raw, topic=topic)
        if isinstance(decoded, ev.EventBatch):
            assert len(raw) <= max_bytes
            near += len(raw) > max_bytes * 0.8
            arrived.extend((key, str(e.event_id)) for _, e in unpack(decoded, topic=topic))
        else:  # an event that cannot share an envelope within the limit travels as itself
            assert len(orjson.dumps(
                events[[e["event_id"] for e in events].index(str(decoded.event_id))])) > max_bytes - 400
            arrived.append((key, str(decoded.event_id)))
    assert near > 0  # batches are filled up to the limit, not cut early
    assert sorted(eid for _, eid in arrived) == sorted(e["event_id"] for e in events)
    for session in {e["payload"]["session_id"] for e in events}:
        assert [eid for k, eid in arrived if k == session] == [e["event_id"] for e in events
                                                                if e["payload"]["session_id"] == session]


def test_the_default_batch_ceiling_holds_for_a_day_of_large_sheets() -> None:
    big = [{"item_id": f"{uuid.uuid4().hex}{i:030d}", "option": "A"} for i in range(900)]  # ~80 kB a sheet
    events = [orjson.loads(ev.new_event(ev.SectionSubmitted, lab_id="kanreg-v", occurred_at=AT, payload={
        "session_id": "S-1", "nip": NIP, "section": "mansoskul", "completion": "submitted", "answers": big}).to_bytes())
        for _ in range(20)]
    messages = list(batch_events(events))
    assert len(messages) > 2 and max(len(raw) for _, _, raw in messages) <= 512 * 1024 <= Settings().max_message_bytes
