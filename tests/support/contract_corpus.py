"""The corpus and the verdicts of the contract's differential tests (tests/integration/schemas/: the Python
reference against the decoder in test_contract_differential.py, ajv too in test_contract_ajv.py).

The published schemas are the contract a lab vendor validates against in another language, so the decoder
must accept exactly what they accept. The corpus is schema-valid instances generated from each schema by
hypothesis-jsonschema plus near misses made by mutating them, derandomized so CI and the ajv run see the
same instances. Each instance gets two verdicts: the reference (jsonschema draft 2020-12, ``pattern`` read
as ECMA-262 reads it) and the decoder's. A schema-valid instance may be refused only for a rule of
schemas/rules.py that it breaks; a schema-invalid one is never accepted.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis_jsonschema import from_schema

from schemas import events as ev
from schemas import rules
from schemas.decode import Rejected, decode_event, decode_output, unpack
from schemas.export import DEFAULT_DIR

NAMES: list[str] = [cls.model_fields["event_type"].default for cls in ev.ALL_EVENTS]
OUTPUTS = frozenset(cls.model_fields["event_type"].default for cls in ev.OUTPUT_EVENTS)
#: Generated instances per event type: enough to reach every optional field, enum value and anyOf branch.
EXAMPLES = 20
#: Instances per type with every field present (``_complete``): every value of these gets every variant.
COMPLETE = 2
#: Each generated instance gets every ``SHARE``-th of the named variants (a different slice each), so the
#: named cases meet many shapes without the corpus growing past what one test run can judge in a minute.
SHARE = 5
GOOD_NIP = "199001012015031001"


def topic_of(name: str) -> str:
    return ev.EVENT_TYPES[name].topic.name


@cache
def schema_of(name: str) -> dict[str, Any]:
    return json.loads((DEFAULT_DIR / f"{name}.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# The reference validator: draft 2020-12, patterns as ECMA-262
# --------------------------------------------------------------------------------------------------


def ecma_to_python(pattern: str) -> str:
    """An ECMA-262 pattern as a Python one with the same meaning: ``$`` outside a class becomes ``\\Z`` (Python's
    ``$`` also matches before a final line break, ECMA's only at the end). The published patterns use no other
    construct whose meaning differs (``\\d``, ``\\w``, ``\\s``, ``\\b``: test_published_patterns_read_alike)."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "$":
            c = r"\Z"
        out.append(c)
        i += 1
    return "".join(out)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(ecma_to_python(pattern))


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Reference = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})


@cache
def reference(name: str) -> Any:
    """No format checker: ``format`` is an annotation in draft 2020-12, and the patterns must suffice alone."""
    return Reference(schema_of(name))


def reference_valid(name: str, instance: Any) -> bool:
    return reference(name).is_valid(instance)


# --------------------------------------------------------------------------------------------------
# The decoder's verdict
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str | None = None
    detail: str = ""


