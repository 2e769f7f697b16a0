"""Hostile Kafka records, written as somebody outside the project would write them: the input side of issue 12.

Nothing here knows how the decoder works; every record states what the pipeline must do with it from the
contract alone (docs/events.md, "Limits" and the reason codes), so a suite that sends them can count what
was dead-lettered, with which reason, and what vanished. The generator is pure (no Kafka, no clock): the same
day and seed give the same records, byte for byte, and another module sends them.

A record's ``expect`` is one of:

- ``deadletter``: dead-lettered with one of ``reasons``; ``stage`` says who decides: ``intake`` (before
  parsing: ``too_large``), ``decode`` (``schemas.decode``) or ``process`` (the worker's rules: an unknown item,
  session, blueprint or participant; the decoder accepts those);
- ``accepted``: valid and processed, although hostile in content (tagged ``valid-hostile``);
- ``accepted_or_state_limit``: valid, and it grows the worker's state (tagged ``state-growth``): processed
  while under the cap, dead-lettered ``state_limit`` beyond it. A suite counts both.

Records tagged ``alters-day`` change what the day's ground truth says (an early window close by a lab, a rescore
by a lab, check-ins of strangers in real sessions): leave them out (``kinds=DAY_SAFE_KINDS``) when the end state
must equal the truth. Every other record is built so that, whatever the pipeline decides, the day's
participants are untouched: valid-looking events aimed at real sessions are stamped two hours before the
session starts, so even a clock advanced by a rejected event stays before anything real.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson

from producers.simulator import SimDay
from schemas import events as ev
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.reasons import Reason

DEADLETTER, ACCEPTED, CAPPED = "deadletter", "accepted", "accepted_or_state_limit"
INTAKE, DECODE, PROCESS = "intake", "decode", "process"
VALID_HOSTILE, STATE_GROWTH, ALTERS_DAY = "valid-hostile", "state-growth", "alters-day"
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
LAB, SCHEDULE = topics.LAB.name, topics.SCHEDULE.name


@dataclass(frozen=True)
class HostileRecord:
    kind: str
    topic: str
    value: bytes | None
    key: bytes | None
    expect: str
    reasons: frozenset[str] = frozenset()
    stage: str = DECODE
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None  # None: let the producer stamp it
    tags: frozenset[str] = frozenset()
    note: str = ""
    #: For an EventBatch: the reason each inner event must be refused with, by index (its dead letter's
    #: ``reason`` is the first of them).
    inner: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.value or b"")


# --------------------------------------------------------------------------------------------------
# Odd values, chosen from the contract's limits (docs/events.md "Limits")
# --------------------------------------------------------------------------------------------------


def _ms(year: int) -> int:
    """Milliseconds since 1970 at the start of ``year``, for years datetime cannot hold."""
    return round((year - 1970) * 365.2425 * 86_400_000)


#: Record timestamps nobody's clock should produce: year 82269 once crashed the dead-letter path (issue 12).
ODD_TIMESTAMPS_MS = (_ms(82269), -1, -(2**63), 0, 2**63 - 1, 1, _ms(1), _ms(10000), _ms(1999), _ms(2100))

#: Times the contract refuses, including those that overflow on the UTC conversion the store does.
OUT_OF_RANGE_TIMES = (
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z", "2026-11-03T07:52:10+23:59", "2026-11-03T07:52:10-13:00", "2026-11-03T07:52:10+14:30",
    "2026-11-03 07:52:10+08:00", "2026-11-03t07:52:10z", "2026-11-03T07:52+08:00", "2026-11-03T07:52:10",
    "2026-11-03", "1762131130", "2026-02-30T08:00:00+07:00", "2026-11-03T24:00:00+07:00",
    "2026-12-31T23:59:60Z", "2026-11-03T07:52:10+0800", "2026-11-03T07:52:10.1234567890+08:00",
    "+12026-11-03T07:52:10Z", "2026-11-03T07:52:10Z\n", "２０２６-11-03T07:52:10Z",
)
UTC_OVERFLOW_TIMES = ("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-12:00",
                      "9999-12-31T23:59:59-00:01")
#: Times as numbers: pydantic alone reads them as Unix time, the contract does not.
NUMERIC_TIMES = (0, -1, 1762131130, 1762131130.5, 2**63 - 1, True)

BAD_IDS = ("", "S" * 65, "has space", "S1\n", "-leading", "Ｓ２０２６", "Ѕ1", "S\x001", "S1\u200b", "S/1", "S1;DROP")
BAD_NIPS = ("12345", "199013012015031001", "１９９００１０１２０１５０３１００１", "199001012015031001 ",
            "٠" * 18, "19900101201503100A", "199001012015031001\n", "0" * 18, "9" * 19)
CONTROL_TEXTS = ("Andi\x00Pratama", "Andi\x1b[31mPratama", "\x07", "Andi\x7f", "\x00")
#: Integer literals written into the JSON as they are (orjson cannot even write those beyond 64 bits).
HUGE_INTEGERS = ("9223372036854775807", "9223372036854775808", "18446744073709551616", "1" + "0" * 30,
                 "-9223372036854775809", "1e308", "1.5", "-1", "0", "10001")
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400")

#: JSON type of every field of the input contract, for "wrong type" mutations.
_STR, _INT, _LIST, _DICT = "string", "integer", "array", "object"
FIELD_TYPES: dict[str, str] = {
    "event_id": _STR, "event_type": _STR, "schema_version": _INT, "occurred_at": _STR, "lab_id": _STR,
    "payload": _DICT, "session_id": _STR, "activity_id": _STR, "agency_id": _STR, "agency_name": _STR,
    "starts_at": _STR, "checkin_closes_at": _STR, "ends_at": _STR, "blueprint_id": _STR, "purpose": _STR,
    "seats": _INT, "nip": _STR, "name": _STR, "position_tier": _STR, "standard_levels": _DICT,
    "rescheduled_from": _STR, "home_agency_id": _STR, "home_activity_id": _STR, "home_purpose": _STR,
    "organiser_id": _STR, "from_session_id": _STR,
    "to_session_id": _STR, "reason": _STR, "blueprint_version": _STR, "seat": _STR, "section": _STR,
    "answers": _LIST, "completion": _STR, "events": _LIST,
}
_WRONG: dict[str, tuple[Any, ...]] = {
    _STR: (12345, ["x"], {"x": 1}, True, 1.5),
    _INT: ("40", [40], {"n": 40}, 40.5, True),
    _LIST: ("x", 7, {"a": 1}, True),
    _DICT: ("x", 7, [1], True),
}
_IDS = ("session_id", "activity_id", "agency_id", "lab_id", "blueprint_id", "rescheduled_from", "home_agency_id",
        "home_activity_id", "organiser_id", "from_session_id", "to_session_id")
_TIMES = ("occurred_at", "starts_at", "checkin_closes_at", "ends_at")
#: Values out of each field's range or form; numbers in strings starting "#" are written as raw JSON literals.
OUT_OF_RANGE: dict[str, tuple[Any, ...]] = {
    **{f: BAD_IDS for f in _IDS},
    **{f: OUT_OF_RANGE_TIMES for f in _TIMES},
    "event_id": ("not-a-uuid", "", "0" * 100, "6f1c4a52-8d0e-4c55-9a43-2b7b8a1f0c1", "{6f1c4a52}"),
    "event_type": ("participantcheckedin", "ParticipantTeleported", "", "Event", "ParticipantScored "),
    "schema_version": (2, 0, -1, 1.5, "#18446744073709551616"),
    "nip": BAD_NIPS,
    "name": ("N" * 201, *CONTROL_TEXTS),
    "agency_name": ("A" * 201, *CONTROL_TEXTS),
    "reason": ("R" * 501, "a\x00b", "a\x07b", "a\x1bb"),
    "seat": ("X" * 33, "B\x0012", "B\x1b12"),
    "blueprint_version": ("", "v" * 33, "2026\x00", "2026.2\x0b"),
    "seats": tuple(f"#{n}" for n in HUGE_INTEGERS if n not in ("1e308",)) + ("#1e308", "40", True),
    "standard_levels": ({"M1": 0}, {"M1": 6}, {"X9": 3}, {"M1": 2.5}, {"M1": "4"}, {"M1": True}, {"M1": "#1e308"}),
    "position_tier": ("presiden", "", "ADMINISTRATOR"),
    "purpose": ("fun", "", "Mapping"),
    "home_purpose": ("fun", "", "Mapping"),
    "section": ("algebra", "", "MANSOSKUL", "mansoskul "),
    "completion": ("autosave", "", "done"),
}


def _answer_lists(min_items: int) -> tuple[Any, ...]:
    bad = [[{"item_id": "", "option": "A"}], [{"item_id": "X" * 65, "option": "A"}],
           [{"item_id": "MSK-M1-001", "option": "LONGOPTION"}], [{"item_id": "MSK-M1-001"}],
           [{"item_id": "MSK-M1-001", "option": "A", "x": 1}], [{"item_id": 7, "option": "A"}],
           [{"item_id": "MSK-M1-001", "option": 1}], ["MSK-M1-001"], [None],
           [{"item_id": f"MSK-M1-{i:03d}", "option": "A"} for i in range(1001)]]
    return tuple(([[]] if min_items else []) + bad)


@dataclass
class _Templates:
    """Valid wire dicts of every input event type, taken from (or built around) the day."""

    by_type: dict[str, dict[str, Any]]
    sessions: list[Any]  # SessionPlan of the day
    scheduled: dict[str, list[str]]  # session id -> NIPs scheduled there
    sheet_items: dict[str, list[tuple[str, str]]]  # section -> (item id, an option it has) from real sheets
    versions: dict[str, str]  # blueprint id -> loaded version
    nips: frozenset[str]  # every NIP of the day: a stranger's NIP is never one of them


def _wire(event: ev.Event) -> dict[str, Any]:
    return orjson.loads(event.to_bytes())


def _templates(day: SimDay, registry: BlueprintRegistry) -> _Templates:
    first: dict[str, dict[str, Any]] = {}
    for e in day.schedule + day.lab:
        if e.event_type not in first:
            first[e.event_type] = _wire(e)
    plans = list(day.sessions.values())
    plan = plans[0]
    scheduled: dict[str, list[str]] = {}
    for e in day.schedule:
        if isinstance(e, ev.ParticipantScheduled):
            scheduled.setdefault(e.payload.session_id, []).append(e.payload.nip)
    nip = scheduled[plan.session_id][0]
    at = plan.starts_at - timedelta(hours=2)
    other = plans[-1].session_id
    built = {
        ev.ParticipantRescheduled: {"nip": nip, "from_session_id": plan.session_id, "to_session_id": other,
                                    "reason": "susulan"},
        ev.ParticipantUnscheduled: {"session_id": plan.session_id, "nip": nip, "reason": "on leave"},
        # The control events (RescoreRequested, CheckinWindowClosed) are the pipeline's own: labs cannot write
        # the control topic on a secured cluster, and on theirs they are refused (lab_closes_window…).
        ev.ParticipantCheckedIn: {"session_id": plan.session_id, "nip": nip, "seat": "001"},
        ev.SectionStarted: {"session_id": plan.session_id, "nip": nip, "section": "mansoskul"},
        ev.AnswersSaved: {"session_id": plan.session_id, "nip": nip, "section": "mansoskul",
                          "answers": [{"item_id": "MSK-M1-001", "option": "A"}]},
        ev.SectionSubmitted: {"session_id": plan.session_id, "nip": nip, "section": "mansoskul",
                              "completion": "submitted", "answers": [{"item_id": "MSK-M1-001", "option": "A"}]},
        ev.SessionClosed: {"session_id": plan.session_id},
    }
    for cls, payload in built.items():
        name = cls.model_fields["event_type"].default
        if name not in first:
            first[name] = _wire(ev.new_event(cls, lab_id=plan.lab_id, occurred_at=at, payload=payload,
                                             event_id=uuid.UUID(int=len(first) + 1, version=4)))
    checkin = dict(first["ParticipantCheckedIn"])
    checkin["payload"] = {**checkin["payload"], "session_id": plan.session_id}
    first["EventBatch"] = _wire(ev.new_event(ev.EventBatch, lab_id=plan.lab_id, occurred_at=at,
                                             event_id=uuid.UUID(int=99, version=4),
                                             payload={"session_id": plan.session_id, "events": [checkin]}))
    items: dict[str, list[tuple[str, str]]] = {}
    for e in day.lab:
        if isinstance(e, ev.SectionSubmitted) and e.payload.section.value not in items:
            items[e.payload.section.value] = [(a["item_id"], a["option"]) for a in e.payload.answers if a["option"]]
    versions = {bp: registry.get(bp).version for bp in {p.blueprint_id for p in plans}  # type: ignore[union-attr]
                if registry.get(bp) is not None}
    nips = frozenset(t.nip for t in day.truth.values())
    return _Templates(first, plans, scheduled, items, versions, nips)


# --------------------------------------------------------------------------------------------------
# Building records
# --------------------------------------------------------------------------------------------------


class _Ctx:
    """One record's randomness and the day it is built against."""

    def __init__(self, t: _Templates, rng: random.Random, max_bytes: int) -> None:
        self.t, self.rng, self.max_bytes = t, rng, max_bytes

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def template(self, name: str | None = None) -> dict[str, Any]:
        """A fresh copy of a valid event with a new id (so no de-duplication can hide what is wrong with it)."""
        name = name or self.rng.choice(sorted(self.t.by_type))
        data = orjson.loads(orjson.dumps(self.t.by_type[name]))
        data["event_id"] = self.uid()
        return data

    def plan(self) -> Any:
        return self.rng.choice(self.t.sessions)

    def stranger_session(self) -> str:
        return f"S-NOBODY-{self.rng.getrandbits(48):012x}"

    def nip(self) -> str:
        """A valid NIP nobody scheduled (PNS layout, born 1970-1999, appointed at 25)."""
        r = self.rng
        while True:
            year = r.randint(1970, 1999)
            nip = (f"{year}{r.randint(1, 12):02d}{r.randint(1, 28):02d}"
                   f"{year + 25}{r.randint(1, 12):02d}{r.choice('12')}{r.randint(0, 999):03d}")
            if nip not in self.t.nips:
                return nip

    def timestamp(self) -> int:
        """A plausible record time: somewhere in the day."""
        plan = self.plan()
        return int(plan.starts_at.timestamp() * 1000) + self.rng.randint(-3_600_000, 3_600_000)


