"""The published contract: the checked-in JSON Schemas and docs/events.md agree with the event classes.

Lab vendors validate against ``schemas/json/`` in their own languages, so a model change that is not
re-exported silently breaks them: the staleness test below is what stops it. The JSON examples of
docs/events.md are run through both the pipeline's decoder and the schemas, so the doc cannot show an
event the pipeline would dead-letter.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from pydantic import Field

from schemas import events as ev
from schemas import export, topics
from schemas.decode import Rejected, decode_event
from schemas.export import DEFAULT_DIR, DOC_PATH, export_schemas, stale_schemas
from schemas.reasons import TABLE, Reason

EVENT_NAMES = [cls.model_fields["event_type"].default for cls in ev.ALL_EVENTS]
INPUT_EVENTS: tuple[type[ev.Event], ...] = get_args(ev.InputEvent)
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def schema_of(name: str) -> dict[str, Any]:
    return json.loads((DEFAULT_DIR / f"{name}.json").read_text(encoding="utf-8"))


def rfc3339_checker() -> jsonschema.FormatChecker:
    """The bundled format checker plus an asserting ``date-time``.

    jsonschema checks ``date-time`` only when the optional rfc3339-validator is installed; this stand-in
    keeps the test independent of that and asserts what RFC 3339 says: a date-time always has an offset.
    """
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            return False
        datetime.fromisoformat(value.replace("z", "Z"))  # real date and time, else ValueError = invalid
        return True

    return checker


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema_of(name), format_checker=rfc3339_checker())


def doc_examples() -> list[dict[str, Any]]:
    """Every ```json block of docs/events.md that is an event."""
    blocks = re.findall(r"```json\n(.*?)\n```", DOC_PATH.read_text(encoding="utf-8"), flags=re.S)
    return [e for e in map(json.loads, blocks) if isinstance(e, dict) and "event_type" in e]


def output_examples(store_cases: Any) -> list[ev.Event]:
    """Output events built by the shared builders of tests/support/store_scenarios.py (StoreCases)."""
    at = datetime.fromisoformat("2026-11-03T08:31:00+07:00")
    return [store_cases.scored("199001012015031001"), store_cases.attendance("199001012015031001", "checked_in", at),
            store_cases.session_summary("S-JKT-01", at, scheduled=40, no_show=5, final=True),
            store_cases.deadletter(7, reason=Reason.BAD_JSON)]


# --------------------------------------------------------------------------------------------------
# The checked-in files
# --------------------------------------------------------------------------------------------------


def test_checked_in_schemas_are_not_stale() -> None:
    assert stale_schemas(DEFAULT_DIR) == [], "a model changed: run `cact schemas export` and commit schemas/json/"


def test_every_event_type_has_exactly_one_schema_file() -> None:
    assert sorted(p.stem for p in DEFAULT_DIR.glob("*.json")) == sorted(EVENT_NAMES)
    assert len(EVENT_NAMES) == len(set(EVENT_NAMES)) == len(ev.EVENT_TYPES)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_schema_file_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = schema_of(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator


@pytest.mark.parametrize("cls", ev.ALL_EVENTS, ids=lambda c: c.__name__)
def test_schema_header_names_the_type_topic_and_key(cls: type[ev.Event]) -> None:
    name = cls.model_fields["event_type"].default
    schema = schema_of(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://cact.bkn.go.id/schemas/v1/{name}.json"
    assert schema["title"] == name
    assert cls.topic.name in schema["description"]
    assert f"payload.{cls.key_field}" in schema["description"]
    assert cls.key_field in schema["$defs"][f"{name}Payload"]["properties"]


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_schema_file_is_deterministic_json(name: str) -> None:
    """Sorted keys, two-space indent, trailing newline: re-exporting gives the same bytes, diffs stay small."""
    text = (DEFAULT_DIR / name).with_suffix(".json").read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------------
# export_schemas / stale_schemas
# --------------------------------------------------------------------------------------------------


def test_export_writes_the_checked_in_bytes(tmp_path: Path) -> None:
    paths = export_schemas(tmp_path)
    assert [p.stem for p in paths] == EVENT_NAMES
    for p in paths:
        assert p.parent == tmp_path
        assert p.read_bytes() == (DEFAULT_DIR / p.name).read_bytes()
    assert stale_schemas(tmp_path) == []


def test_export_is_repeatable(tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "b")}
    assert first == second


def test_stale_reports_missing_changed_and_extra_files(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    (tmp_path / "SessionClosed.json").unlink()
    changed = tmp_path / "AnswersSaved.json"
    changed.write_text(changed.read_text(encoding="utf-8").replace('"maxItems": 1000', '"maxItems": 999'),
                       encoding="utf-8")
    (tmp_path / "ParticipantTeleported.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a schema", encoding="utf-8")
    assert stale_schemas(tmp_path) == ["AnswersSaved.json", "ParticipantTeleported.json", "SessionClosed.json"]


def test_stale_notices_formatting_only_changes(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    path = tmp_path / "SessionClosed.json"
    path.write_text(path.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    assert stale_schemas(tmp_path) == ["SessionClosed.json"]


def test_stale_of_a_missing_folder_lists_every_file(tmp_path: Path) -> None:
    assert stale_schemas(tmp_path / "nowhere") == sorted(f"{n}.json" for n in EVENT_NAMES)


def test_a_model_change_without_re_export_is_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the first test guards against: change a model, forget the export, and the check fails."""

    class ChangedPayload(ev.ParticipantCheckedInPayload):
        terminal_ip: str | None = Field(default=None, description="A field added without re-exporting.")

    class ChangedCheckedIn(ev.ParticipantCheckedIn):
        payload: ChangedPayload  # type: ignore[assignment]

    ChangedCheckedIn.__doc__ = ev.ParticipantCheckedIn.__doc__
    changed = tuple(ChangedCheckedIn if c is ev.ParticipantCheckedIn else c for c in ev.ALL_EVENTS)
    monkeypatch.setattr(export, "ALL_EVENTS", changed)
    assert stale_schemas(DEFAULT_DIR) == ["ParticipantCheckedIn.json"]


# --------------------------------------------------------------------------------------------------
# Events against the schemas
# --------------------------------------------------------------------------------------------------


def test_docs_have_one_example_per_input_event() -> None:
    shown = [e["event_type"] for e in doc_examples()]
    for cls in INPUT_EVENTS:
        assert cls.model_fields["event_type"].default in shown


@pytest.mark.parametrize("example", doc_examples(), ids=lambda e: e["event_type"])
def test_doc_example_is_accepted_by_the_pipeline_and_its_schema(example: dict[str, Any]) -> None:
    cls = ev.EVENT_TYPES[example["event_type"]]
    decoded = decode_event(json.dumps(example), topic=cls.topic.name)
    # Nothing in the example is dropped or reshaped by the classes (optional fields may be left out).
    assert decoded.model_dump(mode="json", exclude_unset=True) == example
    validator(example["event_type"]).validate(example)


def test_output_events_validate_against_their_schemas(store_cases: Any) -> None:
    events = output_examples(store_cases)
    assert {type(e) for e in events} == set(ev.OUTPUT_EVENTS)
    for event in events:
        validator(event.event_type).validate(json.loads(event.to_bytes()))


def test_schemas_accept_what_the_pipeline_accepts_for_every_type(store_cases: Any) -> None:
    by_type = {e["event_type"]: e for e in doc_examples()}
    by_type |= {e.event_type: json.loads(e.to_bytes()) for e in output_examples(store_cases)}
    assert sorted(by_type) == sorted(EVENT_NAMES)
    for name, data in by_type.items():
        validator(name).validate(data)


def _checked_in() -> dict[str, Any]:
    return next(e for e in doc_examples() if e["event_type"] == "ParticipantCheckedIn")


@pytest.mark.parametrize(("path", "value"), [
    ("event_type", "SessionClosed"),        # another type's const
    ("schema_version", 2),
    ("event_id", "not-a-uuid"),
    ("occurred_at", "2026-11-03T07:52:10"),  # no offset: needs format assertion (see docs/events.md)
    ("lab_id", ""),
    ("payload.nip", "12345"),
    ("payload.nip", "19900101201503100A"),
    ("payload.session_id", 17),
    ("payload.seat", "X" * 33),
    ("payload.extra", 1),
    ("surprise", True),
])
def test_schemas_reject_contract_violations(path: str, value: object) -> None:
    data = json.loads(json.dumps(_checked_in()))
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[leaf] = value
    assert list(validator("ParticipantCheckedIn").iter_errors(data)), path
    assert not list(validator("ParticipantCheckedIn").iter_errors(_checked_in()))


@pytest.mark.parametrize("field", ["event_id", "occurred_at", "lab_id", "payload"])
def test_schemas_require_the_envelope(field: str) -> None:
    data = dict(_checked_in())
    del data[field]
    assert list(validator("ParticipantCheckedIn").iter_errors(data))


def test_without_format_assertion_the_pattern_alone_refuses_an_impossible_date() -> None:
    """Draft 2020-12 formats are annotations, so the published pattern spells out the calendar: a validator
    that ignores ``format`` still refuses 30 February, 29 February of 2027 and a leap second."""
    plain = jsonschema.Draft202012Validator(schema_of("ParticipantCheckedIn"))
    for bad in ("2026-11-03T07:52:10", "0001-01-01T00:00:00+14:00", "2026-02-30T07:52:10+08:00",
                "2027-02-29T07:52:10+08:00", "2026-12-31T23:59:60Z"):
        data = dict(_checked_in(), occurred_at=bad)
        assert list(plain.iter_errors(data)), bad
        assert rejection_reason(data) == Reason.INVALID_FIELD
    assert not list(plain.iter_errors(dict(_checked_in(), occurred_at="2028-02-29T07:52:10+08:00")))


def test_a_python_re_validator_lets_a_trailing_line_break_through_the_decoder_does_not() -> None:
    """Why the differential tests read patterns as ECMA-262 does: Python's ``$`` also matches before a final
    line break, so the stock jsonschema validator accepts what the schema (and ajv, and the decoder) refuse."""
    data = dict(_checked_in(), occurred_at="2026-11-03T07:52:10+08:00\n")
    assert not list(jsonschema.Draft202012Validator(schema_of("ParticipantCheckedIn")).iter_errors(data))
    assert rejection_reason(data) == Reason.INVALID_FIELD


def rejection_reason(data: dict[str, Any]) -> str:
    with pytest.raises(Rejected) as exc:
        decode_event(json.dumps(data))
    return exc.value.reason


# --------------------------------------------------------------------------------------------------
# docs/events.md
# --------------------------------------------------------------------------------------------------


def test_doc_covers_every_topic_event_type_and_reason_code() -> None:
    doc = DOC_PATH.read_text(encoding="utf-8")
    for spec in topics.ALL_TOPICS:
        assert f"`{spec.name}`" in doc
    for name in EVENT_NAMES:
        assert f"#### {name}" in doc
    for code in Reason.ALL:
        assert f"| `{code}` |" in doc
    assert "cact schemas export" in doc and "schemas/json/" in doc
    assert "19900101********01" in doc


def test_every_reason_code_has_a_meaning_and_an_action() -> None:
    constants = {v for k, v in vars(Reason).items() if k.isupper() and isinstance(v, str)}
    assert set(TABLE) == constants == set(Reason.ALL)
    assert all(TABLE[c].code == c and TABLE[c].meaning and TABLE[c].action for c in Reason.ALL)


def test_doc_field_tables_are_not_stale() -> None:
    assert not export.doc_is_stale(), "run `cact schemas export` to refresh docs/events.md"
