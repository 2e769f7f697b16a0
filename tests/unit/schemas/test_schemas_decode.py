"""``decode_event``: what the worker and the lab emitter accept, and the reason code for what they refuse.

Reason codes are contract (operators and lab vendors filter the dead-letter topic by them), so each one that
decoding can produce is pinned to an input that produces it. Round trips cover every input event type: a type
that cannot survive ``to_bytes`` → ``decode_event`` would be dead-lettered on its first real message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest

from schemas import events as ev
from schemas.decode import Rejected, decode_event
from schemas.reasons import Reason

WIB = timezone(timedelta(hours=7), "WIB")
WITA = timezone(timedelta(hours=8), "WITA")
WIT = timezone(timedelta(hours=9), "WIT")
NIP = "199001012015031001"
SESSION = "S20261103-004"
AT = datetime(2026, 11, 3, 7, 52, 10, tzinfo=WITA)

#: A contract-valid payload for every input event type.
PAYLOADS: dict[type[ev.Event], dict[str, Any]] = {
    ev.SessionScheduled: {
        "session_id": SESSION, "activity_id": "ACT-2026-11-KEMENKEU", "agency_id": "AG-KEMENKEU",
        "agency_name": "Kementerian Keuangan", "starts_at": datetime(2026, 11, 3, 8, 0, tzinfo=WITA),
        "checkin_closes_at": datetime(2026, 11, 3, 8, 30, tzinfo=WITA),
        "ends_at": datetime(2026, 11, 3, 12, 30, tzinfo=WITA), "blueprint_id": "cact-full", "purpose": "mapping",
        "seats": 40},
    ev.ParticipantScheduled: {"session_id": SESSION, "nip": NIP, "name": "Andi Pratama",
                              "position_tier": "administrator", "standard_levels": {"M1": 4}},
    ev.ParticipantRescheduled: {"nip": NIP, "from_session_id": SESSION, "to_session_id": "S20261110-002",
                                "reason": "official travel"},
    ev.ParticipantUnscheduled: {"session_id": SESSION, "nip": NIP, "reason": "on leave"},
    ev.RescoreRequested: {"session_id": SESSION, "activity_id": "ACT-2026-11-KEMENKEU", "blueprint_id": "cact-full",
                          "blueprint_version": "2026.2"},
    ev.ParticipantCheckedIn: {"session_id": SESSION, "nip": NIP, "seat": "B-12"},
    ev.SectionStarted: {"session_id": SESSION, "nip": NIP, "section": "mansoskul"},
    ev.AnswersSaved: {"session_id": SESSION, "nip": NIP, "section": "mansoskul",
                      "answers": [{"item_id": "MSK-M1-001", "option": "D"}, {"item_id": "MSK-M1-002", "option": None}]},
    ev.SectionSubmitted: {"session_id": SESSION, "nip": NIP, "section": "digital_literacy", "completion": "timed_out",
                          "answers": [{"item_id": "DL-01-001", "option": "A"}]},
    ev.SessionClosed: {"session_id": SESSION},
    ev.CheckinWindowClosed: {"session_id": SESSION},
    ev.EventBatch: {"session_id": SESSION, "events": [
        {"event_id": "3f0b8c1e-5a4d-4e8b-9c1f-0a2b3c4d5e6f", "event_type": "ParticipantCheckedIn", "schema_version": 1,
         "occurred_at": "2026-11-03T07:52:10+08:00", "lab_id": "kanreg-iv-makassar",
         "payload": {"session_id": SESSION, "nip": NIP, "seat": "B-12"}}]},
}
INPUT_EVENTS: tuple[type[ev.Event], ...] = get_args(ev.InputEvent)


def build(cls: type[ev.Event], *, at: datetime = AT, **payload: Any) -> ev.Event:
    return ev.new_event(cls, lab_id="kanreg-iv-makassar", occurred_at=at, payload={**PAYLOADS[cls], **payload})


def checked_in() -> ev.Event:
    return build(ev.ParticipantCheckedIn)


def tampered(event: ev.Event, **changes: Any) -> bytes:
    """The event's JSON with fields replaced; ``payload__nip`` reaches into the payload."""
    data = json.loads(event.to_bytes())
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return json.dumps(data).encode()


def rejection(raw: bytes | str, *, topic: str | None = None) -> Rejected:
    with pytest.raises(Rejected) as exc:
        decode_event(raw, topic=topic)
    return exc.value


# --------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------


def test_every_input_event_type_has_an_example_payload() -> None:
    assert set(INPUT_EVENTS) == set(ev.SCHEDULE_EVENTS + ev.LAB_EVENTS + ev.CONTROL_EVENTS) == set(PAYLOADS)


@pytest.mark.parametrize("cls", INPUT_EVENTS, ids=lambda c: c.__name__)
def test_round_trip_of_each_input_event(cls: type[ev.Event]) -> None:
    event = build(cls)
    back = decode_event(event.to_bytes(), topic=cls.topic.name)
    assert type(back) is cls
    assert back == event
    assert back.to_bytes() == event.to_bytes()
    assert back.key() == str(PAYLOADS[cls][cls.key_field])


