"""The contract's limits (docs/events.md "Limits"): each decision pinned to inputs on both sides of it, and the
published JSON Schemas checked to draw the same line as the decoder where a schema can say it.

Why these limits exist: a value the decoder lets through must be storable and computable downstream. One
``SessionScheduled`` at ``0001-01-01T00:00:00+14:00`` once passed and stopped the results store (issue 12).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pydantic
import pytest

from schemas import events as ev
from schemas.decode import DETAIL_MAX_CHARS, Rejected, decode_event, unpack
from schemas.export import DEFAULT_DIR
from schemas.reasons import Reason

WITA = timezone(timedelta(hours=8))
NIP = "199001012015031001"
SESSION = "S20261103-004"


def checked_in(**payload: Any) -> dict[str, Any]:
    return {"event_id": "3b0f8f0e-6a53-4a4f-9a57-0d1b0f3c2a11", "event_type": "ParticipantCheckedIn",
            "schema_version": 1, "occurred_at": "2026-11-03T07:52:10+08:00", "lab_id": "kanreg-iv-makassar",
            "payload": {"session_id": SESSION, "nip": NIP, "seat": "B-12", **payload}}


def scheduled(**payload: Any) -> dict[str, Any]:
    return {"event_id": "0d6f4b1e-2c3a-4f5e-8a9b-1c2d3e4f5a60", "event_type": "SessionScheduled", "schema_version": 1,
            "occurred_at": "2026-10-20T10:00:00+07:00", "lab_id": "bkn-scheduler",
            "payload": {"session_id": SESSION, "activity_id": "ACT-1", "agency_id": "AG-1", "agency_name": "Kemenkeu",
                        "starts_at": "2026-11-03T08:00:00+08:00", "checkin_closes_at": "2026-11-03T08:30:00+08:00",
                        "ends_at": "2026-11-03T12:30:00+08:00", "blueprint_id": "cact-full", "purpose": "mapping",
                        "seats": 40, **payload}}


def reason(data: Any, **kwargs: Any) -> str:
    raw = data if isinstance(data, (bytes, str)) else json.dumps(data)
    try:
        decode_event(raw, **kwargs)
    except Rejected as exc:
        return exc.reason
    return "accepted"


def schema_accepts(name: str, data: dict[str, Any]) -> bool:
    """The published schema without format assertion: what its ``pattern`` and bounds alone decide."""
    schema = json.loads((DEFAULT_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return not list(jsonschema.Draft202012Validator(schema).iter_errors(data))


# --------------------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------------------

ACCEPTED_TIMES = ["2026-11-03T07:52:10+08:00", "2026-11-03T07:52:10Z", "2026-11-03T07:52:10.123Z",
                  "2026-11-03T07:52:10.123456789+07:00", "2000-01-01T00:00:00+14:00", "2099-12-31T23:59:59-12:00",
                  "2026-11-03T07:52:10-00:00", "2026-11-03T07:52:10+05:45"]
REFUSED_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1999-12-31T23:59:59Z",
                 "2100-01-01T00:00:00Z", "2026-11-03T07:52:10", "2026-11-03 07:52:10+08:00", "2026-11-03t07:52:10z",
                 "2026-11-03T07:52+08:00", "2026-11-03T07:52:10+23:59", "2026-11-03T07:52:10+14:01",
                 "2026-11-03T07:52:10-12:01", "2026-11-03T07:52:10+0800", "2026-11-03T07:52:10+08:00:30",
                 "2026-11-03T07:52:10.1234567890Z", "1762131130", "2026-11-03", "2026-11-03T07:52:10Z\n",
                 "２０２６-11-03T07:52:10Z"]


@pytest.mark.parametrize("at", ACCEPTED_TIMES)
def test_times_in_the_written_form_and_range_are_accepted_and_convert_to_utc(at: str) -> None:
    event = decode_event(json.dumps(dict(checked_in(), occurred_at=at)))
    utc = event.occurred_at.astimezone(UTC)
    assert datetime(1999, 12, 31, 10, tzinfo=UTC) <= utc <= datetime(2100, 1, 1, 12, tzinfo=UTC)
    assert decode_event(event.to_bytes()) == event  # and the form it is written back in passes again
    assert schema_accepts("ParticipantCheckedIn", dict(checked_in(), occurred_at=at))


@pytest.mark.parametrize("at", REFUSED_TIMES)
def test_times_outside_the_form_or_range_are_invalid_fields_in_the_decoder_and_the_schema(at: str) -> None:
    assert reason(dict(checked_in(), occurred_at=at)) == Reason.INVALID_FIELD
    if not at.endswith("\n"):  # Python's and Java's `$` also match before a final newline; ECMA-262's does not
        assert not schema_accepts("ParticipantCheckedIn", dict(checked_in(), occurred_at=at))


@pytest.mark.parametrize("at", [0, 1762131130, 1762131130.5, -1, True, None, ["2026-11-03T07:52:10Z"]])
def test_a_time_is_never_a_number(at: object) -> None:
    """Pydantic alone reads a number as Unix time; the published schema says string."""
    assert reason(dict(checked_in(), occurred_at=at)) == Reason.INVALID_FIELD


@pytest.mark.parametrize("field", ["starts_at", "checkin_closes_at", "ends_at"])
@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
def test_schedule_times_that_overflow_utc_conversion_are_refused(field: str, at: str) -> None:
    """The exact event of issue 12 (all three times at year 1), and each time alone."""
    everything = scheduled(starts_at=at, checkin_closes_at=at, ends_at=at)
    assert reason(everything) == reason(scheduled(**{field: at})) == Reason.INVALID_FIELD
    assert not schema_accepts("SessionScheduled", scheduled(**{field: at}))


def test_impossible_calendar_dates_are_refused() -> None:
    for at in ("2026-02-30T08:00:00+07:00", "2026-11-03T24:00:00+07:00", "2026-12-31T23:59:60Z"):
        assert reason(dict(checked_in(), occurred_at=at)) == Reason.INVALID_FIELD


@pytest.mark.parametrize("at", [datetime(1999, 12, 31, 23, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
                                datetime(2026, 11, 3, tzinfo=timezone(timedelta(hours=15))),
                                datetime(2026, 11, 3, tzinfo=timezone(timedelta(hours=7, seconds=30)))])
def test_events_built_in_python_are_held_to_the_same_bounds(at: datetime) -> None:
    """The emitter and the worker build events from datetimes: they cannot make one the decoder would refuse."""
    with pytest.raises(pydantic.ValidationError):
        ev.new_event(ev.SessionClosed, lab_id="kanreg-iv-makassar", occurred_at=at, payload={"session_id": SESSION})


def test_in_contract_range_tells_a_record_timestamp_worth_keeping() -> None:
    assert ev.in_contract_range(datetime(2026, 11, 3, tzinfo=WITA))
    assert not ev.in_contract_range(datetime(1970, 1, 1, tzinfo=UTC))
    assert not ev.in_contract_range(datetime(2026, 11, 3))  # naive


# --------------------------------------------------------------------------------------------------
# Text, ids, numbers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("event", "field"), [("ParticipantCheckedIn", "seat"), ("SessionScheduled", "agency_name")])
@pytest.mark.parametrize("text", ["B\x0012", "B\x1b[2J", "B\n12", "B\x7f"])
def test_control_characters_in_text_are_refused(event: str, field: str, text: str) -> None:
    data = checked_in(seat=text) if event == "ParticipantCheckedIn" else scheduled(agency_name=text)
    assert reason(data) == Reason.INVALID_FIELD
    assert not schema_accepts(event, data)


def test_free_text_reasons_may_hold_lines_but_no_other_control() -> None:
    base = {"event_id": "c2d4f666-9e3a-4b7c-9d8e-4f5a6b7c8d93", "event_type": "ParticipantUnscheduled",
            "schema_version": 1, "occurred_at": "2026-11-02T16:00:00+07:00", "lab_id": "bkn-scheduler",
            "payload": {"session_id": SESSION, "nip": NIP, "reason": ""}}
    for text, ok in (("on leave\nuntil March\tA", True), ("on leave\x00", False), ("\x07", False)):
        data = json.loads(json.dumps(base))
        data["payload"]["reason"] = text
        assert (reason(data) == "accepted") is ok and schema_accepts("ParticipantUnscheduled", data) is ok


def test_unicode_text_is_kept_as_sent() -> None:
    event = decode_event(json.dumps(scheduled(agency_name="Kementerian Ａｇａｍａ 🙂 Ñ")))
    assert event.payload.agency_name == "Kementerian Ａｇａｍａ 🙂 Ñ"


@pytest.mark.parametrize("session_id", ["Ѕ20261103-004", "S20261103\u2010004", "S20261103-004\u200b", "ｓ1",
                                        "S1\n", "S" * 65, ""])
def test_ids_are_ascii_so_no_lookalike_passes(session_id: str) -> None:
    assert reason(checked_in(session_id=session_id)) == Reason.INVALID_FIELD


@pytest.mark.parametrize("nip", ["１９９００１０１２０１５０３１００１", "١٩٩٠٠١٠١٢٠١٥٠٣١٠٠١",
                                 NIP + "\n", NIP + "\u0301"])
def test_a_nip_is_ascii_digits_only(nip: str) -> None:
    assert reason(checked_in(nip=nip)) == Reason.INVALID_NIP


def test_answers_with_control_characters_are_refused() -> None:
    base = {"event_id": "7d9f1b99-c16d-4eaf-a0b1-7c8d9eafb0c6", "event_type": "AnswersSaved", "schema_version": 1,
            "occurred_at": "2026-11-03T08:12:00+08:00", "lab_id": "kanreg-iv-makassar",
            "payload": {"session_id": SESSION, "nip": NIP, "section": "mansoskul", "answers": []}}
    for answer, ok in (({"item_id": "MSK-M1-001", "option": "D"}, True), ({"item_id": "MSK\x00", "option": "D"}, False),
                       ({"item_id": "MSK-M1-001", "option": "\x1b"}, False),
                       ({"item_id": "MSK-\u202e", "option": "D"}, True)):  # odd but storable: the bank refuses it
        data = json.loads(json.dumps(base))
        data["payload"]["answers"] = [answer]
        assert (reason(data) == "accepted") is ok, answer
        assert schema_accepts("AnswersSaved", data) is ok, answer


@pytest.mark.parametrize("seats", ["9223372036854775807", "18446744073709551616", "1" + "0" * 30, "10001", "0", "-1",
                                   "40.5", "true", '"40"', "1e308"])
def test_seats_are_a_small_json_integer(seats: str) -> None:
    raw = json.dumps(scheduled()).replace('"seats": 40', f'"seats": {seats}')
    assert reason(raw) == Reason.INVALID_FIELD


@pytest.mark.parametrize("level", ["0", "6", "2.5", '"4"', "true", "18446744073709551616"])
def test_standard_levels_are_integers_1_to_5(level: str) -> None:
    data = {"event_id": "5b9e2a44-7c1d-4e8f-9a0b-2d3e4f5a6b71", "event_type": "ParticipantScheduled",
            "schema_version": 1, "occurred_at": "2026-10-20T10:05:00+07:00", "lab_id": "bkn-scheduler",
            "payload": {"session_id": SESSION, "nip": NIP, "name": "Andi", "position_tier": "administrator",
                        "standard_levels": {"M1": 4}}}
    raw = json.dumps(data).replace('{"M1": 4}', f'{{"M1": {level}}}')
    assert reason(raw) == Reason.INVALID_FIELD


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_not_json(literal: str) -> None:
    assert reason(json.dumps(scheduled()).replace('"seats": 40', f'"seats": {literal}')) == Reason.BAD_JSON


def test_output_models_refuse_nan() -> None:
    with pytest.raises(pydantic.ValidationError):
        ev.SubtestScore(score=float("nan"), level=3)


# --------------------------------------------------------------------------------------------------
# Structure, size, key
# --------------------------------------------------------------------------------------------------


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["event_type", "payload", "occurred_at", "x"])
def test_values_nested_just_under_the_parser_limit_are_refused_without_exhausting_the_stack(where: str) -> None:
    data = checked_in()
    data[where] = "DEEP"
    raw = json.dumps(data).replace('"DEEP"', deep(1020))
    assert reason(raw) in (Reason.UNKNOWN_EVENT_TYPE, Reason.INVALID_FIELD)


@pytest.mark.parametrize("field", ["section", "nip", "seat"])
def test_a_deep_value_in_a_choice_field_is_refused(field: str) -> None:
    """An enum's own error message repr()s the value: 1,000 levels deep, that exhausted the stack."""
    data = {"event_id": "6c8e0a88-b05c-4d9e-9fa0-6b7c8d9eafb5", "event_type": "SectionStarted", "schema_version": 1,
            "occurred_at": "2026-11-03T08:02:00+08:00", "lab_id": "kanreg-iv-makassar",
            "payload": {"session_id": SESSION, "nip": NIP, "section": "mansoskul", field: "DEEP"}}
    assert reason(json.dumps(data).replace('"DEEP"', deep(1020))) in (Reason.INVALID_FIELD, Reason.INVALID_NIP)


