"""Contract v1 as a whole: the event registry and the generated schemas/doc staying in step with the classes.

Decoding and reason codes are tested in test_schemas_decode.py, NIP rules in test_schemas_nip.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import jsonschema

from schemas import events as ev
from schemas.export import DEFAULT_DIR, doc_is_stale, event_schema, stale_schemas

WITA = timezone(timedelta(hours=8))


def checked_in_json() -> dict[str, object]:
    event = ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-iv-makassar",
                         occurred_at=datetime(2026, 11, 3, 7, 52, tzinfo=WITA),
                         payload={"session_id": "S1", "nip": "199001012015031001"})
    return json.loads(event.to_bytes())


def test_every_event_type_has_a_key_and_a_topic() -> None:
    assert len(ev.EVENT_TYPES) == len(ev.ALL_EVENTS) == 16
    assert all(cls.topic and cls.key_field for cls in ev.ALL_EVENTS)


def test_checked_in_schemas_and_doc_are_not_stale() -> None:
    assert stale_schemas(DEFAULT_DIR) == [], "run `cact schemas export`"
    assert not doc_is_stale(), "run `cact schemas export` to refresh docs/events.md"


def test_json_schemas_accept_valid_and_reject_invalid_events() -> None:
    schema = json.loads((DEFAULT_DIR / "ParticipantCheckedIn.json").read_text())
    assert schema == event_schema(ev.ParticipantCheckedIn)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(checked_in_json())
    bad_nip = checked_in_json()
    bad_nip["payload"]["nip"] = "12345"  # type: ignore[index]
    assert list(validator.iter_errors(bad_nip))
    assert list(validator.iter_errors(checked_in_json() | {"event_type": "SessionClosed"}))
