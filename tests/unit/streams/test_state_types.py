"""The declared state (streams/session_state.py) and the handler table (streams/processor.py), held to what the
processor does: every key it stores is declared with the type it stores, every declared key is used, records
an older worker stored still decode, and every input event type of the contract has exactly one rule."""

from __future__ import annotations

import functools
import importlib.util
import types
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import orjson
import pytest

from producers.simulator import SimConfig, build_day
from schemas import events as ev
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event
from streams import processor as proc_mod
from streams import session_state as st
from streams.processor import HANDLERS, WORKER_INPUTS, SessionProcessor, StateLimits, check_handlers
from streams.scoring import ScoringPolicy
from streams.state_codec import encode, private_copy
from streams.turn import Handler

WITA = timezone(timedelta(hours=8))
START = datetime(2026, 11, 3, 8, 0, tzinfo=WITA)
LAB = "kanreg-iv-makassar"
NIPS = {name: f"19900101201503100{i}" for i, name in enumerate("ABCDEF", start=1)}
#: Keys only state written by an older worker holds: declared so it decodes, never written now.
LEGACY_KEYS = {("SessionMeta", "rescore_event_id")}


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


# --------------------------------------------------------------------------------------------------
# A record against its declaration
# --------------------------------------------------------------------------------------------------


@functools.cache
def hints_of(tp: Any) -> dict[str, Any]:
    return get_type_hints(tp, include_extras=True)


def violations(value: Any, tp: Any, path: str, seen: set[tuple[str, str]]) -> list[str]:
    """Where ``value`` breaks the declared type ``tp``: an undeclared key, a missing required key, a value of
    another type. ``seen`` collects the (TypedDict, key) pairs present."""
    if tp is Any:
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a {tp.__name__} object"]
        hints = hints_of(tp)
        found = [f"{path}.{key}: not declared in {tp.__name__}" for key in value if key not in hints]
        for key, hint in hints.items():
            optional = get_origin(hint) is NotRequired
            if key not in value:
                if not optional:
                    found.append(f"{path}: {tp.__name__} requires {key!r}")
                continue
            seen.add((tp.__name__, key))
            found += violations(value[key], get_args(hint)[0] if optional else hint, f"{path}.{key}", seen)
        return found
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if not violations(value, arg, path, set()):
                return violations(value, arg, path, seen)
        return [f"{path}: {str(value)[:80]!r} is none of {tp}"]
    if tp is type(None):
        return [] if value is None else [f"{path}: {value!r} is not null"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [v for i, item in enumerate(value) for v in violations(item, get_args(tp)[0], f"{path}[{i}]", seen)]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        key_type, value_type = get_args(tp)
        return ([f"{path}: key {k!r} is not a string" for k in value if not isinstance(k, str)] +
                [v for k, item in value.items() for v in violations(item, value_type, f"{path}[{k!r}]", seen)])
    if tp is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: {value!r} is not an int"]
    if tp in (str, bool):
        return [] if type(value) is tp else [f"{path}: {value!r} is not a {tp.__name__}"]
    raise AssertionError(f"{path}: no check for {tp}")


def session_records(p: SessionProcessor) -> Iterator[tuple[str, Any, Any]]:
    for key, value in p.sessions.items():
        yield key, value, st.Unscheduled if key.startswith("#unscheduled/") else st.SessionState
    for key, value in p.participants.items():
        yield key, value, st.ParticipantState


def check(key: str, value: Any, tp: Any, seen: set[tuple[str, str]]) -> None:
    problems = violations(value, tp, key, seen)
    assert not problems, problems[:10]
    assert orjson.loads(encode(value)) == value == private_copy(value), f"{key} is not plain JSON"


def check_all(p: SessionProcessor, seen: set[tuple[str, str]]) -> None:
    for key, value, tp in session_records(p):
        check(key, value, tp, seen)


def feed(p: SessionProcessor, events: list[ev.Event], seen: set[tuple[str, str]]) -> list[ev.Event]:
    """Handle each event through the wire format as the intake does, checking the records it touched right
    after it (held events exist only until the schedule arrives), and every record at the end."""
    out: list[ev.Event] = []
    for offset, e in enumerate(events):
        p.position = (e.topic.name, 0, offset, None)
        try:
            out += p.handle(decode_event(e.to_bytes()))
        except Rejected:
            pass
        touched = [(e.key(), st.SessionState), (st.unscheduled_key(p.scope), st.Unscheduled)]
        for key, tp in touched:
            if key in p.sessions:
                check(key, p.sessions[key], tp, seen)
        nip = getattr(e.payload, "nip", None)
        if nip is not None and st.participant_key(e.key(), nip) in p.participants:
            check(nip, p.participants[st.participant_key(e.key(), nip)], st.ParticipantState, seen)
    check_all(p, seen)
    return out


# --------------------------------------------------------------------------------------------------
# A day that uses every key
# --------------------------------------------------------------------------------------------------


def schedule(session_id: str, lab_id: str | None = LAB) -> ev.Event:
    return ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1), payload={
        "session_id": session_id, "lab_id": lab_id, "activity_id": f"A-{session_id}", "agency_id": "pemkot-makassar",
        "agency_name": "Pemkot Makassar", "starts_at": START, "checkin_closes_at": START + timedelta(minutes=30),
        "ends_at": START + timedelta(hours=3), "blueprint_id": "mansoskul-only", "purpose": "mapping"})