def test_past_the_parser_limit_is_bad_json() -> None:
    assert reason(deep(1025)) == Reason.BAD_JSON


def test_a_message_above_the_limit_is_too_large_before_it_is_parsed() -> None:
    raw = b"{" + b"x" * 2000  # not JSON either: size is decided first
    assert reason(raw, max_bytes=2000) == Reason.TOO_LARGE
    assert reason(raw[:2000], max_bytes=2000) == Reason.BAD_JSON
    assert reason(json.dumps(checked_in()).encode(), max_bytes=2000) == "accepted"
    assert reason("é" * 1001, max_bytes=2000) == Reason.TOO_LARGE  # bytes, not characters


def test_a_valid_event_with_another_key_is_wrong_key() -> None:
    raw = json.dumps(checked_in()).encode()
    assert reason(raw, key=SESSION.encode()) == "accepted"
    for key in (None, b"", b"S20261103-005", SESSION.lower().encode(), SESSION.encode() + b"\x00", b"\xff" * 10_240):
        assert reason(raw, key=key) == Reason.WRONG_KEY
    assert reason(json.dumps(checked_in(nip="12345")), key=None) == Reason.INVALID_NIP  # content first


def test_a_reschedule_is_keyed_by_the_session_it_leaves() -> None:
    data = {"event_id": "9a1c3e55-8d2f-4a6b-8c7d-3e4f5a6b7c82", "event_type": "ParticipantRescheduled",
            "schema_version": 1, "occurred_at": "2026-11-02T15:30:00+07:00", "lab_id": "bkn-scheduler",
            "payload": {"nip": NIP, "from_session_id": SESSION, "to_session_id": "S2"}}
    assert reason(json.dumps(data), key=SESSION.encode()) == "accepted"
    assert reason(json.dumps(data), key=b"S2") == Reason.WRONG_KEY


