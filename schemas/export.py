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

DEFAULT_DIR = Path(schemas.__file__).parent / "json"
DOC_PATH = Path(schemas.__file__).parent.parent / "docs" / "events.md"
BASE_ID = "https://cact.bkn.go.id/schemas/v1"


def event_schema(cls: type[Event]) -> dict[str, Any]:
    name = cls.model_fields["event_type"].default
    schema = cls.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_ID}/{name}.json",
        **schema,
        "title": name,
        "description": f"{(cls.__doc__ or name).strip()} Topic: {cls.topic.name}; key: payload.{cls.key_field}.",
    }


def _render(cls: type[Event]) -> str:
    return json.dumps(event_schema(cls), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(out_dir: Path = DEFAULT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for cls in ALL_EVENTS:
        path = out_dir / f"{cls.model_fields['event_type'].default}.json"
        path.write_text(_render(cls), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(out_dir: Path = DEFAULT_DIR) -> list[str]:
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
    out += ["### Dead-letter reason codes", "", "| reason | meaning |", "|---|---|"]
    out += [f"| `{code}` | {REASONS[code]} |" for code in Reason.ALL]
    out += ["", END]
    return "\n".join(out)


REASONS = {
    Reason.BAD_JSON: "the bytes are not JSON. Fix the emitter's serialisation.",
    Reason.NOT_AN_OBJECT: "the JSON is not an object (an array, a string…).",
    Reason.UNKNOWN_EVENT_TYPE: "`event_type` is missing or not one of the contract's types.",
    Reason.UNSUPPORTED_SCHEMA_VERSION: "`schema_version` is not 1.",
    Reason.INVALID_NIP: "a `nip` is not a valid 18-digit PNS or PPPK NIP (layout and dates checked).",
    Reason.INVALID_FIELD: "a field is missing, has the wrong type, or `occurred_at` has no UTC offset; `detail` names it.",
    Reason.WRONG_TOPIC: "the event type belongs on another topic.",
    Reason.UNKNOWN_SESSION: "the event names a session the pipeline does not know.",
    Reason.UNKNOWN_BLUEPRINT: "`SessionScheduled.blueprint_id` names a blueprint the worker has not loaded.",
    Reason.UNKNOWN_ITEM: "an answer names an item that is not in the item bank, or belongs to another section.",
    Reason.UNKNOWN_OPTION: "an answer names an option the item does not have.",
    Reason.UNKNOWN_PARTICIPANT: "a reschedule names a participant who is not scheduled in the `from` session.",
    Reason.UNKNOWN_SECTION: "the section is not part of the session's blueprint.",
    Reason.PROCESSING_ERROR: "the worker failed on a valid-looking event (a bug): the message is parked, not lost.",
}


def write_doc(path: Path = DOC_PATH) -> bool:
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + render_field_tables() + tail
    changed = new != text
    path.write_text(new, encoding="utf-8")
    return changed


def doc_is_stale(path: Path = DOC_PATH) -> bool:
    text = path.read_text(encoding="utf-8")
    return render_field_tables() not in text
