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
from schemas.events import ALL_EVENTS, Event
from schemas.reasons import TABLE
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
    stale = [n for n, text in expected.items()
             if not (out_dir / n).exists() or (out_dir / n).read_text(encoding="utf-8") != text]
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
        lines.append(f"| `{name}` | {_type(prop, defs)} | {'yes' if name in required else 'no'} | "
                     f"{desc.replace('|', '/')} |")
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
            nested = [n for n in defs if n not in (payload_ref,) and "properties" in defs[n]
                      and n.endswith(("Answer", "CompetencyResult", "SectionScore"))]
            for n in nested:
                if f"{n}" in json.dumps(defs[payload_ref]):
                    out += ["", f"`{n}`:", ""] + _table(defs[n], defs)
            out.append("")
    out += ["### Dead-letter reason codes", "", "| reason | meaning | what the producer should do |", "|---|---|---|"]
    out += [f"| `{r.code}` | {r.meaning} | {r.action} |" for r in TABLE.values()]
    out += ["", END]
    return "\n".join(out)


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
