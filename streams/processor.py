"""What the worker does with each schedule or lab event, apart from Kafka and Faust.

State lives in two key-value views (Faust tables in the worker, dicts in unit tests):
- ``sessions[session_id]``: the session's schedule, its participants, whether its check-in window and the
  session itself are closed, the latest lab time seen;
- ``participants[session_id/nip]``: the facts about one participant in one session (scheduled, checked
  in, answer sheets, autosaved answers) and what has been emitted for them (attendance status, result digest).

Facts are stored as they arrive and everything else is derived from them, so the processor does not care in
which order the schedule and lab topics are interleaved: a check-in that arrives before the schedule, or a
sheet that arrives after the session closed, ends in the same place. Emitted events carry deterministic ids,
so reprocessing after a crash re-emits duplicates the sinks ignore, never different results.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Optional, Protocol

import orjson

from schemas import events as ev
from schemas.blueprint import PACKED_BLANKS, BlueprintError, BlueprintRegistry
from schemas.decode import Reason, Rejected
from schemas.domain import AttendanceStatus as St
from schemas.domain import Competency, PositionTier, Purpose, Section
from streams import scoring
from streams.deadletter import dead_letter

PIPELINE_ID = "cact-pipeline"
#: The lab of a session whose schedule names none and for which no lab has spoken yet.
UNKNOWN_LAB = "unknown"
State = dict[str, Any]
#: Events a lab sends about its own session: judged against the session's schedule (LabTrust) before they count.
LAB_FACTS = (ev.ParticipantCheckedIn, ev.SectionStarted, ev.AnswersSaved, ev.SectionSubmitted, ev.SessionClosed)
#: Where the record being processed was read: (topic, partition, offset, index in its EventBatch or None).
Position = tuple[str, int, int, Optional[int]]


@dataclass(frozen=True)
class AttendancePolicy:
    """Whether a participant who checks in after the window closes may still sit the test."""

    late_admitted: bool = True


@dataclass(frozen=True)
class StateLimits:
    """Caps on state that input alone can create, so a hostile or broken lab cannot grow a worker without bound.

    A lab event may arrive before its session's schedule (that is why such state is kept at all), but a stream
    of events for sessions nobody schedules, or for NIPs nobody expects, would otherwise be kept forever. Past a
    cap the event is refused as ``state_limit``: dead-lettered with its bytes, so nothing is silently dropped and
    it can be replayed once the schedule is known. Both caps count per worker partition (``scope``)."""

    unscheduled_sessions: int = 2000
    unexpected_participants: int = 200
    #: Lab events held for sessions whose schedule has not arrived, per partition (see ``LabTrust``).
    held_events: int = 20_000


@dataclass(frozen=True)
class LabTrust:
    """What a lab event must be to count for a session: from the lab hosting it, and stamped near its schedule.

    Event time closes check-in windows, so one lab clock set to 2099, or one lab writing about another lab's
    session, would otherwise decide for everyone in it (issue 13). A lab event is judged only against a known
    schedule: one that arrives first is held in the session's state, unapplied, and judged when the schedule
    arrives, so the verdict is the same whatever order the topics are read in. Refused events are dead-lettered
    (``wrong_lab``, ``implausible_time``) and change nothing."""

    before_start: timedelta = timedelta(hours=6)
    after_end: timedelta = timedelta(hours=6)


def _unscheduled_key(scope: str) -> str:
    """The state key listing a partition's sessions without a schedule ('#' is not allowed in session ids)."""
    return f"#unscheduled/{scope}"


def held_events(sessions: MutableMapping[str, State], scopes: Iterable[str]) -> int:
    """Lab events held for sessions without a schedule in these partitions (``StateLimits.held_events``)."""
    return sum((sessions.get(_unscheduled_key(scope)) or {}).get("held", 0) for scope in scopes)


class Verdict(Protocol):
    recognised: bool
    detail: str | None


class Accreditations(Protocol):
    """What scoring needs of the accreditation registry (schemas/accreditation.py)."""

    digest: str

    def judge(self, organiser_id: str | None, tier: PositionTier, on: date) -> Verdict: ...

    def warning(self, organiser_id: str | None, on: date) -> str | None: ...


def participant_key(session_id: str, nip: str) -> str:
    return f"{session_id}/{nip}"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


_BLANK, _ABSENT = PACKED_BLANKS
_MISSING = object()
_item_ids, _options = operator.itemgetter("item_id"), operator.itemgetter("option")
_PACKED_CHAR: dict[str | None, str] = {None: _BLANK}