def _topic_of(name: str) -> str:
    return ev.EVENT_TYPES[name].topic.name


def _key_of(data: dict[str, Any]) -> bytes | None:
    name = data.get("event_type")
    cls = ev.EVENT_TYPES.get(name) if isinstance(name, str) else None
    value = data.get("payload", {}).get(cls.key_field) if cls and isinstance(data.get("payload"), dict) else None
    return value.encode() if isinstance(value, str) else None


def dumps_raw(data: Any) -> bytes:
    """JSON of ``data`` where a string "#<literal>" is written as the bare literal (numbers orjson cannot write)."""
    literals: list[str] = []

    def mark(node: Any) -> Any:
        if isinstance(node, str) and node.startswith("#") and len(node) > 1:
            literals.append(node[1:])
            return f"\x00LIT{len(literals) - 1}\x00"
        if isinstance(node, dict):
            return {k: mark(v) for k, v in node.items()}
        if isinstance(node, list):
            return [mark(v) for v in node]
        return node

    raw = orjson.dumps(mark(data))
    for n, lit in enumerate(literals):
        raw = raw.replace(f'"\\u0000LIT{n}\\u0000"'.encode(), lit.encode())
    return raw


def _rec(ctx: _Ctx, kind: str, data: Any, reasons: Iterable[str], *, topic: str | None = None,
         key: bytes | None | str = "auto", stage: str = DECODE, expect: str = DEADLETTER, note: str = "",
         tags: Iterable[str] = (), raw: bytes | None = None, inner: tuple[str, ...] = ()) -> HostileRecord:
    if raw is None and data is not None:
        raw = dumps_raw(data)
    name = data.get("event_type") if isinstance(data, dict) else None
    if topic is None:
        topic = _topic_of(name) if isinstance(name, str) and name in ev.EVENT_TYPES else ctx.rng.choice((LAB, SCHEDULE))
    if key == "auto":
        key = _key_of(data) if isinstance(data, dict) else None
    return HostileRecord(kind=kind, topic=topic, value=raw, key=key, expect=expect,  # type: ignore[arg-type]
                         reasons=frozenset(reasons), stage=stage, timestamp_ms=ctx.timestamp(),
                         tags=frozenset(tags), note=note, inner=inner)