def encode(instance: Any) -> bytes:
    """JSON text of a case; Python's encoder recurses, and a case may nest past its default limit."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * rules.MAX_DEPTH))
    try:
        return json.dumps(instance).encode()
    finally:
        sys.setrecursionlimit(limit)


def decoder_verdict(name: str, instance: Any) -> Verdict:
    """As the pipeline reads the type's topic: ``decode_output`` for what the sink reads, ``decode_event`` else.
    An instance decoded as another type than ``name`` is not accepted as ``name``."""
    decode = decode_output if name in OUTPUTS else decode_event
    try:
        event = decode(encode(instance), topic=topic_of(name))
    except Rejected as exc:
        return Verdict(False, exc.reason, exc.detail)
    if event.event_type != name:
        return Verdict(False, None, f"decoded as {event.event_type}")
    return Verdict(True)


# --------------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str       # the event type whose schema judges the instance
    label: str      # how it was made: "generated", or the mutation and its path
    instance: Any


def _for_generation(schema: Any) -> Any:
    """The schema without ``format`` beside a ``pattern``: hypothesis-jsonschema would draw from the format and
    filter by the pattern, finding almost nothing. Only generation uses it; verdicts use the real schema."""
    if isinstance(schema, dict):
        return {k: _for_generation(v) for k, v in schema.items() if not (k == "format" and "pattern" in schema)}
    if isinstance(schema, list):
        return [_for_generation(v) for v in schema]
    return schema


@cache
def generated(name: str) -> tuple[Any, ...]:
    return _draw(_for_generation(schema_of(name)), EXAMPLES)


def _draw(schema: dict[str, Any], count: int) -> tuple[Any, ...]:
    """``count`` draws of hypothesis-jsonschema, derandomized: the same instances on every run and machine."""
    found: list[Any] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(from_schema(schema))
    def collect(instance: Any) -> None:
        found.append(instance)

    collect()
    unique = {json.dumps(i, sort_keys=True): i for i in found}
    return tuple(unique.values())


def _complete(schema: Any) -> Any:
    """The schema with every property required, no ``null`` alternative beside another and no empty list or
    map: what it generates holds every field, so the mutations reach each one (the corpus must hold the named
    cases). Still a narrowing of the real schema: everything it generates is valid there too."""
    if isinstance(schema, list):
        return [_complete(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _complete(v) for k, v in schema.items()}
    if "properties" in out:
        out["required"] = list(out["properties"])
    if out.get("type") == "array" and out.get("maxItems", 1) >= 1:
        out["minItems"] = max(out.get("minItems", 0), 1)
    if isinstance(out.get("additionalProperties"), dict):
        out["minProperties"] = max(out.get("minProperties", 0), 1)
    if "anyOf" in out and len(others := [s for s in out["anyOf"] if s != {"type": "null"}]) == 1:
        del out["anyOf"]
        out |= others[0]
    return out


@cache
def complete(name: str) -> tuple[Any, ...]:
    return _draw(_complete(_for_generation(schema_of(name))), COMPLETE)


def _fixed(name: str, instance: dict[str, Any]) -> dict[str, Any]:
    """The instance with its type named and the rules beyond the schema kept (a NIP plausible today, session
    times in order), so that its mutations are judged for what they change."""
    out = copy.deepcopy(instance) | {"event_type": name}
    payload = out.get("payload")
    if isinstance(payload, dict):
        if "nip" in payload:
            payload["nip"] = GOOD_NIP
        if name == "SessionScheduled":
            payload |= {"starts_at": "2026-11-03T08:00:00+08:00", "checkin_closes_at": "2026-11-03T08:30:00+08:00",
                        "ends_at": "2026-11-03T12:30:00+08:00"}
        if payload.get("home_activity_id") is not None:  # a susulan names its home whole
            payload.setdefault("home_agency_id", "AG-HOME")
            payload.setdefault("home_purpose", "mapping")
            payload["home_agency_id"] = payload["home_agency_id"] or "AG-HOME"
            payload["home_purpose"] = payload["home_purpose"] or "mapping"
    return out


Path = tuple[str | int, ...]


def _leaves(node: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))


def _replaced(instance: Any, path: Path, value: Any) -> Any:
    """A copy with the value at ``path`` replaced, sharing what it does not change (cases are never mutated)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(instance, dict):
        return {**instance, head: _replaced(instance[head], rest, value)}
    return [*instance[:head], _replaced(instance[head], rest, value), *instance[head + 1:]]  # type: ignore[misc]


_DROP = object()


def _dropped(instance: Any, path: Path) -> Any:
    out = _replaced(instance, path, _DROP)
    parent = out
    for p in path[:-1]:
        parent = parent[p]
    del parent[path[-1]]  # the parent is a fresh copy
    return out


