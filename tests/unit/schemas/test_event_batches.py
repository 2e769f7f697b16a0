"""``EventBatch``: several events of one session in one message, each validated and rejected on its own.

The worker's cost is per message, so labs may batch a session's events; what must not change is what happens to
each event. These tests pin that: a bad event inside a batch gets the same reason code it would get alone, with
its index, and never takes the batch's other events down with it. The answer lists, validated by hand for speed,
must refuse what the published JSON Schema refuses.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import orjson
import pytest

from schemas import events as ev
from schemas.decode import Rejected, decode_event, unpack
from schemas.export import DEFAULT_DIR
from schemas.reasons import Reason

SESSION = "S20261103-004"
NIP = "199001012015031001"
LAB, SCHEDULE = "cact.lab.v1", "cact.schedule.v1"


def event(event_type: str, n: int = 1, **payload: Any) -> dict[str, Any]:
    return {"event_id": f"3f0b8c1e-5a4d-4e8b-9c1f-{n:012d}", "event_type": event_type, "schema_version": 1,
            "occurred_at": "2026-11-03T07:52:10+08:00", "lab_id": "kanreg-iv-makassar",
            "payload": {"session_id": SESSION, "nip": NIP, **payload}}


def batch(*events: dict[str, Any], session_id: str = SESSION) -> bytes:
    return orjson.dumps({"event_id": "b1d35fdd-a5ab-4ce3-84f5-b0c1d2e3f4a0", "event_type": "EventBatch",
                         "schema_version": 1, "occurred_at": "2026-11-03T07:53:02+08:00",
                         "lab_id": "kanreg-iv-makassar", "payload": {"session_id": session_id, "events": list(events)}})


def unpacked(raw: bytes, topic: str = LAB) -> list[tuple[int | None, ev.Event | Rejected]]:
    return list(unpack(decode_event(raw, topic=topic), topic=topic))


def test_a_plain_event_unpacks_to_itself_without_an_index() -> None:
    raw = orjson.dumps(event("ParticipantCheckedIn"))
    [(index, decoded)] = unpacked(raw)
    assert index is None and isinstance(decoded, ev.ParticipantCheckedIn)


def test_a_batch_yields_its_events_in_order_with_their_index() -> None:
    raw = batch(event("ParticipantCheckedIn", 1), event("SectionStarted", 2, section="mansoskul"),
                event("AnswersSaved", 3, section="mansoskul", answers=[{"item_id": "MSK-M1-001", "option": "D"}]))
    got = unpacked(raw)
    assert [i for i, _ in got] == [0, 1, 2]
    assert [type(e) for _, e in got] == [ev.ParticipantCheckedIn, ev.SectionStarted, ev.AnswersSaved]
    assert got[2][1].payload.answers == [{"item_id": "MSK-M1-001", "option": "D"}]


def test_a_bad_event_is_rejected_alone_with_its_index_and_its_usual_reason() -> None:
    raw = batch(event("ParticipantCheckedIn", 1), event("ParticipantCheckedIn", 2, nip="12345"),
                event("ParticipantTeleported", 3), event("ParticipantCheckedIn", 4))
    got = unpacked(raw)
    assert isinstance(got[0][1], ev.ParticipantCheckedIn) and isinstance(got[3][1], ev.ParticipantCheckedIn)
    assert isinstance(got[1][1], Rejected) and got[1][1].reason == Reason.INVALID_NIP
    assert got[1][1].detail.startswith("events[1]: ")
    assert isinstance(got[2][1], Rejected) and got[2][1].reason == Reason.UNKNOWN_EVENT_TYPE
    assert got[2][1].detail.startswith("events[2]: ")


def test_events_must_belong_to_the_batch_topic_and_session() -> None:
    scheduled = {**event("ParticipantScheduled", 1, name="Dewi", position_tier="administrator")}
    other_session = event("ParticipantCheckedIn", 2)
    other_session["payload"]["session_id"] = "S20261103-005"
    nested = json.loads(batch(event("ParticipantCheckedIn", 3)))
    got = unpacked(batch(scheduled, other_session, nested))
    assert [e.reason for _, e in got if isinstance(e, Rejected)] == [
        Reason.WRONG_TOPIC, Reason.INVALID_FIELD, Reason.INVALID_FIELD]
    assert "not the batch's session" in got[1][1].detail and "another EventBatch" in got[2][1].detail


def test_a_batch_is_accepted_on_both_input_topics_and_carries_that_topic_only() -> None:
    scheduled = event("ParticipantScheduled", 1, name="Dewi", position_tier="administrator")
    [(_, decoded)] = unpacked(batch(scheduled), topic=SCHEDULE)
    assert isinstance(decoded, ev.ParticipantScheduled)
    with pytest.raises(Rejected) as exc:
        decode_event(batch(scheduled), topic="cact.results.v1")
    assert exc.value.reason == Reason.WRONG_TOPIC


def test_an_empty_or_oversized_batch_is_invalid() -> None:
    for events in ([], [event("ParticipantCheckedIn", i) for i in range(1001)]):
        with pytest.raises(Rejected) as exc:
            decode_event(batch(*events), topic=LAB)
        assert exc.value.reason == Reason.INVALID_FIELD


BAD_ANSWER_LISTS = [
    [{"item_id": "MSK-M1-001"}],  # option missing (null must be explicit)
    [{"item_id": "MSK-M1-001", "option": "A", "extra": 1}],
    [{"item_id": "", "option": "A"}],
    [{"item_id": "x" * 65, "option": "A"}],
    [{"item_id": 7, "option": "A"}],
    [{"item_id": "MSK-M1-001", "option": "ABCDEFGHI"}],
    [{"item_id": "MSK-M1-001", "option": 3}],
    ["MSK-M1-001"],
    [{"item_id": "MSK-M1-001", "option": "A"}] * 1001,
]


@pytest.mark.parametrize("answers", BAD_ANSWER_LISTS, ids=range(len(BAD_ANSWER_LISTS)))
def test_answer_lists_are_refused_exactly_where_the_json_schema_refuses_them(answers: list[Any]) -> None:
    data = event("SectionSubmitted", section="mansoskul", completion="submitted", answers=answers)
    schema = json.loads((DEFAULT_DIR / "SectionSubmitted.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    with pytest.raises(Rejected) as exc:
        decode_event(orjson.dumps(data))
    assert exc.value.reason == Reason.INVALID_FIELD
    assert "answers" in exc.value.detail


def test_a_valid_answer_list_passes_both_and_keeps_blanks() -> None:
    answers = [{"item_id": "MSK-M1-001", "option": "A"}, {"item_id": "MSK-M1-002", "option": None}]
    data = event("SectionSubmitted", section="mansoskul", completion="submitted", answers=answers)
    jsonschema.validate(data, json.loads((DEFAULT_DIR / "SectionSubmitted.json").read_text()))
    decoded = decode_event(orjson.dumps(data))
    assert decoded.payload.answers == answers
    assert json.loads(decoded.to_bytes())["payload"]["answers"] == answers


def test_an_autosave_needs_at_least_one_answer() -> None:
    with pytest.raises(Rejected) as exc:
        decode_event(orjson.dumps(event("AnswersSaved", section="mansoskul", answers=[])))
    assert exc.value.reason == Reason.INVALID_FIELD