# ---- from nothing -----------------------------------------------------------------------------------

_NOT_JSON_START = bytes(b for b in range(256) if b not in b' \t\r\n{["-0123456789tfn')


def random_bytes(ctx: _Ctx) -> HostileRecord:
    n = ctx.rng.randint(1, 4096)
    raw = bytes([ctx.rng.choice(_NOT_JSON_START)]) + ctx.rng.randbytes(n - 1)
    return _rec(ctx, "random_bytes", None, {Reason.BAD_JSON}, raw=raw, key=ctx.rng.choice((None, ctx.rng.randbytes(8))),
                note=f"{n} random bytes")


def empty_value(ctx: _Ctx) -> HostileRecord:
    raw, note = ctx.rng.choice(((b"", "empty value"), (None, "no value (a tombstone)"), (b" \n", "whitespace")))
    return _rec(ctx, "empty_value", None, {Reason.BAD_JSON}, raw=raw, key=None, note=note)


def truncated_json(ctx: _Ctx) -> HostileRecord:
    raw = dumps_raw(ctx.template())
    cut = ctx.rng.randint(1, len(raw) - 1)
    return _rec(ctx, "truncated_json", None, {Reason.BAD_JSON}, raw=raw[:cut], note=f"cut at byte {cut} of {len(raw)}")


def invalid_utf8(ctx: _Ctx) -> HostileRecord:
    data = ctx.template()
    raw = dumps_raw(data)
    at = raw.index(b'"lab_id":"') + len(b'"lab_id":"')
    bad = ctx.rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"))
    return _rec(ctx, "invalid_utf8", data, {Reason.BAD_JSON}, raw=raw[:at] + bad + raw[at:],
                note=f"bytes {bad!r} in lab_id")


def lone_surrogate(ctx: _Ctx) -> HostileRecord:
    data = ctx.template()
    raw = dumps_raw(data).replace(b'"lab_id":"', b'"lab_id":"\\ud800', 1)
    return _rec(ctx, "lone_surrogate", data, {Reason.BAD_JSON}, raw=raw, note="\\ud800 escape in lab_id")


def non_finite_number(ctx: _Ctx) -> HostileRecord:
    data = ctx.template("SessionScheduled")
    lit = ctx.rng.choice(NON_FINITE)
    data["payload"]["seats"] = f"#{lit}"
    return _rec(ctx, "non_finite_number", data, {Reason.BAD_JSON}, note=f"seats: {lit}")


def not_an_object(ctx: _Ctx) -> HostileRecord:
    event = ctx.template()
    value = ctx.rng.choice(([event], [event, event], "ParticipantCheckedIn", 42, None, True, [], 1.5))
    return _rec(ctx, "not_an_object", None, {Reason.NOT_AN_OBJECT}, raw=dumps_raw(value), key=_key_of(event),
                note=f"a JSON {type(value).__name__}")


def _deep(depth: int, leaf: str = "1") -> str:
    kind = "list" if depth % 2 else "dict"
    return ("[" * depth + leaf + "]" * depth) if kind == "list" else ('{"a":' * depth + leaf + "}" * depth)


def deep_nesting(ctx: _Ctx) -> HostileRecord:
    """Nested past the parser's limit (1,024 levels): the parser refuses it."""
    depth = ctx.rng.randint(1025, 5000)
    data = ctx.template()
    raw = dumps_raw(data)[:-1] + b',"x":' + _deep(depth).encode() + b"}"
    return _rec(ctx, "deep_nesting", data, {Reason.BAD_JSON}, raw=raw, note=f"{depth} levels")