def _layout(blueprint: Any, section: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """The item order of a blueprint's section (None when the blueprint has no such section)."""
    spec = blueprint.section(Section(section))
    return (spec.item_ids, spec.item_id_set) if spec is not None else None


def _pack_answers(answers: dict[str, str | None], blueprint: Any, section: str) -> dict[str, Any]:
    """A sheet as kept in state: one character per item of the session's blueprint when every option is one
    character (CACT's are A-E), else one JSON string. Sheets are most of a participant's state, and state is
    copied, written to the changelog and kept in memory for every participant of the day: a dict per sheet
    cost ~40 kB, the JSON string ~6 kB, the positional string ~0.4 kB (docs/benchmarks.md)."""
    layout = _layout(blueprint, section) if blueprint is not None else None
    if layout is not None and answers.keys() <= layout[1]:
        chars = []
        for item in layout[0]:
            option = answers.get(item, _MISSING)
            if option is _MISSING:
                chars.append(_ABSENT)
            elif option is None:
                chars.append(_BLANK)
            elif len(option) == 1 and option not in (_BLANK, _ABSENT):
                chars.append(option)
            else:
                break
        else:
            return {"answers": "".join(chars), "layout": [blueprint.blueprint_id, blueprint.version]}
    return {"answers": orjson.dumps(answers).decode()}


def _unpack_answers(registry: BlueprintRegistry, stored: dict[str, Any]) -> dict[str, str | None]:
    answers = stored["answers"]
    if isinstance(answers, dict):  # state written before sheets were packed
        return dict(answers)
    if "layout" not in stored:
        return orjson.loads(answers)
    blueprint = registry.get(*stored["layout"])
    layout = _layout(blueprint, stored["section"]) if blueprint is not None else None
    if layout is None:
        raise RuntimeError(f"blueprint {stored['layout']} of a stored sheet is no longer loaded")
    return {item: (None if c == _BLANK else c) for item, c in zip(layout[0], answers) if c != _ABSENT}


def _pack_in_order(registry: BlueprintRegistry, blueprint: Any, section: Section, items: list[str],
                   options: list[str | None]) -> dict[str, Any] | None:
    """The common sheet, checked and packed with C-level passes: the items of the session's blueprint in its
    order (a whole sheet, or the first part of it as an autosave has), each with an option the bank allows.

    Same acceptance as ``scoring.check_answers`` and same packing as ``_pack_answers``, whose Python loop per
    answer was the worker's largest cost (docs/benchmarks.md); None sends any other sheet their way."""
    if blueprint is None:
        return None
    allowed = registry.allowed_by_position(blueprint, section)
    if allowed is None or len(items) > len(allowed):
        return None
    layout = blueprint.section(section).item_ids
    if tuple(items) != layout[:len(items)] or not all(map(operator.contains, allowed, options)):
        return None
    return {"answers": "".join(map(_PACKED_CHAR.get, options, options)) + _ABSENT * (len(layout) - len(items)),
            "layout": [blueprint.blueprint_id, blueprint.version]}


def _merge_packed(newer: str, older: str) -> str:
    """Two packed autosaves of one layout: each item as the newer one has it, else as the older one."""
    return "".join(o if n == _ABSENT else n for n, o in zip(newer, older))


def _sheet_answers(registry: BlueprintRegistry, stored: dict[str, Any], blueprint: Any, section: str) -> Any:
    """A stored sheet as scoring takes it: still packed when it was packed in this blueprint's layout."""
    if stored.get("layout") == [blueprint.blueprint_id, blueprint.version]:
        return stored["answers"]
    return _unpack_answers(registry, {**stored, "section": section})


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]