TIMES = (
    "2026-11-03 12:31:00+08:00", "2026-11-03T12:31+08:00", "2026-11-03T15:51:00+08", "2026-11-03T12:31:00+0800",
    "2026-11-03T15:51:00,5+08:00", "2016-12-31T23:59:60Z", "2026-12-31T23:59:60+00:00",
    "2027-02-29T12:00:00+08:00", "2100-02-29T12:00:00Z", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
    "2026-11-03T12:31:00", "2026-11-03t12:31:00z",
    "2026-13-03T12:31:00Z", "2026-04-31T12:31:00Z", "2026-11-03T24:00:00Z", "2026-11-03T12:60:00Z",
    "2026-11-03T12:31:00+14:01", "2026-11-03T12:31:00+15:00", "2026-11-03T12:31:00-12:30",
    "2026-11-03T12:31:00.1234567890Z",
    "2026-11-03T12:31:00.Z", "2026-11-03T12:31:00+08:00\n", "\n2026-11-03T12:31:00+08:00", 1762144260, "1762144260",
    # valid ones, to see them accepted
    "2028-02-29T12:00:00+08:00", "2000-02-29T00:00:00Z", "2000-01-01T00:00:00+14:00",
    "2099-12-31T23:59:59.123456789-12:00",
    "2026-11-03T12:31:00-00:00",
)
DATES = ("2026-11-03", "2026-02-29", "2028-02-29", "2100-02-29", "2104-02-29", "1999-12-31", "2200-01-01",
         "2199-12-31", "2026-11-03T00:00:00", "2026-11-03\n", 20261103, "20261103", "2026-1-3", "2026-11-31",
         "2026-00-10")
NIPS = ("19900101201503100", "1990010120150310011", "199001012015031001\n", "199002302015031001",
        "199001012015131001",
        "199001012015201001", "199001012015211001", "199001012015033001", "193901012015031001", "201501012015031001",
        "199001012099031001", "200002292020031001", "199902292020031001", "１９９００１０１２０１５０３１００１",
        199001012015031001, GOOD_NIP)
UUID_FORMS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("no_dashes", lambda u: u.replace("-", "")), ("braces", lambda u: "{" + u + "}"),
    ("urn", lambda u: "urn:uuid:" + u),
    ("upper", str.upper), ("newline", lambda u: u + "\n"), ("short", lambda u: u[:-1]), ("long", lambda u: u + "0"),
    ("not_hex", lambda u: "g" + u[1:]), ("nil", lambda u: "00000000-0000-0000-0000-000000000000"),
    ("max", lambda u: "ffffffff-ffff-ffff-ffff-ffffffffffff"), ("dashes_moved", lambda u: u[:7] + "-" + u[7:8] + u[9:]),
)
BIG_INTS = (2**63, 2**64, -(2**63) - 1, 2**63 - 1, 2**53, 2**53 - 1, 2**31, 2**31 - 1, 10**30)
CONTROL = ("\x00", "\x1f", "\x7f", "\t", "\n", "\r", "\x85", "\u2028", "\ud800")
TOO_LONG = (9, 33, 65, 201, 501, 2001)
INSTANT_KEYS = {"occurred_at", "starts_at", "checkin_closes_at", "ends_at"}
DATE_KEYS = {"assessed_on", "valid_until"}
UUID_KEYS = {"event_id", "result_id"}