def expect(nip: str, session_id: str = "S1", **extra: Any) -> ev.Event:
    return ev.new_event(ev.ParticipantScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                        payload={"session_id": session_id, "nip": nip, "name": "Dewi", "position_tier": "administrator",
                                 **extra})


def lab(cls: type[ev.Event], minutes: float, session_id: str = "S1", **payload: Any) -> ev.Event:
    return ev.new_event(cls, lab_id=LAB, occurred_at=START + timedelta(minutes=minutes),
                        payload={"session_id": session_id, **payload})


def control(cls: type[ev.Event], minutes: float, **payload: Any) -> ev.Event:
    return ev.new_event(cls, lab_id="cact-pipeline", occurred_at=START + timedelta(minutes=minutes), payload=payload)


def corrected(registry: BlueprintRegistry) -> BlueprintRegistry:
    bp = registry.get("mansoskul-only")
    assert bp is not None
    data = bp.model_dump(mode="json")
    data["version"] = "2026.2"
    loaded = [b for b in (registry.get(i) for i in registry.ids()) if b is not None]
    return BlueprintRegistry([*loaded, type(bp).model_validate(data)])


def answers(registry: BlueprintRegistry, count: int | None = None) -> list[dict[str, Any]]:
    bp = registry.get("mansoskul-only")
    assert bp is not None
    return [{"item_id": i.item_id, "option": "A"} for i in bp.sections[0].items[:count]]


def every_key_day(registry: BlueprintRegistry) -> list[ev.Event]:
    a, b, c, d, e, f = NIPS.values()
    return [
        lab(ev.ParticipantCheckedIn, -10, nip=a),  # before its schedule: held with the participant
        lab(ev.SessionClosed, 170, session_id="S2"),  # held with the session
        schedule("S1"), schedule("S2", lab_id=None),
        expect(a), expect(b, rescheduled_from="S0", home_agency_id="bkn", home_activity_id="A-S0",
                          home_purpose="position_filling", standard_levels={"M1": 3}),
        expect(d), expect(e),
        lab(ev.ParticipantCheckedIn, 1, nip=b), lab(ev.ParticipantCheckedIn, 2, nip=c),  # c: nobody expects them
        ev.new_event(ev.ParticipantUnscheduled, lab_id="bkn-scheduler", occurred_at=START,
                     payload={"session_id": "S1", "nip": d}),
        ev.new_event(ev.ParticipantRescheduled, lab_id="bkn-scheduler", occurred_at=START,
                     payload={"nip": e, "from_session_id": "S1", "to_session_id": "S3"}),
        lab(ev.SectionStarted, 3, nip=a, section="mansoskul"),
        lab(ev.AnswersSaved, 10, nip=b, section="mansoskul", answers=answers(registry, 40)),
        lab(ev.SectionSubmitted, 20, nip=a, section="mansoskul", completion="submitted", answers=answers(registry)),
        control(ev.CheckinWindowClosed, 40, session_id="S1"),
        control(ev.RescoreRequested, 60, session_id="S1", activity_id="A-S1", blueprint_id="mansoskul-only",
                blueprint_version="2026.2"),
        lab(ev.ParticipantCheckedIn, 50, nip=f),  # late and unexpected
        lab(ev.SessionClosed, 180),
    ]


