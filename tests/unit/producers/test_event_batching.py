"""``producers.batching``: a session's events packed into EventBatch messages that the worker unpacks unchanged."""

from __future__ import annotations

import orjson
import pytest

from producers.batching import batch_events
from producers.simulator import SimConfig, build_day
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event, unpack


@pytest.fixture(scope="module")
def day_events() -> list[dict]:
    day = build_day(SimConfig(participants=60, seats=30, malformed=0, seed=5), BlueprintRegistry.from_dir())
    return [orjson.loads(e.to_bytes()) for e in day.schedule + day.lab]


def unpack_all(messages: list[tuple[str, str, bytes]]) -> list[tuple[str, str, dict]]:
    out = []
    for topic, key, raw in messages:
        for _index, e in unpack(decode_event(raw, topic=topic), topic=topic):
            assert not isinstance(e, Rejected), e
            out.append((topic, key, orjson.loads(e.to_bytes())))
    return out


def test_every_event_arrives_once_on_its_topic_keyed_by_its_session_and_in_order(day_events: list[dict]) -> None:
    messages = list(batch_events(day_events, max_events=25))
    assert len(messages) < len(day_events) / 10
    got = unpack_all(messages)
    assert sorted(e["event_id"] for _, _, e in got) == sorted(e["event_id"] for e in day_events)
    for topic, key, e in got:
        assert key == e["payload"].get("session_id", e["payload"].get("from_session_id"))
        assert topic == ("cact.lab.v1" if e["event_type"] in {"ParticipantCheckedIn", "SectionStarted", "AnswersSaved",
                                                             "SectionSubmitted", "SessionClosed"}
                         else "cact.schedule.v1")
    sent_at = {e["event_id"]: n for n, e in enumerate(day_events)}
    for route in {(t, k) for t, k, _ in got}:  # each session's events on each topic keep the order given
        order = [sent_at[e["event_id"]] for t, k, e in got if (t, k) == route]
        assert order == sorted(order)


def test_batches_respect_the_event_and_byte_limits(day_events: list[dict]) -> None:
    for _topic, _key, raw in batch_events(day_events, max_events=7, max_bytes=20_000):
        events = orjson.loads(raw)["payload"]["events"]
        assert 1 <= len(events) <= 7
        assert len(raw) < 20_000 + max(len(orjson.dumps(e)) for e in events) + 1_000


def test_max_events_stays_within_the_contract() -> None:
    with pytest.raises(ValueError):
        list(batch_events([], max_events=1001))