def _value_variants(path: Path, value: Any) -> Iterator[tuple[str, Any]]:
    """Near misses of one value: other JSON types, and what the issue found for its kind of field."""
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    for other in (None, True, False, 0, 1, 1.5, "x", "", [], {}):
        if not (type(other) is type(value) and other == value):
            yield f"type={json.dumps(other)}", other
    if type(value) is int:
        yield "numeric_string", str(value)
        yield "as_bool", bool(value)
        yield "integral_float", float(value)
        yield "plus_half", value + 0.5
        yield "minus_one", value - 1
        yield "plus_one", value + 1
        for big in BIG_INTS:
            yield f"int={big}", big
    elif type(value) is float:
        yield "as_int", int(value)
        yield "numeric_string", repr(value)
        yield "as_bool", value != 0
        for other_float in (-0.0, 100.0001, 1.0000001, 1e308, 5e-324, -1e-9, 2.0**64):
            yield f"float={other_float!r}", other_float
        for big in BIG_INTS:
            yield f"int={big}", big
    elif type(value) is bool:
        yield "as_int", int(value)
        yield "as_string", json.dumps(value)
    elif isinstance(value, str):
        yield "trailing_newline", value + "\n"
        yield "leading_space", " " + value
        for c in CONTROL:
            yield f"control={c!r}", value + c
        for n in TOO_LONG:
            yield f"length={n}", (value or "x") * (n // max(1, len(value)) + 1)
        if value.isascii() and value.isdigit():
            yield "as_number", int(value)
        if key in INSTANT_KEYS:
            for t in TIMES:
                yield f"time={t!r}", t
        if key in DATE_KEYS:
            for d in DATES:
                yield f"date={d!r}", d
        if key in UUID_KEYS or key == "provenance":  # a provenance item's last string key is "provenance"
            for form, make in UUID_FORMS:
                yield f"uuid={form}", make(value)
        if key == "nip":
            for n in NIPS:
                yield f"nip={n!r}", n
    elif isinstance(value, list):
        yield "empty_list", []
        if value:
            yield "doubled", value + value
            yield "length=1001", (value * 1001)[:1001]
    elif isinstance(value, dict):
        yield "empty_object", {}


def mutations(name: str, instance: dict[str, Any], *, every_leaf: bool, slice_: int = 0) -> Iterator[Case]:
    """Near misses of one instance: every key dropped, an unknown key added to every object, and every value
    replaced by its variants (only slice ``slice_`` of the named ones when not ``every_leaf``, and for the
    second and later items of a list)."""
    count = 0
    for path, value in _leaves(instance):
        if path[:2] == ("payload", "events") and len(path) > 3:
            continue  # inside a batch's event: any object passes its schema (_batch_cases judges them)
        where = ".".join(map(str, path)) or "(event)"
        if isinstance(value, dict):
            for k in value:
                yield Case(name, f"drop:{where}.{k}", _dropped(instance, (*path, k)))
            yield Case(name, f"unknown_key:{where}", _replaced(instance, path, {**value, "surprise": 1}))
        if not path:
            continue
        first = all(p == 0 for p in path if isinstance(p, int))  # later list items share the first's schema
        for label, other in _value_variants(path, value):
            if every_leaf and first:
                yield Case(name, f"{label}:{where}", _replaced(instance, path, other))
            elif _named(label):
                count += 1
                if count % SHARE == slice_ % SHARE:
                    yield Case(name, f"{label}:{where}", _replaced(instance, path, other))


def _named(label: str) -> bool:
    """The mutations every instance gets: the issue's cases for times, UUIDs, NIPs, numbers and booleans."""
    return label.startswith(("time=", "date=", "uuid=", "nip=", "numeric_string", "as_bool", "as_int", "int=",
                             "trailing_newline", "control='\\x00'", "type=true", "type=null"))


def _batched(name: str, instance: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """``instance`` inside a copy of a valid EventBatch of its session."""
    out = copy.deepcopy(batch)
    payload = instance.get("payload")
    session = payload.get(ev.EVENT_TYPES[name].key_field) if isinstance(payload, dict) else None
    out["payload"]["session_id"] = session if isinstance(session, str) else "S1"
    out["payload"]["events"] = [instance]
    return out


@cache
def corpus() -> tuple[Case, ...]:
    """Every case of every type, in a fixed order (the ajv test writes them out in this order)."""
    cases: list[Case] = []
    for name in NAMES:
        for instance in complete(name):
            fixed = _fixed(name, instance)
            cases.append(Case(name, "complete", fixed))
            cases.extend(mutations(name, fixed, every_leaf=True))
        for i, instance in enumerate(generated(name)):
            cases.append(Case(name, "generated", instance))
            fixed = _fixed(name, instance)
            cases.append(Case(name, "generated+fixed", fixed))
            cases.extend(mutations(name, fixed, every_leaf=False, slice_=i))
    cases.extend(_top_level_cases())
    cases.extend(_batch_cases())
    return tuple(cases)


def _top_level_cases() -> Iterator[Case]:
    for name in NAMES:
        base = _fixed(name, generated(name)[0])
        for other in ("SessionClosed", "sessionscheduled", name.lower(), 1, None):
            yield Case(name, f"event_type={other!r}", base | {"event_type": other})
        for version in (True, "1", 1.0, 2, 0, None, 2**64):
            yield Case(name, f"schema_version={version!r}", base | {"schema_version": version})
        yield Case(name, "array", [base])
        yield Case(name, "string", json.dumps(base))


def _batch_cases() -> Iterator[Case]:
    """Batches holding each input type's instances and their near misses: the batch is judged by its schema,
    each event inside by its own (test_batch_events_are_judged_one_by_one)."""
    batch = _fixed("EventBatch", generated("EventBatch")[0])
    for depth in (rules.MAX_DEPTH, rules.MAX_DEPTH + 1):  # the batch, its payload, events, event: 4 levels
        deep: Any = 1
        for _ in range(depth - 4):
            deep = [deep]
        yield Case("EventBatch", f"depth={depth}", _replaced(batch, ("payload", "events"), [{"deep": deep}]))
    for name in NAMES:
        if name in OUTPUTS:
            continue
        base = _fixed(name, complete(name)[0])
        for case in [Case(name, "complete", base)] + [
                c for c in mutations(name, base, every_leaf=False)][:30]:
            if isinstance(case.instance, dict):
                yield Case("EventBatch", f"holding {name} {case.label}", _batched(name, case.instance, batch))


# --------------------------------------------------------------------------------------------------
# Comparing verdicts
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    case: Case
    valid: bool
    verdict: Verdict
    why: str

    def __str__(self) -> str:
        shown = json.dumps(self.case.instance)[:300]
        return (f"{self.case.name} [{self.case.label}] schema {'valid' if self.valid else 'INVALID'}, decoder "
                f"{'accepted' if self.verdict.accepted else f'refused {self.verdict.reason}: {self.verdict.detail}'}"
                f" — {self.why}: {shown}")


def judge(case: Case, valid: bool, verdict: Verdict) -> Disagreement | None:
    """None when the decoder did what the schema says, modulo the listed rules."""
    broken = rules.broken_rules(case.name, case.instance) if valid and isinstance(case.instance, dict) else ()
    if not valid:
        return Disagreement(case, valid, verdict, "schema-invalid but accepted") if verdict.accepted else None
    if verdict.accepted:
        return Disagreement(case, valid, verdict, f"breaks {[r.id for r in broken]} but accepted") if broken else None
    if any(verdict.reason in r.reasons for r in broken):
        return None
    return Disagreement(case, valid, verdict,
                        f"schema-valid, refused for no listed rule (broken: {[r.id for r in broken]})")


def batch_member_disagreements(case: Case) -> Iterator[Disagreement]:
    """Each event inside an accepted batch against its own schema and rules, as ``unpack`` sees it."""
    topic = topic_of("EventBatch")
    event = decode_event(encode(case.instance), topic=topic)
    for (index, got), data in zip(unpack(event, topic=topic), case.instance["payload"]["events"]):
        name = data.get("event_type") if isinstance(data, dict) else None
        inner = Case(name if name in ev.EVENT_TYPES else "?", f"{case.label} events[{index}]", data)
        verdict = Verdict(False, got.reason, got.detail) if isinstance(got, Rejected) else Verdict(True)
        if inner.name == "?":
            if verdict.accepted:
                yield Disagreement(inner, False, verdict, "an event of no known type accepted inside a batch")
            continue
        valid = reference_valid(inner.name, data)
        if valid and rules.batch_member_misplaced(case.instance, data, topic):
            if verdict.accepted:
                yield Disagreement(inner, valid, verdict, "misplaced in its batch but accepted")
            continue
        if (found := judge(inner, valid, verdict)) is not None:
            yield found


def disagreements(valid: Sequence[bool]) -> list[Disagreement]:
    """Where the decoder does not do what ``valid`` (one validator's verdicts on the corpus) says."""
    found = []
    for case, ok, verdict in zip(corpus(), valid, decoder_verdicts(), strict=True):
        if (d := judge(case, ok, verdict)) is not None:
            found.append(d)
        elif case.name == "EventBatch" and verdict.accepted:
            found.extend(batch_member_disagreements(case))
    return found


@cache
def reference_verdicts() -> tuple[bool, ...]:
    return tuple(reference_valid(c.name, c.instance) for c in corpus())


@cache
def decoder_verdicts() -> tuple[Verdict, ...]:
    return tuple(decoder_verdict(c.name, c.instance) for c in corpus())


def jsonl(cases: tuple[Case, ...]) -> bytes:
    """The corpus as the ajv script reads it: one ``{"schema", "instance"}`` object a line."""
    return b"".join(encode({"schema": c.name, "instance": c.instance}) + b"\n" for c in cases)