def declared_keys() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    todo: list[Any] = [st.SessionState, st.Unscheduled, st.ParticipantState]
    while todo:
        tp = todo.pop()
        for key, hint in get_type_hints(tp, include_extras=True).items():
            out.add((tp.__name__, key))
            stack = [hint]
            while stack:
                h = stack.pop()
                if is_typeddict(h):
                    todo.append(h)
                stack += get_args(h)
    return out


def test_every_key_stored_is_declared_and_every_declared_key_is_stored(registry: BlueprintRegistry) -> None:
    p = SessionProcessor(registry, ScoringPolicy(), {}, {}, reload=lambda: corrected(registry))
    seen: set[tuple[str, str]] = set()
    out = feed(p, every_key_day(registry), seen)
    assert any(isinstance(o, ev.ParticipantScored) for o in out) and any(isinstance(o, ev.SessionSummary) for o in out)
    assert declared_keys() - seen == LEGACY_KEYS, "declared, never stored: remove, or mark as legacy"


@pytest.mark.parametrize("lab_first", [False, True])
def test_a_simulated_day_stores_only_declared_records(registry: BlueprintRegistry, lab_first: bool) -> None:
    day = build_day(SimConfig(participants=60, seats=20, reschedule_share=0.5, late_checkins=2, blank_sheets=2,
                              seed=3), registry)
    events = day.lab + day.schedule if lab_first else day.schedule + day.lab
    p = SessionProcessor(registry, ScoringPolicy(), {}, {}, limits=StateLimits(unexpected_participants=2))
    seen: set[tuple[str, str]] = set()
    feed(p, events, seen)
    assert ("ParticipantState", "result") in seen


def test_session_meta_is_the_schedule_payload_key_for_key() -> None:
    added = {"event_id", "blueprint_version", "rescore_event_id"}
    assert set(get_type_hints(st.SessionMeta)) == set(ev.SessionScheduledPayload.model_fields) | added


# --------------------------------------------------------------------------------------------------
# State an older worker stored
# --------------------------------------------------------------------------------------------------


