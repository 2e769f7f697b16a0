"""Contract v1: decoding, reason codes, NIP rules, and the generated schemas/doc staying in step."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import jsonschema
import pytest

from schemas import events as ev
from schemas.decode import Reason, Rejected, decode_event
from schemas.export import DEFAULT_DIR, doc_is_stale, event_schema, stale_schemas
from schemas.nip import InvalidNIP, mask_nip, validate_nip

WITA = timezone(timedelta(hours=8))
NIP = "199001012015031001"


def checked_in(**payload: object) -> ev.ParticipantCheckedIn:
    return ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-iv-makassar",
                        occurred_at=datetime(2026, 11, 3, 7, 52, tzinfo=WITA),
                        payload={"session_id": "S1", "nip": NIP, **payload})


def raw(event: ev.Event, **changes: object) -> bytes:
    data = json.loads(event.to_bytes())
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return json.dumps(data).encode()


def test_round_trip_keeps_the_offset() -> None:
    e = checked_in()
    back = decode_event(e.to_bytes(), topic="cact.lab.v1")
    assert back == e and back.occurred_at.utcoffset() == timedelta(hours=8)
    assert b'"2026-11-03T07:52:00+08:00"' in e.to_bytes()


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"event_type": ', Reason.BAD_JSON),
    (b"[1, 2]", Reason.NOT_AN_OBJECT),
    (b'{"event_type": "ParticipantTeleported"}', Reason.UNKNOWN_EVENT_TYPE),
])
def test_reason_codes_for_unparseable_input(payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode_event(payload)
    assert exc.value.reason == reason


@pytest.mark.parametrize(("changes", "reason"), [
    ({"schema_version": 2}, Reason.UNSUPPORTED_SCHEMA_VERSION),
    ({"payload__nip": "199013012015031001"}, Reason.INVALID_NIP),
    ({"payload__session_id": 17}, Reason.INVALID_FIELD),
    ({"occurred_at": "2026-11-03T07:52:00"}, Reason.INVALID_FIELD),  # no offset
    ({"payload__extra": 1}, Reason.INVALID_FIELD),
])
def test_reason_codes_for_contract_violations(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode_event(raw(checked_in(), **changes))
    assert exc.value.reason == reason


def test_wrong_topic() -> None:
    with pytest.raises(Rejected) as exc:
        decode_event(checked_in().to_bytes(), topic="cact.schedule.v1")
    assert exc.value.reason == Reason.WRONG_TOPIC


def test_every_event_type_has_a_key_and_a_topic() -> None:
    assert len(ev.EVENT_TYPES) == len(ev.ALL_EVENTS) == 15
    assert checked_in().key() == "S1"


@pytest.mark.parametrize("nip", ["199001012015031001", "198505122010012002", "199512312020122001",
                                 "198801012021211001"])  # the last: PPPK (appointment year + 2 + 1)
def test_valid_nips(nip: str) -> None:
    assert validate_nip(nip, today=date(2026, 11, 22)) == nip


@pytest.mark.parametrize(("nip", "why"), [
    ("19900101201503100", "18 digits"), ("19900101201503100A", "18 digits"), ("199002302015031001", "birth date"),
    ("199001012015131001", "month"), ("199001012015033001", "gender"), ("199001012005031001", "18th birthday"),
    ("199001012030031001", "future"),
])
def test_invalid_nips(nip: str, why: str) -> None:
    with pytest.raises(InvalidNIP, match=why):
        validate_nip(nip, today=date(2026, 11, 22))


def test_mask_nip() -> None:
    assert mask_nip(NIP) == "19900101********01"


def test_checked_in_schemas_and_doc_are_not_stale() -> None:
    assert stale_schemas(DEFAULT_DIR) == [], "run `cact schemas export`"
    assert not doc_is_stale(), "run `cact schemas export` to refresh docs/events.md"


def test_json_schemas_accept_valid_and_reject_invalid_events() -> None:
    schema = json.loads((DEFAULT_DIR / "ParticipantCheckedIn.json").read_text())
    assert schema == event_schema(ev.ParticipantCheckedIn)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(json.loads(checked_in().to_bytes()))
    assert list(validator.iter_errors(json.loads(raw(checked_in(), payload__nip="12345"))))
    assert list(validator.iter_errors(json.loads(raw(checked_in(), event_type="SessionClosed"))))