@pytest.mark.parametrize("cls", INPUT_EVENTS, ids=lambda c: c.__name__)
def test_round_trip_from_str_and_without_a_topic(cls: type[ev.Event]) -> None:
    """The emitter validates without knowing the topic; str and bytes are both accepted."""
    event = build(cls)
    assert decode_event(event.to_bytes().decode()) == event


def test_reschedule_is_keyed_by_the_session_it_leaves() -> None:
    assert build(ev.ParticipantRescheduled).key() == SESSION


@pytest.mark.parametrize("tz", [WIB, WITA, WIT, UTC], ids=str)
def test_occurred_at_keeps_the_labs_offset(tz: timezone) -> None:
    at = datetime(2026, 11, 3, 7, 52, 10, tzinfo=tz)
    back = decode_event(build(ev.ParticipantCheckedIn, at=at).to_bytes())
    assert back.occurred_at == at
    assert back.occurred_at.utcoffset() == tz.utcoffset(None)


def test_wita_offset_is_on_the_wire_and_survives_decoding() -> None:
    raw = checked_in().to_bytes()
    assert b'"occurred_at":"2026-11-03T07:52:10+08:00"' in raw
    back = decode_event(raw)
    assert back.occurred_at.utcoffset() == timedelta(hours=8)
    assert back.occurred_at.isoformat() == "2026-11-03T07:52:10+08:00"


def test_payload_times_keep_their_offset() -> None:
    back = decode_event(build(ev.SessionScheduled).to_bytes())
    assert isinstance(back, ev.SessionScheduled)
    assert back.payload.starts_at.isoformat() == "2026-11-03T08:00:00+08:00"


def test_schema_version_defaults_to_1_when_omitted() -> None:
    data = json.loads(checked_in().to_bytes())
    del data["schema_version"]
    assert decode_event(json.dumps(data)).schema_version == 1


# --------------------------------------------------------------------------------------------------
# Reason codes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"event_type": ', b"", b"not json", b"\xff\xfe", b'{"a": 1} trailing'])
def test_bad_json(raw: bytes) -> None:
    assert rejection(raw).reason == Reason.BAD_JSON


@pytest.mark.parametrize("raw", [b"[1, 2]", b"[]", b'"ParticipantCheckedIn"', b"42", b"null", b"true"])
def test_not_an_object(raw: bytes) -> None:
    assert rejection(raw).reason == Reason.NOT_AN_OBJECT


def test_an_array_of_valid_events_is_not_an_object() -> None:
    """Batching events in one message is a contract violation, however valid each event is."""
    batch = b"[" + checked_in().to_bytes() + b"]"
    assert rejection(batch).reason == Reason.NOT_AN_OBJECT


@pytest.mark.parametrize("event_type", ["ParticipantTeleported", "participantcheckedin", "", None, 7, "Event"])
def test_unknown_event_type(event_type: object) -> None:
    exc = rejection(tampered(checked_in(), event_type=event_type))
    assert exc.reason == Reason.UNKNOWN_EVENT_TYPE


def test_missing_event_type_is_unknown() -> None:
    data = json.loads(checked_in().to_bytes())
    del data["event_type"]
    assert rejection(json.dumps(data)).reason == Reason.UNKNOWN_EVENT_TYPE


def test_unknown_event_type_detail_is_truncated() -> None:
    """The detail goes to the dead-letter topic and operator pages: a huge value must not come along."""
    exc = rejection(tampered(checked_in(), event_type="X" * 10_000))
    assert len(exc.detail) < 200


@pytest.mark.parametrize("event_type", [["ParticipantCheckedIn"], {"name": "ParticipantCheckedIn"}])
def test_unhashable_event_type_is_unknown(event_type: object) -> None:
    assert rejection(tampered(checked_in(), event_type=event_type)).reason == Reason.UNKNOWN_EVENT_TYPE


@pytest.mark.parametrize("version", [2, 0, "1", None, 1.5])
def test_unsupported_schema_version(version: object) -> None:
    exc = rejection(tampered(checked_in(), schema_version=version))
    assert exc.reason == Reason.UNSUPPORTED_SCHEMA_VERSION
    assert "1" in exc.detail


@pytest.mark.parametrize("nip", ["199013012015031001", "19900101201503100A", "12345", "199001012015033001",
                                 199001012015031001])
def test_invalid_nip(nip: object) -> None:
    exc = rejection(tampered(checked_in(), payload__nip=nip))
    assert exc.reason == Reason.INVALID_NIP
    assert exc.detail.startswith("payload.nip")


@pytest.mark.parametrize("cls", [c for c in INPUT_EVENTS if "nip" in PAYLOADS[c]], ids=lambda c: c.__name__)
def test_invalid_nip_in_every_event_that_carries_one(cls: type[ev.Event]) -> None:
    exc = rejection(tampered(build(cls), payload__nip="199002302015031001"))
    assert exc.reason == Reason.INVALID_NIP


def test_invalid_nip_wins_over_other_field_errors() -> None:
    """An operator filtering on invalid_nip sees every bad NIP, even in an otherwise broken event."""
    raw = tampered(checked_in(), payload__nip="199013012015031001", payload__seat=12, lab_id="")
    assert rejection(raw).reason == Reason.INVALID_NIP