def test_records_an_older_worker_stored_decode_and_go_on(registry: BlueprintRegistry) -> None:
    """A schedule without the host, agency name and organiser, a participant without facts, revision or home,
    a sheet stored as a dict: what tables recovered from an old changelog hold."""
    a = NIPS["A"]
    bp = registry.get("mansoskul-only")
    assert bp is not None
    sheet = {i.item_id: "A" for i in bp.sections[0].items}
    meta = {"session_id": "S1", "activity_id": "A1", "agency_id": "pemkot-makassar", "starts_at": START.isoformat(),
            "checkin_closes_at": (START + timedelta(minutes=30)).isoformat(),
            "ends_at": (START + timedelta(hours=3)).isoformat(), "blueprint_id": "mansoskul-only",
            "purpose": "mapping", "seats": None, "event_id": str(uuid.uuid4()), "blueprint_version": bp.version}
    old_session = {"meta": meta, "nips": [a], "window_closed": True, "closed": False, "max_at": START.isoformat(),
                   "closed_by": None}
    old_part = {"session_id": "S1", "nip": a, "unscheduled": False, "rescheduled_to": None,
                "scheduled": {"at": START.isoformat(), "name": "Dewi", "tier": "administrator",
                              "event_id": str(uuid.uuid4()), "standard_levels": None},
                "checkin": {"at": START.isoformat(), "event_id": str(uuid.uuid4())},
                "sheets": {"mansoskul": {"answers": sheet, "completion": "submitted", "at": START.isoformat(),
                                         "event_id": str(uuid.uuid4())}},
                "autosave": {}, "status": "checked_in", "late": False, "result": None}
    sessions = {"S1": orjson.loads(orjson.dumps(old_session))}
    participants = {f"S1/{a}": orjson.loads(orjson.dumps(old_part))}
    seen: set[tuple[str, str]] = set()
    assert not violations(sessions["S1"], st.SessionState, "S1", seen)
    assert not violations(participants[f"S1/{a}"], st.ParticipantState, "S1/A", seen)
    p = SessionProcessor(registry, ScoringPolicy(), sessions, participants)
    out = p.handle(decode_event(lab(ev.SessionClosed, 180).to_bytes()))
    [scored] = [o for o in out if isinstance(o, ev.ParticipantScored)]
    assert scored.payload.activity_id == "A1" and scored.payload.purpose == "mapping"  # filed as the host's
    [summary] = [o for o in out if isinstance(o, ev.SessionSummary)]
    assert summary.payload.lab_id == LAB and summary.payload.closed  # the first lab to speak is the host
    check_all(p, seen)
    assert p.participants[f"S1/{a}"]["sheets"]["mansoskul"]["answers"] == sheet, "an old sheet is read, not rewritten"


# --------------------------------------------------------------------------------------------------
# The handler table
# --------------------------------------------------------------------------------------------------


def test_the_worker_reads_the_schedule_lab_and_control_events_but_not_batches_or_outputs() -> None:
    assert set(WORKER_INPUTS) == set(ev.SCHEDULE_EVENTS + ev.LAB_EVENTS + ev.CONTROL_EVENTS) - {ev.EventBatch}
    assert not set(WORKER_INPUTS) & set(ev.OUTPUT_EVENTS)
    assert set(HANDLERS) == set(WORKER_INPUTS)


def test_a_table_missing_a_rule_or_ruling_an_output_is_refused() -> None:
    missing = {k: v for k, v in HANDLERS.items() if k is not ev.AnswersSaved}
    with pytest.raises(TypeError, match="no rule for \\['AnswersSaved'\\]"):
        check_handlers(missing, WORKER_INPUTS)
    extra: dict[type[ev.Event], Handler] = {**HANDLERS, ev.AttendanceChanged: HANDLERS[ev.SessionClosed]}
    with pytest.raises(TypeError, match="never reads: \\['AttendanceChanged'\\]"):
        check_handlers(extra, WORKER_INPUTS)
    check_handlers(HANDLERS, WORKER_INPUTS)


def test_each_rule_takes_its_event_types_payload() -> None:
    for cls, rule in HANDLERS.items():
        hints = get_type_hints(rule)
        payload = ev.EVENT_TYPES[cls.model_fields["event_type"].default].model_fields["payload"].annotation
        assert hints["p"] is payload, (cls.__name__, rule.__name__)


class Ping(ev.Event):
    """An input event type a newer contract might add."""

    topic = topics.LAB
    event_type: Literal["Ping"] = "Ping"
    payload: ev.SessionClosedPayload


def test_an_input_event_type_without_a_rule_stops_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's start-up, not its first such event, is where a missing rule shows."""
    monkeypatch.setattr(ev, "ALL_EVENTS", (*ev.ALL_EVENTS, Ping))
    spec = importlib.util.spec_from_file_location("processor_with_a_newer_contract", proc_mod.__file__)
    assert spec is not None and spec.loader is not None
    with pytest.raises(TypeError, match="no rule for \\['Ping'\\]"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