class SessionProcessor:
    def __init__(
        self,
        registry: BlueprintRegistry,
        policy: scoring.ScoringPolicy,
        sessions: MutableMapping[str, State],
        participants: MutableMapping[str, State],
        attendance: AttendancePolicy = AttendancePolicy(),
        reload: Callable[[], BlueprintRegistry] | None = None,
        limits: StateLimits = StateLimits(),
        trust: LabTrust = LabTrust(),
        accreditation: Accreditations | None = None,
    ) -> None:
        #: Who may run a recognised test (schemas/accreditation.py); None: BKN's own sessions only.
        self.accreditation = accreditation
        self.limits = limits
        self.trust = trust
        #: The partition being processed: the caps count per partition, as state is kept per partition.
        self.scope = "0"
        #: Where the event being handled was read (set by the intake): a held event's dead letter points there.
        self.position: Position = ("", 0, 0, None)
        #: (reason, source topic) of the dead letters the last ``handle`` emitted for held events.
        self.late_rejections: list[tuple[str, str]] = []
        self.registry = registry
        self.reload = reload
        self.policy = policy
        self.sessions = sessions
        self.participants = participants
        self.attendance = attendance

    # ----------------------------------------------------------------------------------------------
    # Entry point
    # ----------------------------------------------------------------------------------------------

    def handle(self, event: ev.Event) -> list[ev.Event]:
        """Apply one input event; return the events to emit. Raises Rejected for input to dead-letter."""
        self._out: list[ev.Event] = []
        self._summary_due: set[str] = set()
        self.late_rejections = []
        if isinstance(event, LAB_FACTS):
            s = self._session(event.key())
            if s["meta"] is None:
                self._hold(s, event)
            else:
                self._lab_fact(s, event)
        else:
            self._apply(event)
        for session_id in sorted(self._summary_due):
            self._emit_summary(session_id)
        return self._out

    def _apply(self, event: ev.Event) -> None:
        self._trigger = event
        handler = getattr(self, f"_on_{type(event).__name__}")
        handler(event.payload)

    # ----------------------------------------------------------------------------------------------
    # Who may say what about a session (LabTrust)
    # ----------------------------------------------------------------------------------------------

    def _lab_fact(self, s: State, event: ev.Event) -> None:
        """Judge a lab event, then apply it. The first lab to speak for a session whose schedule names no lab
        (an older scheduler) becomes its host, before the event is applied so its rows name it, and only if
        the event is accepted: handlers refuse before they change anything, so undoing the pin is enough."""
        pinned = self._judge(s, event)
        try:
            self._apply(event)
        except Rejected:
            if pinned:
                s["meta"]["lab_id"] = None
            raise
        if pinned:
            self._summary_due.add(event.key())

    def _judge(self, s: State, event: ev.Event) -> bool:
        """Refuse a lab event from another lab than the session's, or stamped far from its schedule; returns
        whether the event's lab was made the host of a session that had none."""
        meta = s["meta"]
        host = meta.get("lab_id")
        if host is not None and event.lab_id != host:
            raise Rejected(Reason.WRONG_LAB, f"session {event.key()} is hosted by lab {host}, not {event.lab_id}")
        at = event.occurred_at
        earliest = _at(meta["starts_at"]) - self.trust.before_start
        latest = _at(meta["ends_at"]) + self.trust.after_end
        if not earliest <= at <= latest:
            raise Rejected(Reason.IMPLAUSIBLE_TIME, f"occurred_at {at.isoformat()} is outside {earliest.isoformat()}"
                           f" .. {latest.isoformat()} around session {event.key()}'s schedule (CACT_LAB_TIME_*_HOURS)")
        if host is not None:
            return False
        meta["lab_id"] = event.lab_id
        self.sessions[event.key()] = s
        return True

    def _hold(self, s: State, event: ev.Event) -> None:
        """Keep a lab event that came before its session's schedule, unapplied, until the schedule says who
        hosts the session and when (bounded per partition: ``StateLimits.held_events``)."""
        session_id = event.key()
        key = _unscheduled_key(self.scope)
        held = (self.sessions.get(key) or {}).get("held", 0)
        if held >= self.limits.held_events:  # before anything changes, as every refusal
            raise Rejected(Reason.STATE_LIMIT, f"{held} lab events of sessions without a schedule are held "
                           "already (CACT_HELD_EVENTS_MAX)")
        self._admit_session(session_id)
        registry = self.sessions[key]
        registry["held"] = held + 1
        self.sessions[key] = registry
        # Kept with the participant it is about (a session's early answer sheets together outgrow one state
        # record, which must fit in one changelog message); the session keeps the order they came in.
        seq = s.get("held_seq", 0)
        s["held_seq"] = seq + 1
        item = {"seq": seq, "event": event.model_dump(mode="json"), "position": list(self.position)}
        nip = getattr(event.payload, "nip", None)
        if nip is None:
            s.setdefault("held", []).append(item)
        else:
            part = self._participant(session_id, nip)
            part.setdefault("held", []).append(item)
            self.participants[participant_key(session_id, nip)] = part
            if nip not in s.setdefault("held_nips", []):
                s["held_nips"].append(nip)
        self.sessions[session_id] = s

    def _release(self, session_id: str, s: State) -> None:
        """The schedule is known: judge and apply the held events in the order they came."""
        held = s.pop("held", [])
        for nip in s.pop("held_nips", []):
            key = participant_key(session_id, nip)
            part = self.participants[key]
            held += part.pop("held", [])
            self.participants[key] = part
        s.pop("held_seq", None)
        if not held:
            return
        held.sort(key=lambda item: item["seq"])  # in the order they came
        key = _unscheduled_key(self.scope)
        registry = self.sessions.get(key)
        if registry is not None:
            registry["held"] = max(0, registry.get("held", 0) - len(held))
            self.sessions[key] = registry
        self.sessions[session_id] = s
        schedule_event = self._trigger
        for item in held:
            event = ev.EVENT_TYPES[item["event"]["event_type"]].model_validate(item["event"])
            try:
                self._lab_fact(self._session(session_id), event)
            except Rejected as exc:
                topic, partition, offset, index = item["position"]
                detail = f"held until the schedule arrived: {exc.detail}"
                if index is not None:
                    detail = f"events[{index}]: {detail}"
                self._out.append(dead_letter(topic=topic, partition=partition, offset=offset, index=index,
                                             key=session_id.encode(), value=event.to_bytes(),
                                             timestamp=event.occurred_at.timestamp(),  # the same on every replay
                                             reason=exc.reason, detail=detail))
                self.late_rejections.append((exc.reason, topic))
        self._trigger = schedule_event

    # ----------------------------------------------------------------------------------------------
    # Schedule
    # ----------------------------------------------------------------------------------------------

    def _session(self, session_id: str) -> State:
        return self.sessions.get(session_id) or {"meta": None, "nips": [], "window_closed": False,
                                                 "closed": False, "max_at": None, "closed_by": None}

    def _participant(self, session_id: str, nip: str) -> State:
        return self.participants.get(participant_key(session_id, nip)) or {
            "session_id": session_id, "nip": nip, "scheduled": None, "unscheduled": False, "rescheduled_to": None,
            "checkin": None, "sheets": {}, "autosave": {}, "status": None, "late": False, "result": None,
        }

    def _on_SessionScheduled(self, p: ev.SessionScheduledPayload) -> None:
        if self.registry.get(p.blueprint_id) is None:
            raise Rejected(Reason.UNKNOWN_BLUEPRINT, f"blueprint {p.blueprint_id!r} is not loaded ({', '.join(self.registry.ids())})")
        s = self._session(p.session_id)
        if s["meta"] is None:
            self._forget_unscheduled(p.session_id)
        old = s["meta"] or {}
        version = old.get("blueprint_version") or self.registry.get(p.blueprint_id).version  # type: ignore[union-attr]
        # The host is the payload's lab, never the envelope's (that is the scheduler); a schedule without one
        # keeps the lab that first spoke for the session (LabTrust).
        s["meta"] = {**p.model_dump(mode="json"), "lab_id": p.lab_id or old.get("lab_id"),
                     "event_id": str(self._trigger.event_id),
                     "blueprint_version": version}  # a session keeps the key it was scheduled with
        if s["max_at"] and _at(s["max_at"]) >= p.checkin_closes_at:
            s["window_closed"] = True
        self.sessions[p.session_id] = s
        self._refresh_session(p.session_id, s)
        self._release(p.session_id, self._session(p.session_id))
        self._summary_due.add(p.session_id)  # operators see the session as soon as it is planned

    def _on_ParticipantScheduled(self, p: ev.ParticipantScheduledPayload) -> None:
        s = self._session(p.session_id)
        part = self._participant(p.session_id, p.nip)
        self._fact(part)
        part["scheduled"] = {
            "at": self._trigger.occurred_at.isoformat(), "name": p.name, "tier": p.position_tier.value, "event_id": str(self._trigger.event_id),
            "standard_levels": {c.value: v for c, v in (p.standard_levels or {}).items()} or None,
            "rescheduled_from": p.rescheduled_from,
            "home_agency_id": p.home_agency_id, "home_activity_id": p.home_activity_id,
            "home_purpose": p.home_purpose.value if p.home_purpose else None,
        }
        part["unscheduled"] = False
        self._track(s, p.session_id, p.nip, expected=True)
        if p.nip in s.get("unexpected_nips", ()):
            s["unexpected_nips"].remove(p.nip)
        self._refresh(s, part)

    def _on_ParticipantRescheduled(self, p: ev.ParticipantRescheduledPayload) -> None:
        part = self._participant(p.from_session_id, p.nip)
        if part["scheduled"] is None:
            raise Rejected(Reason.UNKNOWN_PARTICIPANT, f"participant is not scheduled in session {p.from_session_id}")
        s = self._session(p.from_session_id)
        self._fact(part)
        part["rescheduled_to"] = p.to_session_id
        part["rescheduled_at"] = self._trigger.occurred_at.isoformat()
        self._track(s, p.from_session_id, p.nip)
        self._refresh(s, part)
        sched = part["scheduled"]
        # The move's arrival side belongs to the target session's partition: re-key it there as a schedule event.
        self._out.append(ev.new_event(
            ev.ParticipantScheduled, lab_id=PIPELINE_ID, occurred_at=self._trigger.occurred_at,
            event_id=ev.derived_id("rescheduled", self._trigger.event_id),
            payload={"session_id": p.to_session_id, "nip": p.nip, "name": sched["name"], "position_tier": sched["tier"],
                     "standard_levels": sched["standard_levels"], "rescheduled_from": p.from_session_id,
                     **self._home(s, part)},
        ))

    def _on_ParticipantUnscheduled(self, p: ev.ParticipantUnscheduledPayload) -> None:
        s = self._session(p.session_id)
        part = self._participant(p.session_id, p.nip)
        self._fact(part)
        part["unscheduled"] = True
        part["unscheduled_at"] = self._trigger.occurred_at.isoformat()
        self._track(s, p.session_id, p.nip)
        self._refresh(s, part)

    def _on_RescoreRequested(self, p: ev.RescoreRequestedPayload) -> None:
        """Recompute, in this session, the results filed under the requested activity: the session's own
        participants when it is that activity's, and susulan arrivals from it. Others sat here keep their
        version (their activity's rescore comes with its own requests)."""
        s = self._session(p.session_id)
        meta = s["meta"]
        if meta is None:
            raise Rejected(Reason.UNKNOWN_SESSION, f"session {p.session_id} is not scheduled")
        if meta["blueprint_id"] != p.blueprint_id:
            raise Rejected(Reason.UNKNOWN_BLUEPRINT, f"session {p.session_id} uses {meta['blueprint_id']}, not {p.blueprint_id}")
        if meta["activity_id"] != p.activity_id and not any(
                self._home(s, self._participant(p.session_id, nip))["home_activity_id"] == p.activity_id
                for nip in s["nips"]):
            raise Rejected(Reason.UNKNOWN_SESSION, f"session {p.session_id} has no participant of activity {p.activity_id}")
        if self.registry.get(p.blueprint_id, p.blueprint_version) is None and self.reload is not None:
            try:
                self.registry = self.reload()  # the corrected file was added after the worker started
            except BlueprintError as exc:  # a bad or conflicting file: this request fails, the worker goes on
                raise Rejected(Reason.UNKNOWN_BLUEPRINT, f"blueprint {p.blueprint_id} version {p.blueprint_version} "
                               f"could not be loaded: {exc}") from None
        if self.registry.get(p.blueprint_id, p.blueprint_version) is None:
            raise Rejected(Reason.UNKNOWN_BLUEPRINT, f"blueprint {p.blueprint_id} version {p.blueprint_version} is not loaded")
        s.setdefault("rescores", {})[p.activity_id] = {"blueprint_version": p.blueprint_version,
                                                      "event_id": str(self._trigger.event_id)}
        self.sessions[p.session_id] = s
        self._refresh_session(p.session_id, s)

    @staticmethod
    def _home(s: State, part: State) -> dict[str, Any]:
        """Where a participant's result is filed: their own activity, agency and purpose, which for a susulan
        arrival are not the host session's (docs/scoring.md §6)."""
        meta, sched = s["meta"] or {}, part["scheduled"] or {}
        own = sched.get("home_activity_id")
        return {"home_activity_id": own or meta.get("activity_id"),
                "home_agency_id": sched.get("home_agency_id") if own else meta.get("agency_id"),
                # State from before home_purpose existed has none: the host's, as results were then filed.
                "home_purpose": (sched.get("home_purpose") or meta.get("purpose")) if own else meta.get("purpose")}

    def _rescore_of(self, s: State, part: State) -> dict[str, Any] | None:
        return (s.get("rescores") or {}).get(self._home(s, part)["home_activity_id"])

    # ----------------------------------------------------------------------------------------------
    # Lab
    # ----------------------------------------------------------------------------------------------

    def _blueprint_of(self, s: State) -> Any:
        """The blueprint the session was scheduled with (None before its schedule is known)."""
        meta = s["meta"]
        return self.registry.get(meta["blueprint_id"], meta["blueprint_version"]) if meta else None

    def _lab_event(self, session_id: str, nip: str | None = None) -> tuple[State, State | None]:
        """Load the session and participant a lab event touches, and let its time advance the session clock."""
        s = self._session(session_id)
        if nip is not None:
            self._admit(s, session_id, nip)
        elif session_id not in self.sessions:
            self._admit_session(session_id)
        at = self._trigger.occurred_at
        if s["max_at"] is None or at > _at(s["max_at"]):
            s["max_at"] = at.isoformat()
        part = None
        if nip is not None:
            part = self._participant(session_id, nip)
            self._track(s, session_id, nip)
        return s, part

    def _on_ParticipantCheckedIn(self, p: ev.ParticipantCheckedInPayload) -> None:
        s, part = self._lab_event(p.session_id, p.nip)
        assert part is not None
        at = self._trigger.occurred_at
        self._fact(part)
        if part["checkin"] is None or at < _at(part["checkin"]["at"]):
            part["checkin"] = {"at": at.isoformat(), "event_id": str(self._trigger.event_id)}
        self._refresh(s, part)
        self._advance_window(s, p.session_id)

    def _section_of_blueprint(self, session_id: str, section: Section) -> None:
        blueprint = self._blueprint_of(self._session(session_id))
        if blueprint is not None and blueprint.section(section) is None:
            raise Rejected(Reason.UNKNOWN_SECTION, f"section {section.value} is not part of blueprint "
                           f"{blueprint.blueprint_id} of session {session_id}")

    def _on_SectionStarted(self, p: ev.SectionStartedPayload) -> None:
        self._section_of_blueprint(p.session_id, p.section)
        s, _ = self._lab_event(p.session_id)
        self.sessions[p.session_id] = s
        self._advance_window(s, p.session_id)

    def _sheet(self, p: ev.AnswersSavedPayload | ev.SectionSubmittedPayload) -> tuple[dict[str, Any] | None, dict[str, str | None] | None]:
        """Check a sheet against the bank before any state changes: (packed, None) for the common sheet,
        (None, answers) for any other, which ``_pack_answers`` packs as it can."""
        self._section_of_blueprint(p.session_id, p.section)
        answers_in = p.answers
        if isinstance(answers_in, ev.AnswerList):  # as decoded: the columns were taken out by the check
            items, options = answers_in.item_ids, answers_in.options
        else:
            items, options = list(map(_item_ids, answers_in)), list(map(_options, answers_in))
        packed = _pack_in_order(self.registry, self._blueprint_of(self._session(p.session_id)), p.section, items, options)
        if packed is not None:
            return packed, None
        answers = dict(zip(items, options))
        scoring.check_answers(self.registry, p.section, answers)
        return None, answers

    def _on_AnswersSaved(self, p: ev.AnswersSavedPayload) -> None:
        packed, answers = self._sheet(p)
        s, part = self._lab_event(p.session_id, p.nip)
        assert part is not None
        at = self._trigger.occurred_at
        # Autosaves only stand in for a missing sheet: once the section's sheet is in, they are never read.
        if p.section.value not in part["sheets"]:
            saved = part["autosave"].setdefault(p.section.value, {"answers": "{}", "at": at.isoformat(), "event_ids": []})
            eid = str(self._trigger.event_id)
            if eid not in saved["event_ids"]:
                newer = at >= _at(saved["at"])
                if packed is not None and (saved["answers"] == "{}" or saved.get("layout") == packed["layout"]):
                    if saved["answers"] != "{}":  # the first autosave is taken as it is
                        pair = (packed["answers"], saved["answers"])
                        packed["answers"] = _merge_packed(*(pair if newer else pair[::-1]))
                    saved.update(packed)
                else:
                    merged = _unpack_answers(self.registry, {**saved, "section": p.section.value})
                    if answers is None:
                        answers = _unpack_answers(self.registry, {**packed, "section": p.section.value})
                    if newer:
                        merged.update(answers)
                    else:  # an older autosave arriving late must not overwrite newer answers
                        for item, option in answers.items():
                            merged.setdefault(item, option)
                    saved.pop("layout", None)
                    saved.update(_pack_answers(merged, self._blueprint_of(s), p.section.value))
                if newer:
                    saved["at"] = at.isoformat()
                saved["event_ids"].append(eid)
        self._refresh(s, part)
        self._advance_window(s, p.session_id)

    def _on_SectionSubmitted(self, p: ev.SectionSubmittedPayload) -> None:
        packed, answers = self._sheet(p)
        s, part = self._lab_event(p.session_id, p.nip)
        assert part is not None
        at = self._trigger.occurred_at
        eid = str(self._trigger.event_id)
        old = part["sheets"].get(p.section.value)
        # A section submitted twice: the later occurred_at wins (event id breaks ties, so replays agree).
        if old is None or (at, eid) > (_at(old["at"]), old["event_id"]):
            sheet = packed if packed is not None else _pack_answers(answers or {}, self._blueprint_of(s), p.section.value)
            part["sheets"][p.section.value] = {**sheet, "completion": p.completion, "at": at.isoformat(), "event_id": eid}
        part["autosave"].pop(p.section.value, None)
        self._refresh(s, part)
        self._advance_window(s, p.session_id)

    def _on_CheckinWindowClosed(self, p: ev.CheckinWindowClosedPayload) -> None:
        """The wall-clock fallback: the lab went silent, so no event time will ever close the window."""
        s = self._session(p.session_id)
        if s["meta"] is None or s["window_closed"]:
            return
        s["window_closed"] = True
        s["closed_by_wall_clock"] = True
        self.sessions[p.session_id] = s
        self._refresh_session(p.session_id, s)
        self._summary_due.add(p.session_id)

    def _on_SessionClosed(self, p: ev.SessionClosedPayload) -> None:
        s, _ = self._lab_event(p.session_id)
        s["closed"] = True
        s["window_closed"] = True
        s["closed_by"] = str(self._trigger.event_id)
        self.sessions[p.session_id] = s
        self._refresh_session(p.session_id, s)
        self._summary_due.add(p.session_id)

    # ----------------------------------------------------------------------------------------------
    # Derivations
    # ----------------------------------------------------------------------------------------------

    def _fact(self, part: State) -> None:
        """Remember which attendance facts (events) are known: their count orders attendance rows."""
        facts = part.setdefault("facts", [])
        eid = str(self._trigger.event_id)
        if eid not in facts:
            facts.append(eid)

    @staticmethod
    def _revision(s: State, part: State) -> int:
        return len(part.get("facts", [])) + (1 if s["window_closed"] else 0)

    @staticmethod
    def _status_time(s: State, part: State, status: St) -> str:
        """When the fact that decided this status happened: the same whatever order the facts arrived in."""
        meta = s["meta"] or {}
        present = part["checkin"]["at"] if part["checkin"] else min(
            (x["at"] for x in part["sheets"].values()), key=_at, default=None)
        if status in (St.CHECKED_IN, St.UNEXPECTED) and present:
            return present
        if status is St.NO_SHOW:
            return meta.get("checkin_closes_at") or present
        if status is St.RESCHEDULED:
            return part["rescheduled_at"]
        if status is St.UNSCHEDULED:
            return part["unscheduled_at"]
        return (part["scheduled"] or {}).get("at") or meta.get("starts_at") or present

    def _track(self, s: State, session_id: str, nip: str, expected: bool = False) -> None:
        if nip not in s["nips"]:
            if not expected:
                self._admit(s, session_id, nip)
            elif session_id not in self.sessions:
                self._admit_session(session_id)
            s["nips"].append(nip)
        self.sessions[session_id] = s

    # ----------------------------------------------------------------------------------------------
    # Caps on state that input alone creates (StateLimits); each check runs before anything changes
    # ----------------------------------------------------------------------------------------------

    def _admit_session(self, session_id: str) -> None:
        """A session first heard of before its schedule: kept, unless the partition holds too many already."""
        key = _unscheduled_key(self.scope)
        registry = self.sessions.get(key) or {"ids": []}
        if session_id in registry["ids"]:
            return
        if len(registry["ids"]) >= self.limits.unscheduled_sessions:
            raise Rejected(Reason.STATE_LIMIT, f"session {session_id} is not scheduled and "
                           f"{len(registry['ids'])} unscheduled sessions are kept already "
                           "(CACT_UNSCHEDULED_SESSIONS_MAX)")
        registry["ids"].append(session_id)
        self.sessions[key] = registry

    def _forget_unscheduled(self, session_id: str) -> None:
        key = _unscheduled_key(self.scope)
        registry = self.sessions.get(key)
        if registry and session_id in registry["ids"]:
            registry["ids"].remove(session_id)
            self.sessions[key] = registry

    def _admit(self, s: State, session_id: str, nip: str) -> None:
        """A NIP first seen in a lab event: kept when scheduled here, or while the session's unexpected
        participants are under their cap."""
        if nip in s["nips"]:
            return
        stored = self.participants.get(participant_key(session_id, nip))
        if stored is not None and stored.get("scheduled") is not None:
            return
        if session_id not in self.sessions:
            self._admit_session(session_id)
        unexpected = s.setdefault("unexpected_nips", [])
        if nip in unexpected:
            return
        if len(unexpected) >= self.limits.unexpected_participants:
            raise Rejected(Reason.STATE_LIMIT, f"{len(unexpected)} participants nobody scheduled are kept for "
                           f"session {session_id} already (CACT_UNEXPECTED_PARTICIPANTS_MAX)")
        unexpected.append(nip)

    def _advance_window(self, s: State, session_id: str) -> None:
        """Event time closes the check-in window: the first lab event at or after the closing time."""
        meta = s["meta"]
        if meta is None or s["window_closed"] or self._trigger.occurred_at < _at(meta["checkin_closes_at"]):
            return
        s["window_closed"] = True
        self.sessions[session_id] = s
        self._refresh_session(session_id, s)
        self._summary_due.add(session_id)

    def _refresh_session(self, session_id: str, s: State) -> None:
        for nip in s["nips"]:
            self._refresh(s, self._participant(session_id, nip))

    def status(self, s: State, part: State) -> St | None:
        if part["rescheduled_to"]:
            return St.RESCHEDULED
        if part["unscheduled"]:
            return St.UNEXPECTED if part["checkin"] else St.UNSCHEDULED
        if part["scheduled"] is None:
            return St.UNEXPECTED if part["checkin"] or part["sheets"] else None
        if part["checkin"] or part["sheets"]:
            if self._late(s, part) and not self.attendance.late_admitted:
                return St.NO_SHOW
            return St.CHECKED_IN
        return St.NO_SHOW if s["window_closed"] and s["meta"] else St.SCHEDULED

    @staticmethod
    def _late(s: State, part: State) -> bool:
        meta, checkin = s["meta"], part["checkin"]
        return bool(meta and checkin and _at(checkin["at"]) > _at(meta["checkin_closes_at"]))

    def _refresh(self, s: State, part: State) -> None:
        key = participant_key(part["session_id"], part["nip"])
        status = self.status(s, part)
        # Emit on a new status, and on a new fact that leaves it unchanged: the last row stored then always
        # carries every fact, so replays in any order store the same row.
        if status is not None and (status != part["status"] or self._revision(s, part) != part.get("revision")):
            self._emit_attendance(s, part, status)
            if s["window_closed"]:
                self._summary_due.add(part["session_id"])
        self._maybe_score(s, part)
        self.participants[key] = part

    def _emit_attendance(self, s: State, part: State, status: St) -> None:
        previous = part["status"]
        meta = s["meta"] or {}
        late = self._late(s, part)
        revision = self._revision(s, part)
        self._out.append(ev.new_event(
            ev.AttendanceChanged, lab_id=PIPELINE_ID, occurred_at=_at(self._status_time(s, part, status)),
            event_id=ev.derived_id("attendance", part["session_id"], part["nip"], status, revision),
            payload={
                "session_id": part["session_id"],
                "activity_id": (part["scheduled"] or {}).get("home_activity_id") or meta.get("activity_id", "unknown"),
                "agency_id": (part["scheduled"] or {}).get("home_agency_id") or meta.get("agency_id", "unknown"),
                "lab_id": meta.get("lab_id") or UNKNOWN_LAB, "nip": part["nip"], "status": status, "previous": previous,
                "late": late, "correction": previous == St.NO_SHOW and status == St.CHECKED_IN,
                "rescheduled_to": part["rescheduled_to"],
                "rescheduled_from": (part["scheduled"] or {}).get("rescheduled_from"),
                "revision": revision,
            },
        ))
        part["status"] = status.value
        part["late"] = late
        part["revision"] = revision

    def _accreditation_warning(self, meta: State) -> str | None:
        """Told when the session is planned: an organiser whose accreditation ends before or soon after the
        session, or that no registry knows, makes results that will not be recognised."""
        organiser = meta.get("organiser_id")
        on = _at(meta["starts_at"]).date()
        if self.accreditation is None:
            return f"organiser {organiser}: no accreditation registry is loaded" if organiser else None
        return self.accreditation.warning(organiser, on)

    def _emit_summary(self, session_id: str) -> None:
        s = self._session(session_id)
        meta = s["meta"]
        if meta is None:
            return
        counts = {st: 0 for st in St}
        revision = int(bool(s["closed"])) + int(bool(s.get("closed_by_wall_clock")))
        for nip in s["nips"]:
            part = self._participant(session_id, nip)
            revision += self._revision(s, part)
            if part["status"] is not None:
                counts[St(part["status"])] += 1
        scheduled = counts[St.SCHEDULED] + counts[St.CHECKED_IN] + counts[St.NO_SHOW] + counts[St.RESCHEDULED]
        summary = {
            "session_id": session_id, "activity_id": meta["activity_id"], "agency_id": meta["agency_id"],
            "lab_id": meta.get("lab_id") or UNKNOWN_LAB, "starts_at": meta["starts_at"], "checkin_closes_at": meta["checkin_closes_at"],
            "ends_at": meta["ends_at"], "closed": bool(s["closed"]), "closed_by_wall_clock": bool(s.get("closed_by_wall_clock")),
            "scheduled": scheduled, "checked_in": counts[St.CHECKED_IN], "no_show": counts[St.NO_SHOW],
            "rescheduled": counts[St.RESCHEDULED], "unexpected": counts[St.UNEXPECTED],
            "no_show_rate": round(counts[St.NO_SHOW] / scheduled, 4) if scheduled else 0.0,
            "final": bool(s["window_closed"]), "revision": revision,
        }
        # Absent when they say nothing, so the summaries of sessions planned before them keep their ids.
        if meta.get("agency_name"):
            summary["agency_name"] = meta["agency_name"]
        if meta.get("organiser_id"):
            summary["organiser_id"] = meta["organiser_id"]
        warning = self._accreditation_warning(meta)
        if warning:
            summary["accreditation_warning"] = warning
        # A time that only depends on where the session is, so a replay in any order stores the same row.
        at = meta["ends_at"] if s["closed"] else meta["checkin_closes_at"] if s["window_closed"] else meta["starts_at"]
        self._out.append(ev.new_event(
            ev.SessionSummary, lab_id=PIPELINE_ID, occurred_at=_at(at),
            event_id=ev.derived_id("summary", session_id, _digest(summary)), payload=summary,
        ))

    # ----------------------------------------------------------------------------------------------
    # Scoring
    # ----------------------------------------------------------------------------------------------

    def _score_inputs(self, s: State, part: State, blueprint: Any, wanted: list[str]) -> str:
        """A digest of everything a result is computed from: sheets and autosaves by their event ids (an
        autosave's merged answers too: their merge depends on arrival), the schedule, the key and the policy."""
        meta, sched = s["meta"], part["scheduled"]
        sections: dict[str, Any] = {}
        for sec in wanted:
            if sec in part["sheets"]:
                sheet = part["sheets"][sec]
                sections[sec] = [sheet["event_id"], sheet["completion"], sheet["at"]]
            elif sec in part["autosave"]:
                saved = part["autosave"][sec]
                sections[sec] = [saved["event_ids"], saved["at"], saved["answers"]]
        return _digest({
            "blueprint": [blueprint.blueprint_id, blueprint.version], "policy": self.policy.digest,
            "meta": [meta[k] for k in ("activity_id", "agency_id", "purpose", "event_id", "ends_at")],
            "rescore": meta.get("rescore_event_id"), "rescored": self._rescore_of(s, part),
            "home": self._home(s, part), "organiser": meta.get("organiser_id"),
            "accreditation": self.accreditation.digest if self.accreditation is not None else None,
            "scheduled": [sched["event_id"], sched["tier"], sched["standard_levels"]],
            "checkin": (part["checkin"] or {}).get("at"), "sections": sections,
            "who": [part["nip"], part["session_id"]],
        })

    def _standing(self, organiser_id: str | None, tier: PositionTier, on: date,
                  outcome: scoring.Outcome) -> tuple[str, str | None]:
        """Whether a result counts (docs/scoring.md §6, "Whether it counts"). An organiser not accredited for the test date or the
        tier is final (``not_recognised``: never sent); too little evidence (``incomplete``) waits for an
        operator. Without a registry only BKN's own sessions count."""
        if self.accreditation is None:
            if organiser_id is not None:
                return "not_recognised", f"organiser {organiser_id}: no accreditation registry is loaded"
        else:
            verdict = self.accreditation.judge(organiser_id, tier, on)
            if not verdict.recognised:
                return "not_recognised", verdict.detail
        short = [f"{x.section.value}: {x.answered} of {x.items} answered (minimum "
                 f"{self.policy.minimum_answered(x.section)})"
                 for x in outcome.sections if x.answered < self.policy.minimum_answered(x.section)]
        if not any(x.answered for x in outcome.sections):
            return "incomplete", ("no item answered" + (f"; {'; '.join(short)}" if short else ""))[:500]
        if short:
            return "incomplete", "; ".join(short)[:500]
        return "counted", None

    def _maybe_score(self, s: State, part: State) -> None:
        meta, sched = s["meta"], part["scheduled"]
        if meta is None or sched is None or part["rescheduled_to"] or part["unscheduled"]:
            return
        if part["status"] != St.CHECKED_IN:
            return
        rescored = self._rescore_of(s, part)
        blueprint = self.registry.get(meta["blueprint_id"], (rescored or meta)["blueprint_version"])
        assert blueprint is not None  # SessionScheduled/RescoreRequested with an unknown blueprint are dead-lettered
        wanted = [sec.value for sec in blueprint.section_names]
        if not s["closed"] and not all(sec in part["sheets"] for sec in wanted):
            return
        # Scoring is the costliest step, and a participant is looked at again on every later event of the
        # session (its closing re-checks everyone): score again only when something scoring reads has changed.
        inputs = self._score_inputs(s, part, blueprint, wanted)
        if part["result"] and part["result"].get("inputs") == inputs:
            return
        sheets: dict[Section, scoring.Sheet] = {}
        provenance = {meta["event_id"], sched["event_id"]}
        if meta.get("rescore_event_id"):  # a whole-session rescore, from state written before rescores per activity
            provenance.add(meta["rescore_event_id"])
        if rescored:
            provenance.add(rescored["event_id"])
        flags: set[str] = set()
        times = []
        for sec in wanted:
            if sec in part["sheets"]:
                sheet = part["sheets"][sec]
                sheets[Section(sec)] = scoring.Sheet(_sheet_answers(self.registry, sheet, blueprint, sec), sheet["completion"])
                provenance.add(sheet["event_id"])
                times.append(sheet["at"])
                if sheet["completion"] == "timed_out":
                    flags.add("timed_out")
            elif sec in part["autosave"]:
                saved = part["autosave"][sec]
                sheets[Section(sec)] = scoring.Sheet(_sheet_answers(self.registry, saved, blueprint, sec), "autosave")
                provenance.update(saved["event_ids"])
                times.append(saved["at"])
                flags.add("scored_from_autosave")
            else:
                flags.add("section_missing")
        tier = PositionTier(sched["tier"])
        home = self._home(s, part)
        purpose = Purpose(home["home_purpose"])
        overrides = {Competency(c): v for c, v in (sched["standard_levels"] or {}).items()}
        outcome = scoring.score_participant(blueprint, sheets, tier=tier, purpose=purpose, policy=self.policy,
                                            standard_overrides=overrides)
        last = max(times, key=_at) if times else (part["checkin"] or {"at": meta["ends_at"]})["at"]
        assessed_on = _at(last).date()  # the lab's local date: the offset is kept
        body = {
            "result_id": str(ev.derived_id("result", part["nip"], home["home_activity_id"])),
            "nip": part["nip"], "activity_id": home["home_activity_id"], "session_id": part["session_id"],
            "agency_id": home["home_agency_id"], "purpose": purpose.value, "position_tier": tier.value,
            "blueprint_id": blueprint.blueprint_id, "blueprint_version": blueprint.version,
            "competencies": [scoring.competency_payload(c) for c in outcome.competencies],
            "jpm": outcome.jpm, "category": outcome.category,
            "strengths": outcome.strengths, "development_areas": outcome.development_areas,
            "sections": [scoring.section_payload(x) for x in outcome.sections],
            "assessed_on": assessed_on.isoformat(),
            "valid_until": scoring.add_years(assessed_on, self.policy.validity_years).isoformat(),
            "flags": sorted(flags), "provenance": sorted(provenance),
        }
        if outcome.potential is not None:  # absent, not null, without it: older results keep their digest
            body["potential"] = outcome.potential
        # Likewise absent when they say nothing new: a result sat at home, run by BKN and counted.
        if home["home_activity_id"] != meta["activity_id"]:
            body["host_activity_id"], body["host_agency_id"] = meta["activity_id"], meta["agency_id"]
        if meta.get("organiser_id"):
            body["organiser_id"] = meta["organiser_id"]
        standing, detail = self._standing(meta.get("organiser_id"), tier, assessed_on, outcome)
        if standing != "counted":
            body["standing"], body["standing_detail"] = standing, detail
        digest = _digest(body)
        previous = part["result"]
        if previous and previous["digest"] == digest:
            previous["inputs"] = inputs
            return
        version = (previous["version"] if previous else 0) + 1
        part["result"] = {"version": version, "digest": digest, "inputs": inputs}
        self._out.append(ev.new_event(
            ev.ParticipantScored, lab_id=PIPELINE_ID, occurred_at=self._trigger.occurred_at,
            event_id=ev.derived_id("scored", body["result_id"], version), payload={**body, "result_version": version},
        ))
