"""JSON Schemas and the field tables of docs/events.md, generated from the event classes.

Lab vendors write in other languages and validate against ``schemas/json/``; both the files and the doc are
checked in, and a test fails when either differs from what the classes generate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import schemas
from schemas import topics
from schemas.decode import Reason
from schemas.events import ALL_EVENTS, Event
from schemas.rules import rules_for

DEFAULT_DIR = Path(schemas.__file__).parent / "json"
DOC_PATH = Path(schemas.__file__).parent.parent / "docs" / "events.md"
BASE_ID = "https://cact.bkn.go.id/schemas/v1"


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """The JSON Schema of one event type, as published to lab vendors.

    Serialization mode, because it is the shape the events have on the wire and, unlike validation mode,
    keeps the NIP pattern that pydantic drops behind the NIP's after-validator. ``$id`` and ``title`` name
    the type, and the description carries the topic, the key and every rule of schemas/rules.py the type is
    held to: a vendor reading only the schema file still knows where to send the event, how to key it and
    why a schema-valid event can still be refused.
    """
    name = cls.model_fields["event_type"].default
    schema = cls.model_json_schema(mode="serialization")
    on = " or ".join(t.name for t in (cls.topic, *getattr(cls, "also_on", ())))
    rules = " ".join(f"[{rule.id}] {rule.text}" for rule in rules_for(name))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_ID}/{name}.json",
        **schema,
        "title": name,
        "description": f"{(cls.__doc__ or name).strip()} Topic: {on}; key: payload.{cls.key_field}. "
                       f"Rules beyond this schema: {rules}",
    }


def _render(cls: type[Event]) -> str:
    """Sorted keys, two-space indent, trailing newline: the same classes always give the same bytes."""
    return json.dumps(event_schema(cls), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(out_dir: Path = DEFAULT_DIR) -> list[Path]:
    """Write ``<EventType>.json`` for every event type into ``out_dir``; return the paths in contract order.

    Files are rewritten whole, so the result depends only on the classes (the checked-in files stay stable
    and a diff shows exactly what a model change did). Files of event types that no longer exist are left
    alone: :func:`stale_schemas` reports them, and deleting a published schema is a decision for a person.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for cls in ALL_EVENTS:
        path = out_dir / f"{cls.model_fields['event_type'].default}.json"
        path.write_text(_render(cls), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(out_dir: Path = DEFAULT_DIR) -> list[str]:
    """File names in ``out_dir`` that are missing, differ from what the classes generate, or are extra.

    An empty list means the checked-in schemas are what vendors would get from the current code; a test and
    ``cact schemas check`` fail otherwise, so a model change cannot ship without its schema.
    """
    expected = {f"{cls.model_fields['event_type'].default}.json": _render(cls) for cls in ALL_EVENTS}
    present = {p.name for p in out_dir.glob("*.json")} if out_dir.exists() else set()
    stale = [n for n, text in expected.items() if not (out_dir / n).exists() or (out_dir / n).read_text(encoding="utf-8") != text]
    return sorted(stale + [n for n in present - set(expected)])


# --------------------------------------------------------------------------------------------------
# docs/events.md field tables
# --------------------------------------------------------------------------------------------------

BEGIN, END = "<!-- generated: cact schemas export -->", "<!-- end generated -->"


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"])
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    t = prop.get("type", "any")
    if t == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    if t == "object" and "additionalProperties" in prop:
        return f"map to {_type(prop['additionalProperties'], defs)}"
    fmt = prop.get("format")
    return f"{t} ({fmt})" if fmt else t


def _table(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    lines = ["| field | type | required | meaning |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        desc = prop.get("description", "")
        if not desc and "$ref" in prop:
            desc = defs.get(prop["$ref"].rsplit("/", 1)[-1], {}).get("description", "")
        lines.append(f"| `{name}` | {_type(prop, defs)} | {'yes' if name in required else 'no'} | {desc.replace('|', '/')} |")
    return lines


def render_field_tables() -> str:
    out = [BEGIN, ""]
    for spec in topics.ALL_TOPICS:
        classes = [c for c in ALL_EVENTS if c.topic is spec]
        out += [f"### `{spec.name}`", "", f"{spec.doc} Key: `{spec.key}`.", ""]
        for cls in classes:
            schema = cls.model_json_schema(mode="serialization")
            defs = schema.get("$defs", {})
            payload_ref = schema["properties"]["payload"]["$ref"].rsplit("/", 1)[-1]
            key = f"payload.{cls.key_field}"
            out += [f"#### {cls.model_fields['event_type'].default}", "", f"Key: `{key}`. Payload:", ""]
            out += _table(defs[payload_ref], defs)
            nested = [n for n in defs if n not in (payload_ref,) and "properties" in defs[n] and n.endswith(("Answer", "CompetencyResult", "SectionScore"))]
            for n in nested:
                if f"{n}" in json.dumps(defs[payload_ref]):
                    out += ["", f"`{n}`:", ""] + _table(defs[n], defs)
            out.append("")
    out += ["### Dead-letter reason codes", "", "| reason | meaning | what the producer should do |", "|---|---|---|"]
    out += [f"| `{code}` | {REASONS[code]} | {REASON_ACTIONS[code]} |" for code in Reason.ALL]
    out += ["", END]
    return "\n".join(out)


REASONS = {
    Reason.BAD_JSON: "the bytes are not JSON (or not UTF-8).",
    Reason.NOT_AN_OBJECT: "the JSON is not an object (an array, a string…).",
    Reason.UNKNOWN_EVENT_TYPE: "`event_type` is missing or not one of the contract's types.",
    Reason.UNSUPPORTED_SCHEMA_VERSION: "`schema_version` is not 1.",
    Reason.INVALID_NIP: "a `nip` is not a valid 18-digit PNS or PPPK NIP (layout and dates checked).",
    Reason.INVALID_FIELD: "a field is missing, has the wrong type or is out of its bounds (a time outside 2000-2099 or without its UTC offset, a control character in text, a number too large: \"Limits\" above); `detail` names it.",
    Reason.WRONG_TOPIC: "the event type belongs on another topic.",
    Reason.UNKNOWN_SESSION: "the event names a session the pipeline does not know (today: a `RescoreRequested` for a session not scheduled in that activity).",
    Reason.UNKNOWN_BLUEPRINT: "`blueprint_id` (with `blueprint_version` in a rescore) names a blueprint the worker has not loaded, or a rescore names another blueprint than the session's.",
    Reason.UNKNOWN_ITEM: "an answer names an item that is not in the item bank, or belongs to another section.",
    Reason.UNKNOWN_OPTION: "an answer names an option the item does not have.",
    Reason.UNKNOWN_PARTICIPANT: "a reschedule names a participant who is not scheduled in the `from` session.",
    Reason.UNKNOWN_SECTION: "the section is not part of the session's blueprint.",
    Reason.PROCESSING_ERROR: "the worker failed on a valid-looking event (a bug): the message is parked, not lost.",
    Reason.TOO_LARGE: "the message is larger than the worker accepts (`CACT_MAX_MESSAGE_BYTES`, 1,000,000 bytes by default); it was not parsed, and the dead letter keeps only its first 4,096 bytes, length and SHA-256.",
    Reason.STATE_LIMIT: "accepting the event would grow the worker's state past its cap: more sessions with lab events but no schedule, or more participants nobody scheduled in one session, than the worker keeps.",
    Reason.WRONG_KEY: "a valid event whose Kafka key is not its key field (`payload.session_id`, `payload.from_session_id` for a reschedule): it went to another partition than its session's state.",
    Reason.WRONG_LAB: "a lab event for a session hosted by another lab (`SessionScheduled.payload.lab_id`): a lab speaks only for its own sessions.",
    Reason.IMPLAUSIBLE_TIME: "a lab event stamped far outside its session's schedule (more than `CACT_LAB_TIME_BEFORE_START_HOURS` before its start or `CACT_LAB_TIME_AFTER_END_HOURS` after its end, 6 h each by default): a wrong clock, which must not move the session's check-in window.",
}


#: What the sender of a dead-lettered message should do about it, per reason code (docs/events.md).
REASON_ACTIONS = {
    Reason.BAD_JSON: "Send UTF-8 JSON, one event per message, then send the event again.",
    Reason.NOT_AN_OBJECT: "Send each event as its own message: never an array of events or a bare value.",
    Reason.UNKNOWN_EVENT_TYPE: "Use an event type of this document, spelled exactly (case matters).",
    Reason.UNSUPPORTED_SCHEMA_VERSION: "Send `schema_version: 1` on the `.v1` topics; another version goes to its own topics.",
    Reason.INVALID_NIP: "Take the NIP from the participant's SI ASN record, never retype or pad it; send again.",
    Reason.INVALID_FIELD: "Fix the field named in `detail` (validate against `schemas/json/` before sending); send again.",
    Reason.WRONG_TOPIC: "Send the event to its type's topic (the tables above; the schema's description names it).",
    Reason.UNKNOWN_SESSION: "Name a scheduled session with its own `activity_id`; check for a typo in either.",
    Reason.UNKNOWN_BLUEPRINT: "Use a blueprint id and version BKN has deployed to the workers; ask BKN first for a new one.",
    Reason.UNKNOWN_ITEM: "Check that the lab runs the blueprint version the session was scheduled with; send the corrected sheet.",
    Reason.UNKNOWN_OPTION: "As for `unknown_item`: the lab's copy of the blueprint differs from BKN's.",
    Reason.UNKNOWN_PARTICIPANT: "Send the `ParticipantScheduled` for the `from` session first, then the reschedule again.",
    Reason.UNKNOWN_SECTION: "Send only the sections of the session's blueprint.",
    Reason.PROCESSING_ERROR: "Nothing on the producer's side: report the source topic, partition and offset to BKN operators.",
    Reason.TOO_LARGE: "Split it: at most 1,000 answers per `AnswersSaved` or `EventBatch`, one section per `SectionSubmitted`; the lab emitter refuses such a message before sending.",
    Reason.STATE_LIMIT: "Send the sessions' `SessionScheduled` and `ParticipantScheduled` first, then resend the lab events (`cact lab resend`); operators can replay the dead letters once the schedule is in.",
    Reason.WRONG_KEY: "Key every message by its key field (the tables above) with the default partitioner, then send it again.",
    Reason.WRONG_LAB: "Send events only for the sessions your lab hosts, with your own `lab_id`; if the schedule names the wrong lab, ask BKN to correct the `SessionScheduled`.",
    Reason.IMPLAUSIBLE_TIME: "Set the lab machine's clock (NTP) and time zone, then resend the events with their corrected times (`cact lab resend`).",
}


def write_doc(path: Path = DOC_PATH) -> bool:
    """Replace the generated block of docs/events.md; return whether it changed.

    Only the text between the markers is generated: the prose around it is written by hand and kept.
    """
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + render_field_tables() + tail
    changed = new != text
    path.write_text(new, encoding="utf-8")
    return changed


def doc_is_stale(path: Path = DOC_PATH) -> bool:
    """True when docs/events.md lacks the field tables the classes generate now."""
    text = path.read_text(encoding="utf-8")
    return render_field_tables() not in text