def deep_nesting_in_fields(ctx: _Ctx) -> HostileRecord:
    """Nested just under the parser's limit, where a naive str() or recursion would exhaust the stack."""
    depth = ctx.rng.randint(900, 1020)
    data = ctx.template()
    where = ctx.rng.choice(("event_type", "payload", "payload.session_id", "payload.nip", "extra", "occurred_at"))
    reasons = {"event_type": {Reason.UNKNOWN_EVENT_TYPE}, "payload.nip": {Reason.INVALID_NIP},
               # a whole payload replaced: pydantic may report its missing nip first (invalid_nip wins then)
               "payload": {Reason.INVALID_FIELD, Reason.INVALID_NIP}}.get(where, {Reason.INVALID_FIELD})
    marker = "\x00DEEP\x00"
    if where == "extra":
        data["x"] = marker
    elif where.startswith("payload."):
        data["payload"][where.split(".", 1)[1]] = marker
    else:
        data[where] = marker
    raw = orjson.dumps(data).replace(b'"\\u0000DEEP\\u0000"', _deep(depth).encode())
    return _rec(ctx, "deep_nesting_in_fields", data, reasons, raw=raw, note=f"{depth} levels in {where}")


def unknown_event_type(ctx: _Ctx) -> HostileRecord:
    data = ctx.template()
    name = ctx.rng.choice(("ParticipantTeleported", "participantcheckedin", "", "Event", "[/]", "DROP TABLE",
                           "x" * 10_000, "ParticipantCheckedIn\x00", 7, None, ["ParticipantCheckedIn"],
                           {"name": "ParticipantCheckedIn"}))
    data["event_type"] = name
    return _rec(ctx, "unknown_event_type", data, {Reason.UNKNOWN_EVENT_TYPE}, topic=ctx.rng.choice((LAB, SCHEDULE)),
                note=f"event_type {str(name)[:30]!r}")


def unsupported_schema_version(ctx: _Ctx) -> HostileRecord:
    data = ctx.template()
    data["schema_version"] = ctx.rng.choice((2, 0, -1, 1.5, "1", None, [1], "#18446744073709551616"))
    return _rec(ctx, "unsupported_schema_version", data, {Reason.UNSUPPORTED_SCHEMA_VERSION})


def wrong_topic(ctx: _Ctx) -> HostileRecord:
    data = ctx.rng.choice((ctx.template(), {"event_type": ctx.rng.choice(("ParticipantScored", "AttendanceChanged",
                                                                          "SessionSummary", "DeadLettered"))}))
    name = data["event_type"]
    if name == "EventBatch":  # a batch is at home on both input topics
        data = ctx.template("SessionClosed")
        name = "SessionClosed"
    own = ev.EVENT_TYPES[name].topic.name
    topic = ctx.rng.choice([t for t in (LAB, SCHEDULE) if t != own])
    return _rec(ctx, "wrong_topic", data, {Reason.WRONG_TOPIC}, topic=topic, note=f"{name} on {topic}")


# ---- every field of every event type ----------------------------------------------------------------


@dataclass(frozen=True)
class FieldMutation:
    event_type: str
    path: tuple[str, ...]
    how: str  # missing | wrong_type | out_of_range | extra
    value: Any = None


def _reason_for(path: tuple[str, ...]) -> str:
    leaf = path[-1]
    if leaf == "event_type" and len(path) == 1:
        return Reason.UNKNOWN_EVENT_TYPE
    if leaf == "schema_version" and len(path) == 1:
        return Reason.UNSUPPORTED_SCHEMA_VERSION
    if leaf == "nip":
        return Reason.INVALID_NIP
    return Reason.INVALID_FIELD


def field_mutations() -> list[FieldMutation]:
    """Every (event type, field, mutation, value) the generator can send: the catalogue a suite covers."""
    out: list[FieldMutation] = []
    for cls in (*ev.SCHEDULE_EVENTS, *ev.LAB_EVENTS):
        name = cls.model_fields["event_type"].default
        payload_cls = cls.model_fields["payload"].annotation
        paths = [((f,), cls.model_fields[f]) for f in ("event_id", "event_type", "schema_version", "occurred_at",
                                                       "lab_id", "payload")]
        paths += [(("payload", f), info) for f, info in payload_cls.model_fields.items()]
        for path, info in paths:
            leaf = path[-1]
            if info.is_required() or leaf == "event_type":
                out.append(FieldMutation(name, path, "missing"))
            nullable = not info.is_required() and info.default is None
            for value in _WRONG[FIELD_TYPES[leaf]]:
                if not (nullable and value is None) and not (leaf == "schema_version" and value is True):
                    out.append(FieldMutation(name, path, "wrong_type", value))
            if not nullable and leaf not in ("schema_version",):
                out.append(FieldMutation(name, path, "wrong_type", None))
            values = OUT_OF_RANGE.get(leaf, ())
            if leaf == "answers":
                values = _answer_lists(1 if cls is ev.AnswersSaved else 0)
            elif leaf == "events":
                values = ([], [{"event_type": "SessionClosed"}] * 1001)
            elif leaf == "reason" and cls is ev.CheckinWindowClosed:
                values = ("lab_said_so", "", "Wall_Clock")
            for value in values:
                out.append(FieldMutation(name, path, "out_of_range", value))
        out.append(FieldMutation(name, ("extra_field",), "extra", 1))
        out.append(FieldMutation(name, ("payload", "extra_field"), "extra", "x"))
    out.append(FieldMutation("SessionScheduled", ("payload", "ends_at"), "cross_rule", "before starts_at"))
    out.append(FieldMutation("SessionScheduled", ("payload", "checkin_closes_at"), "cross_rule", "after ends_at"))
    return out


FIELD_MUTATIONS = field_mutations()
_MUTATION_KIND = {"missing": "field_missing", "wrong_type": "field_wrong_type", "out_of_range": "field_out_of_range",
                  "extra": "field_extra", "cross_rule": "field_cross_rule"}


def mutated(ctx: _Ctx, m: FieldMutation) -> HostileRecord:
    data = ctx.template(m.event_type)
    node = data
    for p in m.path[:-1]:
        node = node[p]
    leaf = m.path[-1]
    if m.how == "missing":
        node.pop(leaf, None)
    elif m.how == "cross_rule":
        p = data["payload"]
        starts = datetime.fromisoformat(p["starts_at"])
        if leaf == "ends_at":
            p["ends_at"] = (starts - timedelta(minutes=1)).isoformat()
        else:
            p["checkin_closes_at"] = (datetime.fromisoformat(p["ends_at"]) + timedelta(minutes=1)).isoformat()
    else:
        node[leaf] = m.value
    reason = Reason.INVALID_FIELD if m.how in ("extra", "cross_rule") else _reason_for(m.path)
    shown = repr(m.value)[:40] if m.how not in ("missing",) else ""
    return _rec(ctx, _MUTATION_KIND[m.how], data, {reason}, topic=_topic_of(m.event_type),
                key=(ctx.t.by_type[m.event_type]["payload"].get(ev.EVENT_TYPES[m.event_type].key_field) or "").encode(),
                note=f"{m.event_type} {'.'.join(m.path)} {m.how} {shown}".strip())


# ---- huge and out of range --------------------------------------------------------------------------