def test_an_event_batch_of_non_objects_is_invalid_as_a_whole() -> None:
    batch = {"event_id": "b1d35fdd-a5ab-4ce3-84f5-b0c1d2e3f4a0", "event_type": "EventBatch", "schema_version": 1,
             "occurred_at": "2026-11-03T07:53:02+08:00", "lab_id": "kanreg-iv-makassar",
             "payload": {"session_id": SESSION, "events": [checked_in(), 5]}}
    assert reason(batch, topic="cact.lab.v1") == Reason.INVALID_FIELD
    batch["payload"]["events"] = [checked_in(), dict(checked_in(), event_type="x" * 100)]
    items = [i for _, i in unpack(decode_event(json.dumps(batch), topic="cact.lab.v1"), topic="cact.lab.v1")]
    assert isinstance(items[0], ev.ParticipantCheckedIn) and items[1].reason == Reason.UNKNOWN_EVENT_TYPE


# --------------------------------------------------------------------------------------------------
# Details
# --------------------------------------------------------------------------------------------------


def rejected(data: Any) -> Rejected:
    with pytest.raises(Rejected) as exc:
        decode_event(data if isinstance(data, str) else json.dumps(data))
    return exc.value


def test_a_detail_quoting_hostile_input_is_printable_and_bounded() -> None:
    data = checked_in()
    data["payload"]["\x00\x1b[2J" + "k" * 5000] = 1  # an extra field: its name is quoted in the detail
    detail = rejected(data).detail
    assert len(detail) <= DETAIL_MAX_CHARS and detail.isprintable() and "\\x00\\x1b[2J" in detail