def test_rejection_detail_never_contains_the_nip() -> None:
    """Details are logged and shown to operators: NIPs are personal data (domain.md §6)."""
    bad_nip = "199013012015031001"
    for raw in (tampered(checked_in(), payload__nip=bad_nip),
                tampered(checked_in(), payload__nip=bad_nip, payload__seat=12),
                tampered(checked_in(), payload__seat={"nip": NIP})):
        detail = rejection(raw).detail
        assert bad_nip not in detail and NIP not in detail


@pytest.mark.parametrize(("changes", "where"), [
    ({"payload__session_id": 17}, "payload.session_id"),               # wrong type
    ({"payload__seat": ["B", 12]}, "payload.seat"),                    # wrong type
    ({"event_id": "not-a-uuid"}, "event_id"),
    ({"lab_id": ""}, "lab_id"),                                         # too short
    ({"payload__session_id": "has space"}, "payload.session_id"),       # pattern
    ({"payload__extra": 1}, "payload.extra"),                           # unknown fields are rejected
    ({"surprise": True}, "surprise"),
    ({"payload": None}, "payload"),
])
def test_invalid_field(changes: dict[str, Any], where: str) -> None:
    exc = rejection(tampered(checked_in(), **changes))
    assert exc.reason == Reason.INVALID_FIELD
    assert exc.detail.startswith(where)


def test_missing_required_field() -> None:
    data = json.loads(checked_in().to_bytes())
    del data["payload"]["session_id"]
    exc = rejection(json.dumps(data))
    assert (exc.reason, exc.detail.split(":")[0]) == (Reason.INVALID_FIELD, "payload.session_id")


@pytest.mark.parametrize("naive", ["2026-11-03T07:52:10", "2026-11-03 07:52:10", "2026-11-03"])
def test_occurred_at_without_an_offset_is_rejected(naive: str) -> None:
    """Windows close by event time across three time zones: a time without its offset is ambiguous."""
    exc = rejection(tampered(checked_in(), occurred_at=naive))
    assert exc.reason == Reason.INVALID_FIELD
    assert exc.detail.startswith("occurred_at")


def test_payload_time_without_an_offset_is_rejected() -> None:
    exc = rejection(tampered(build(ev.SessionScheduled), payload__checkin_closes_at="2026-11-03T08:30:00"))
    assert (exc.reason, exc.detail.split(":")[0]) == (Reason.INVALID_FIELD, "payload.checkin_closes_at")


def test_cross_field_rule_is_an_invalid_field() -> None:
    raw = tampered(build(ev.SessionScheduled), payload__checkin_closes_at="2026-11-03T13:00:00+08:00")
    assert rejection(raw).reason == Reason.INVALID_FIELD


def test_detail_counts_the_other_errors() -> None:
    exc = rejection(tampered(checked_in(), payload__session_id=17, payload__seat=12, lab_id=""))
    assert exc.reason == Reason.INVALID_FIELD
    assert "(+2 more)" in exc.detail


@pytest.mark.parametrize("cls", [c for c in INPUT_EVENTS if c is not ev.EventBatch], ids=lambda c: c.__name__)
def test_wrong_topic(cls: type[ev.Event]) -> None:
    other = next(t for t in ("cact.schedule.v1", "cact.lab.v1") if t != cls.topic.name)
    exc = rejection(build(cls).to_bytes(), topic=other)
    assert exc.reason == Reason.WRONG_TOPIC
    assert cls.topic.name in exc.detail


def test_output_event_on_an_input_topic_is_wrong_topic() -> None:
    dead = ev.new_event(ev.DeadLettered, lab_id="cact-pipeline", occurred_at=AT, payload={
        "reason": Reason.BAD_JSON, "detail": "x", "source_topic": "cact.lab.v1", "source_partition": 0,
        "source_offset": 1, "key_b64": None, "value_b64": "e30="})
    assert rejection(dead.to_bytes(), topic="cact.lab.v1").reason == Reason.WRONG_TOPIC


def test_wrong_topic_is_decided_before_field_validation() -> None:
    """A misrouted event is reported as misrouted even when its fields are broken too."""
    raw = tampered(checked_in(), payload__session_id=17)
    assert rejection(raw, topic="cact.schedule.v1").reason == Reason.WRONG_TOPIC


def test_reason_codes_are_stable_unique_strings() -> None:
    assert len(set(Reason.ALL)) == len(Reason.ALL)
    assert {Reason.BAD_JSON, Reason.NOT_AN_OBJECT, Reason.UNKNOWN_EVENT_TYPE, Reason.UNSUPPORTED_SCHEMA_VERSION,
            Reason.INVALID_NIP, Reason.INVALID_FIELD, Reason.WRONG_TOPIC} == {
        "bad_json", "not_an_object", "unknown_event_type", "unsupported_schema_version", "invalid_nip",
        "invalid_field", "wrong_topic"}
    assert {"unknown_session", "unknown_blueprint", "unknown_item", "unknown_section",
            "processing_error"} <= set(Reason.ALL)