def huge_string(ctx: _Ctx) -> HostileRecord:
    """A 900 kB string (or as much as fits under the size limit) in a field, under the size limit."""
    n = min(900_000, ctx.max_bytes - 4096)
    data = ctx.template("ParticipantScheduled")
    where = ctx.rng.choice(("name", "session_id", "nip", "extra", "lab_id", "event_type"))
    text = ctx.rng.choice("AÉ漢")
    text = text * (n // len(text.encode()))
    reason = {"nip": Reason.INVALID_NIP, "event_type": Reason.UNKNOWN_EVENT_TYPE}.get(where, Reason.INVALID_FIELD)
    if where in ("name", "session_id", "nip"):
        data["payload"][where] = text
    elif where == "extra":
        data["payload"]["notes"] = text
    else:
        data[where] = text
    return _rec(ctx, "huge_string", data, {reason}, key=b"S-HUGE", note=f"{n:,}-byte string in {where}",
                topic=SCHEDULE)


def huge_array(ctx: _Ctx) -> HostileRecord:
    """More answers than a message may hold, still under the size limit."""
    data = ctx.template(ctx.rng.choice(("AnswersSaved", "SectionSubmitted")))
    per = len(b'{"item_id":"MSK-M1-001","option":"A"},')
    n = max(1001, min(20_000, (ctx.max_bytes - 4096) // per))
    data["payload"]["answers"] = [{"item_id": f"MSK-M1-{i % 1000:03d}", "option": "A"} for i in range(n)]
    return _rec(ctx, "huge_array", data, {Reason.INVALID_FIELD}, note=f"{n:,} answers")


def oversize(ctx: _Ctx) -> HostileRecord:
    """Larger than the worker accepts: dead-lettered before it is parsed, whatever it holds."""
    what = ctx.rng.choice(("valid_padded", "answers_100k", "random", "batch"))
    if what == "answers_100k":
        data = ctx.template("AnswersSaved")
        data["payload"]["answers"] = [{"item_id": f"MSK-M1-{i % 1000:03d}", "option": "A"} for i in range(100_000)]
        raw = dumps_raw(data)
    elif what == "random":
        data = None
        raw = b"{" + ctx.rng.randbytes(ctx.max_bytes)
    elif what == "batch":
        data = ctx.template("EventBatch")
        inner = data["payload"]["events"][0]
        data["payload"]["events"] = [{**inner, "event_id": ctx.uid()} for _ in range(ctx.max_bytes // 200 + 1)]
        raw = dumps_raw(data)
    else:
        data = ctx.template("ParticipantScheduled")
        data["payload"]["name"] = "N" * (ctx.max_bytes + 1)
        raw = dumps_raw(data)
    while len(raw) <= ctx.max_bytes:  # never below the limit, whatever the limit is
        raw += b" " * (ctx.max_bytes + 1 - len(raw))
    return _rec(ctx, "oversize", data, {Reason.TOO_LARGE}, raw=raw, stage=INTAKE,
                key=_key_of(data) if isinstance(data, dict) else None, note=f"{what}, {len(raw):,} bytes")


def huge_number(ctx: _Ctx) -> HostileRecord:
    data = ctx.template("SessionScheduled")
    lit = ctx.rng.choice(HUGE_INTEGERS)
    data["payload"]["seats"] = f"#{lit}"
    return _rec(ctx, "huge_number", data, {Reason.INVALID_FIELD}, note=f"seats: {lit}")


def control_characters(ctx: _Ctx) -> HostileRecord:
    """NUL and escape codes in free text: PostgreSQL refuses NUL, terminals obey escapes."""
    name = ctx.rng.choice(
        ("ParticipantScheduled", "SessionScheduled", "ParticipantCheckedIn", "ParticipantUnscheduled"))
    data = ctx.template(name)
    leaf = {"ParticipantScheduled": "name", "SessionScheduled": "agency_name", "ParticipantCheckedIn": "seat",
            "ParticipantUnscheduled": "reason"}[name]
    text = ctx.rng.choice(CONTROL_TEXTS)
    data["payload"][leaf] = text[:8]
    return _rec(ctx, "control_characters", data, {Reason.INVALID_FIELD}, note=f"{name} {leaf} {text[:8]!r}")


def unicode_ids(ctx: _Ctx) -> HostileRecord:
    """Look-alike and invisible characters in ids and NIPs: not normalised, refused."""
    data = ctx.template(ctx.rng.choice(("ParticipantCheckedIn", "SectionStarted", "ParticipantScheduled")))
    leaf, value = ctx.rng.choice((("session_id", "Ѕ20261103-001"), ("session_id", "S20261103\u2010001"),
                                  ("session_id", "S20261103-001\u200b"), ("session_id", "ｓ20261103-001"),
                                  ("nip", "１９９００１０１２０１５０３１００１"), ("nip", "١٩٩٠٠١٠١٢٠١٥٠٣١٠٠١"),
                                  ("nip", "199001012015031001\u0301"), ("lab_id", "kanreg-iv-makassar\u202e")))
    target = data if leaf == "lab_id" else data["payload"]
    target[leaf] = value
    return _rec(ctx, "unicode_ids", data, {Reason.INVALID_NIP if leaf == "nip" else Reason.INVALID_FIELD},
                note=f"{leaf} {value!r}")


def out_of_range_dates(ctx: _Ctx) -> HostileRecord:
    data = ctx.template()
    value = ctx.rng.choice(OUT_OF_RANGE_TIMES + NUMERIC_TIMES)
    where = "occurred_at"
    if data["event_type"] == "SessionScheduled" and ctx.rng.random() < 0.5:
        where = ctx.rng.choice(("starts_at", "checkin_closes_at", "ends_at"))
        data["payload"][where] = value
    else:
        data["occurred_at"] = value
    return _rec(ctx, "out_of_range_dates", data, {Reason.INVALID_FIELD}, note=f"{where} {value!r}")


def utc_overflow_dates(ctx: _Ctx) -> HostileRecord:
    """The exact shape that stopped the results store in issue 12, and its mirror at year 9999."""
    data = ctx.template("SessionScheduled")
    value = ctx.rng.choice(UTC_OVERFLOW_TIMES)
    for f in ("starts_at", "checkin_closes_at", "ends_at"):
        data["payload"][f] = value
    if ctx.rng.random() < 0.5:
        data["occurred_at"] = value
    data["payload"]["session_id"] = ctx.stranger_session()
    return _rec(ctx, "utc_overflow_dates", data, {Reason.INVALID_FIELD}, note=value)


# ---- batches ----------------------------------------------------------------------------------------


def batch_bad_inner(ctx: _Ctx) -> HostileRecord:
    """An EventBatch whose events are all bad, each in its own way: every one must be named in the dead letter."""
    data = ctx.template("EventBatch")
    session = data["payload"]["session_id"]
    good = data["payload"]["events"][0]
    nested = orjson.loads(orjson.dumps(data))  # a copy: the batch below must not contain itself
    choices: list[tuple[Any, str]] = [
        ({**good, "event_type": "Nope"}, Reason.UNKNOWN_EVENT_TYPE),
        ({**good, "payload": {**good["payload"], "nip": "12345"}}, Reason.INVALID_NIP),
        ({**good, "payload": {**good["payload"], "session_id": "S-OTHER"}}, Reason.INVALID_FIELD),
        ({**good, "occurred_at": "0001-01-01T00:00:00+14:00"}, Reason.INVALID_FIELD),
        ({**good, "schema_version": 2}, Reason.UNSUPPORTED_SCHEMA_VERSION),
        ({**ctx.template("SessionClosed"), "event_type": "EventBatch"}, Reason.INVALID_FIELD),
        ({**nested, "event_id": ctx.uid()}, Reason.INVALID_FIELD),  # a batch inside a batch
        ({**ctx.template("SessionScheduled"), "payload": {**ctx.t.by_type["SessionScheduled"]["payload"],
                                                          "session_id": session}}, Reason.WRONG_TOPIC),
        ({"event_type": "ParticipantCheckedIn", "payload": {**good["payload"]}, "x": _DEEP_MARK}, Reason.INVALID_FIELD),
    ]
    picked = [ctx.rng.choice(choices) for _ in range(ctx.rng.randint(1, 12))]
    events = [dict(e, event_id=ctx.uid()) if isinstance(e, dict) and "event_id" in e else e for e, _ in picked]
    data["payload"]["events"] = events
    raw = dumps_raw(data).replace(orjson.dumps(_DEEP_MARK), _deep(1000).encode())
    inner = tuple(r for _, r in picked)
    return _rec(ctx, "batch_bad_inner", data, {inner[0]}, raw=raw, inner=inner, topic=LAB,
                note=f"{len(inner)} bad events: {', '.join(inner)}")


_DEEP_MARK = "\x00DEEP\x00"


def batch_invalid(ctx: _Ctx) -> HostileRecord:
    """An EventBatch that is itself broken (an entry that is not even an object breaks the whole batch, as the
    published schema says): nothing in it is processed."""
    data = ctx.template("EventBatch")
    good = data["payload"]["events"][0]
    how, value = ctx.rng.choice((("events", []), ("events", "x"), ("events", {"0": good}), ("events", None),
                                 ("events", [good, 5]), ("events", [None]), ("events", ["x", good]),
                                 ("events", [good] * 1001), ("session_id", "has space"), ("session_id", None),
                                 ("extra", 1)))
    data["payload"][how] = value
    return _rec(ctx, "batch_invalid", data, {Reason.INVALID_FIELD}, topic=ctx.rng.choice((LAB, SCHEDULE)),
                key=b"" if how == "session_id" else "auto", note=f"payload.{how} = {str(value)[:30]}")


# ---- keys, timestamps, headers ----------------------------------------------------------------------

#: Builders of records the decoder refuses for their content: odd keys, timestamps and headers ride on them.
_CONTENT_INVALID: tuple[Callable[[_Ctx], HostileRecord], ...] = ()  # filled in below


def _odd_key(ctx: _Ctx) -> bytes | None:
    return ctx.rng.choice((None, b"", b"\x00", ctx.rng.randbytes(16), b"\xff\xfe" * 8, b"K" * 10_240,
                           ctx.rng.randbytes(10_240), "S20261103-001".encode("utf-16"), b" S20261103-001"))


def odd_key(ctx: _Ctx) -> HostileRecord:
    """A refused message whose key is odd too: the dead letter keeps a prefix of the key, never fails on it."""
    rec = ctx.rng.choice(_CONTENT_INVALID)(ctx)
    return replace(rec, kind="odd_key", key=_odd_key(ctx), note=f"{rec.kind}: {rec.note}")


def wrong_key(ctx: _Ctx) -> HostileRecord:
    """A valid event keyed by something else than its session: it went to the wrong partition."""
    data = ctx.template(ctx.rng.choice(("ParticipantCheckedIn", "SectionStarted", "SessionClosed")))
    data["payload"]["session_id"] = ctx.stranger_session()
    key = ctx.rng.choice(
        (_odd_key(ctx), ctx.plan().session_id.encode(), data["payload"]["session_id"].lower().encode()))
    if key == data["payload"]["session_id"].encode():
        key = None
    return _rec(ctx, "wrong_key", data, {Reason.WRONG_KEY}, key=key, tags={STATE_GROWTH},
                note=f"key {key[:20] if key else key!r}")


def odd_timestamp(ctx: _Ctx) -> HostileRecord:
    """A refused message with a record timestamp no clock produces (year 82269 once crashed the dead letter)."""
    rec = ctx.rng.choice(_CONTENT_INVALID)(ctx)
    ts = ctx.rng.choice(ODD_TIMESTAMPS_MS)
    return replace(rec, kind="odd_timestamp", timestamp_ms=ts, note=f"timestamp {ts} ms; {rec.kind}: {rec.note}")


def odd_headers(ctx: _Ctx) -> HostileRecord:
    """Headers are not part of the contract: many, binary, huge, duplicated; the message is refused for its content."""
    rec = ctx.rng.choice(_CONTENT_INVALID)(ctx)
    r = ctx.rng
    headers = tuple((r.choice(("x", "", "content-type", "ключ", "x" * 256)), r.choice((b"", r.randbytes(32),
                     b"\xff" * 10_240, b"application/json"))) for _ in range(r.randint(1, 40)))
    return replace(rec, kind="odd_headers", headers=headers, note=f"{len(headers)} headers; {rec.kind}")


# ---- valid, but hostile in content --------------------------------------------------------------------


def _lab_event(ctx: _Ctx, session_id: str, nip: str, at: datetime, lab_id: str) -> dict[str, Any]:
    r = ctx.rng
    kind = r.choice(("ParticipantCheckedIn", "SectionStarted", "AnswersSaved", "SectionSubmitted"))
    section = r.choice(sorted(ctx.t.sheet_items)) if ctx.t.sheet_items else "mansoskul"
    items = ctx.t.sheet_items.get(section) or [("MSK-M1-001", "A")]
    payload: dict[str, Any] = {"session_id": session_id, "nip": nip}
    if kind == "ParticipantCheckedIn":
        payload["seat"] = f"{r.randint(1, 40):03d}"
    elif kind == "SectionStarted":
        payload["section"] = section
    else:
        payload["section"] = section
        chosen = items[: r.randint(1, len(items))]
        payload["answers"] = [{"item_id": i, "option": o} for i, o in chosen]
        if kind == "SectionSubmitted":
            payload["completion"] = "submitted"
    return {"event_id": ctx.uid(), "event_type": kind, "schema_version": 1, "occurred_at": at.isoformat(),
            "lab_id": lab_id, "payload": payload}


def unscheduled_session(ctx: _Ctx) -> HostileRecord:
    """Lab events for sessions nobody scheduled: each new session id is state the worker must keep or refuse."""
    plan = ctx.plan()
    data = _lab_event(ctx, ctx.stranger_session(), ctx.nip(), plan.starts_at, plan.lab_id)
    return _rec(ctx, "unscheduled_session", data, {Reason.STATE_LIMIT}, expect=CAPPED, stage=PROCESS,
                tags={VALID_HOSTILE, STATE_GROWTH}, note=data["event_type"])


def unknown_nip_checkin(ctx: _Ctx) -> HostileRecord:
    """A check-in for a NIP nobody scheduled, in a real session: an unexpected participant (counted in the
    session's summary, so it alters the day)."""
    plan = ctx.plan()
    at = plan.starts_at - timedelta(hours=2)
    data = {"event_id": ctx.uid(), "event_type": "ParticipantCheckedIn", "schema_version": 1,
            "occurred_at": at.isoformat(), "lab_id": plan.lab_id,
            "payload": {"session_id": plan.session_id, "nip": ctx.nip(), "seat": "999"}}
    return _rec(ctx, "unknown_nip_checkin", data, {Reason.STATE_LIMIT}, expect=CAPPED, stage=PROCESS,
                tags={VALID_HOSTILE, STATE_GROWTH, ALTERS_DAY}, note=plan.session_id)


def lab_closes_window(ctx: _Ctx) -> HostileRecord:
    """A lab sends the pipeline's own CheckinWindowClosed for a real session, on the lab topic: only the
    pipeline writes the control topic, so it is refused there (``wrong_topic``)."""
    plan = ctx.plan()
    data = {"event_id": ctx.uid(), "event_type": "CheckinWindowClosed", "schema_version": 1,
            "occurred_at": (plan.starts_at - timedelta(hours=2)).isoformat(), "lab_id": plan.lab_id,
            "payload": {"session_id": plan.session_id, "reason": "wall_clock"}}
    return _rec(ctx, "lab_closes_window", data, {Reason.WRONG_TOPIC}, topic=LAB, note=plan.session_id)


def lab_requests_rescore(ctx: _Ctx) -> HostileRecord:
    """A lab asks for a rescore of a real session with its own blueprint version, on a topic labs write."""
    plan = ctx.plan()
    data = {"event_id": ctx.uid(), "event_type": "RescoreRequested", "schema_version": 1,
            "occurred_at": (plan.starts_at - timedelta(hours=2)).isoformat(), "lab_id": plan.lab_id,
            "payload": {"session_id": plan.session_id, "activity_id": plan.activity_id,
                        "blueprint_id": plan.blueprint_id,
                        "blueprint_version": ctx.t.versions.get(plan.blueprint_id, "1"), "reason": "lab says so"}}
    return _rec(ctx, "lab_requests_rescore", data, {Reason.WRONG_TOPIC}, topic=ctx.rng.choice((LAB, SCHEDULE)),
                note=plan.session_id)


def other_lab_checkin(ctx: _Ctx) -> HostileRecord:
    """A real participant checked in at a real session by a lab that does not host it (``wrong_lab``)."""
    plan = ctx.plan()
    nip = ctx.t.scheduled[plan.session_id][0]
    data = {"event_id": ctx.uid(), "event_type": "ParticipantCheckedIn", "schema_version": 1,
            "occurred_at": (plan.starts_at - timedelta(hours=2)).isoformat(), "lab_id": f"{plan.lab_id}-other",
            "payload": {"session_id": plan.session_id, "nip": nip, "seat": "1"}}
    return _rec(ctx, "other_lab_checkin", data, {Reason.WRONG_LAB}, stage=PROCESS, note=plan.session_id)


def wrong_clock_checkin(ctx: _Ctx) -> HostileRecord:
    """The hosting lab's clock is years ahead: a check-in stamped 2099 must not close the window for everyone
    (``implausible_time``)."""
    plan = ctx.plan()
    nip = ctx.t.scheduled[plan.session_id][0]
    at = plan.starts_at.replace(year=2099)
    data = {"event_id": ctx.uid(), "event_type": "ParticipantCheckedIn", "schema_version": 1,
            "occurred_at": at.isoformat(), "lab_id": plan.lab_id,
            "payload": {"session_id": plan.session_id, "nip": nip, "seat": "1"}}
    return _rec(ctx, "wrong_clock_checkin", data, {Reason.IMPLAUSIBLE_TIME}, stage=PROCESS, note=plan.session_id)


# ---- valid to the decoder, refused by the worker's rules --------------------------------------------


def unknown_item(ctx: _Ctx) -> HostileRecord:
    """Answers naming an item the bank does not have, or a real item with an option it does not have, for a
    real participant: refused before any state changes."""
    plan = ctx.plan()
    nip = ctx.t.scheduled[plan.session_id][0]
    section = ctx.rng.choice(sorted(ctx.t.sheet_items)) if ctx.t.sheet_items else "mansoskul"
    item = (ctx.t.sheet_items.get(section) or [("MSK-M1-001", "A")])[0][0]
    bad_option = ctx.rng.random() < 0.5
    answers = [{"item_id": item, "option": "Z"}] if bad_option else [{"item_id": "ZZ-NOT-IN-BANK-001", "option": "A"}]
    data = {"event_id": ctx.uid(), "event_type": "AnswersSaved", "schema_version": 1,
            "occurred_at": (plan.starts_at - timedelta(hours=2)).isoformat(), "lab_id": plan.lab_id,
            "payload": {"session_id": plan.session_id, "nip": nip, "section": section, "answers": answers}}
    reasons = {Reason.UNKNOWN_OPTION} if bad_option else {Reason.UNKNOWN_ITEM}
    if plan.blueprint_id != "cact-full":  # a section the session's blueprint may not have
        reasons |= {Reason.UNKNOWN_SECTION}
    return _rec(ctx, "unknown_item", data, reasons, stage=PROCESS, note=f"{plan.session_id} {answers[0]}")


def unknown_references(ctx: _Ctx) -> HostileRecord:
    """A blueprint, session or participant that does not exist, named by an otherwise valid schedule event."""
    plan = ctx.plan()
    at = (plan.starts_at - timedelta(days=1)).isoformat()
    what = ctx.rng.choice(("blueprint", "session", "participant"))
    if what == "blueprint":
        data = ctx.template("SessionScheduled")
        data["payload"].update(session_id=ctx.stranger_session(), blueprint_id="no-such-blueprint")
        reason = Reason.UNKNOWN_BLUEPRINT
    elif what == "session":
        data = {"event_id": ctx.uid(), "event_type": "RescoreRequested", "schema_version": 1, "occurred_at": at,
                "lab_id": "bkn-operator",
                "payload": {"session_id": ctx.stranger_session(), "activity_id": plan.activity_id,
                            "blueprint_id": plan.blueprint_id, "blueprint_version": "1"}}
        # on the schedule topic, as a lab could send it: refused for its topic before its session is looked up
        return _rec(ctx, "unknown_references", data, {Reason.WRONG_TOPIC}, topic=SCHEDULE, note=what)
    else:
        data = {"event_id": ctx.uid(), "event_type": "ParticipantRescheduled", "schema_version": 1, "occurred_at": at,
                "lab_id": "bkn-scheduler", "payload": {"nip": ctx.nip(), "from_session_id": plan.session_id,
                                                       "to_session_id": ctx.stranger_session()}}
        reason = Reason.UNKNOWN_PARTICIPANT
    return _rec(ctx, "unknown_references", data, {reason}, stage=PROCESS, note=what)


# --------------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------------

_CONTENT_INVALID = (random_bytes, truncated_json, invalid_utf8, lone_surrogate, not_an_object, unknown_event_type,
                    unsupported_schema_version, wrong_topic, huge_number, control_characters, unicode_ids,
                    out_of_range_dates, batch_invalid)


def _field_kind(how: str) -> Callable[[_Ctx], HostileRecord]:
    pool = [m for m in FIELD_MUTATIONS if m.how == how]
    return lambda ctx: mutated(ctx, ctx.rng.choice(pool))


#: Every kind, its builder and its weight in a long stream: huge ones are rare so that 100,000 records stay
#: a few hundred MB (each kind still appears once in the first ``len(KINDS)`` records).
KINDS: dict[str, tuple[Callable[[_Ctx], HostileRecord], float]] = {
    "random_bytes": (random_bytes, 4), "empty_value": (empty_value, 1), "truncated_json": (truncated_json, 4),
    "invalid_utf8": (invalid_utf8, 2), "lone_surrogate": (lone_surrogate, 1),
    "non_finite_number": (non_finite_number, 1),
    "not_an_object": (not_an_object, 2), "deep_nesting": (deep_nesting, 0.5),
    "deep_nesting_in_fields": (deep_nesting_in_fields, 0.5), "unknown_event_type": (unknown_event_type, 2),
    "unsupported_schema_version": (unsupported_schema_version, 1), "wrong_topic": (wrong_topic, 2),
    "field_missing": (_field_kind("missing"), 4), "field_wrong_type": (_field_kind("wrong_type"), 6),
    "field_out_of_range": (_field_kind("out_of_range"), 8), "field_extra": (_field_kind("extra"), 2),
    "field_cross_rule": (_field_kind("cross_rule"), 1),
    "huge_string": (huge_string, 0.05), "huge_array": (huge_array, 0.1), "oversize": (oversize, 0.05),
    "huge_number": (huge_number, 1), "control_characters": (control_characters, 2), "unicode_ids": (unicode_ids, 2),
    "out_of_range_dates": (out_of_range_dates, 3), "utc_overflow_dates": (utc_overflow_dates, 2),
    "batch_bad_inner": (batch_bad_inner, 2), "batch_invalid": (batch_invalid, 1),
    "odd_key": (odd_key, 2), "wrong_key": (wrong_key, 1), "odd_timestamp": (odd_timestamp, 3),
    "odd_headers": (odd_headers, 1),
    "unscheduled_session": (unscheduled_session, 4), "unknown_nip_checkin": (unknown_nip_checkin, 1),
    "lab_closes_window": (lab_closes_window, 0.2), "lab_requests_rescore": (lab_requests_rescore, 0.2),
    "other_lab_checkin": (other_lab_checkin, 0.2), "wrong_clock_checkin": (wrong_clock_checkin, 0.2),
    "unknown_item": (unknown_item, 1), "unknown_references": (unknown_references, 1),
}
#: Kinds that leave the day's ground truth as it is, whatever the pipeline does with them.
DAY_SAFE_KINDS = tuple(k for k in KINDS if k != "unknown_nip_checkin")


def iter_hostile(day: SimDay, count: int, *, seed: int = 12, kinds: Iterable[str] | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, weights: Mapping[str, float] | None = None,
                 registry: BlueprintRegistry | None = None) -> Iterator[HostileRecord]:
    """``count`` hostile records against ``day``: each chosen kind once first (in catalogue order), then drawn
    by weight (``weights`` overrides the catalogue's, e.g. to send fewer megabyte messages to a small broker).
    Record ``n`` depends only on (seed, n, day, kinds, weights), so a soak run can be cut anywhere and resumed.
    With the catalogue's weights, 100,000 records are about 480 MB, most of it in the ~300 huge ones."""
    chosen = list(KINDS) if kinds is None else list(kinds)
    unknown = set(chosen) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown hostile kind(s) {', '.join(sorted(unknown))}; kinds are {', '.join(KINDS)}")
    t = _templates(day, registry or BlueprintRegistry.from_dir())
    drawn = [(weights or {}).get(k, KINDS[k][1]) for k in chosen]
    for n in range(count):
        rng = random.Random(f"{seed}/hostile/{n}")
        kind = chosen[n] if n < len(chosen) else rng.choices(chosen, drawn)[0]
        yield KINDS[kind][0](_Ctx(t, rng, max_message_bytes))


def hostile_records(day: SimDay, count: int, **kwargs: Any) -> list[HostileRecord]:
    return list(iter_hostile(day, count, **kwargs))


T = TypeVar("T")


def interleave(plan: Sequence[T], records: Sequence[HostileRecord], *, seed: int = 12) -> list[T | HostileRecord]:
    """The delivery plan (e.g. a phase of ``producers.daysender.delivery_plan``) with the hostile records spread
    through it at seeded positions: the plan's own order and the records' order are both kept."""
    rng = random.Random(f"{seed}/interleave")
    spots = sorted(rng.randint(0, len(plan)) for _ in records)
    out: list[T | HostileRecord] = []
    i = 0
    for n, item in enumerate(plan):
        while i < len(spots) and spots[i] == n:
            out.append(records[i])
            i += 1
        out.append(item)
    out.extend(records[i:])
    return out


def describe(record: HostileRecord) -> dict[str, Any]:
    """A record as JSON-able facts, for a suite's report (the value only as its length and a short prefix)."""
    return {"kind": record.kind, "topic": record.topic, "expect": record.expect, "reasons": sorted(record.reasons),
            "stage": record.stage, "tags": sorted(record.tags), "bytes": record.size,
            "key_b64": base64.b64encode(record.key[:64]).decode() if record.key is not None else None,
            "timestamp_ms": record.timestamp_ms, "headers": len(record.headers), "note": record.note[:200],
            "prefix_b64": base64.b64encode((record.value or b"")[:64]).decode()}


__all__ = ["dumps_raw", "HostileRecord", "KINDS", "DAY_SAFE_KINDS", "FIELD_MUTATIONS", "FieldMutation", "iter_hostile",
           "hostile_records", "interleave", "describe", "field_mutations", "mutated", "DEADLETTER", "ACCEPTED",
           "CAPPED", "INTAKE", "DECODE", "PROCESS", "VALID_HOSTILE", "STATE_GROWTH", "ALTERS_DAY",
           "ODD_TIMESTAMPS_MS", "DEFAULT_MAX_MESSAGE_BYTES"]