def test_a_nip_quoted_back_from_input_is_masked() -> None:
    data = checked_in()
    data["payload"]["198505122010012002"] = 1
    detail = rejected(data).detail
    assert "198505122010012002" not in detail and "19850512********02" in detail


def test_a_rejected_raised_anywhere_is_made_safe() -> None:
    """The worker's rules raise Rejected quoting item ids and session ids: the same cleaning applies."""
    exc = Rejected(Reason.UNKNOWN_ITEM, "item 'A\x00\ud800' is not in the bank " + "x" * 5000)
    assert exc.detail.isprintable() and len(exc.detail) == DETAIL_MAX_CHARS
    exc.detail.encode("utf-8")


def test_a_dead_letter_detail_is_made_storable() -> None:
    """PostgreSQL refuses NUL in text: whatever text a dead letter is given, it stores."""
    dead = ev.new_event(ev.DeadLettered, lab_id="cact-pipeline", occurred_at=datetime(2026, 11, 3, tzinfo=UTC),
                        payload={"reason": Reason.PROCESSING_ERROR, "detail": "boom \x00\ud800" + "y" * 3000,
                                 "source_topic": "cact.lab.v1", "source_partition": 0, "source_offset": 1,
                                 "key_b64": None, "value_b64": ""})
    assert "\x00" not in dead.payload.detail and len(dead.payload.detail) == 2000
    dead.to_bytes()
