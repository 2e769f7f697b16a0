"""The worker's state, declared: every key a session or participant record holds, and what a new one holds.

State lives in two key-value views (Faust tables in the worker, dicts in unit tests), stored as JSON
(``streams/state_codec.py``):

- ``sessions[session_id]``: a :class:`SessionState`: the session's schedule, its participants, whether its
  check-in window and the session itself are closed, the latest lab time seen, lab events held for it;
- ``sessions["#unscheduled/<partition>"]``: an :class:`Unscheduled` record: the partition's sessions heard of
  before their schedule, and how many lab events they hold (``StateLimits``);
- ``participants[session_id/nip]``: a :class:`ParticipantState`: the facts about one participant in one
  session (scheduled, checked in, answer sheets, autosaved answers) and what has been emitted for them.

Why TypedDicts and not classes: a record is used as the very JSON object the table stores, so declaring it costs
nothing per event. Classes would be converted on every load and every flush: for a scored participant's record
(1.7 kB) a dataclass round trip took ~70 µs and a msgspec struct ~4 µs, against ~65-150 µs of processing per
event in all (issue 15's measurements); msgspec would also be a new dependency and write keys in another order.
mypy checks every key against these declarations, so a key cannot be added in passing, and
tests/unit/streams/test_state_types.py holds every stored record to them at run time.

Keys marked ``NotRequired`` are absent from records that never needed them, or that an older worker wrote; they
are read with a default. So a table recovered from the changelog of an older worker decodes as it always did,
and a record is written with the same keys, in the same order, as before these declarations.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, NotRequired, TypedDict

from streams.sheets import PackedSheet

# --------------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------------


class SessionMeta(TypedDict):
    """The session's schedule: ``SessionScheduled``'s payload as JSON, key for key, and what the worker adds.
    Keys read with a default are those a schedule from an older scheduler, or older state, may lack."""

    session_id: str
    lab_id: NotRequired[str | None]  # the hosting lab; pinned by the first accepted lab event when None
    activity_id: str
    agency_id: str
    agency_name: NotRequired[str]
    starts_at: str
    checkin_closes_at: str
    ends_at: str
    blueprint_id: str
    purpose: str
    seats: NotRequired[int | None]
    organiser_id: NotRequired[str | None]
    event_id: str  # of the SessionScheduled event
    blueprint_version: str  # the key the session was scheduled with, kept over later schedules
    rescore_event_id: NotRequired[str]  # a whole-session rescore, in state from before rescores per activity


class Rescore(TypedDict):
    """A rescore requested for the results of one activity sat in the session."""

    blueprint_version: str
    event_id: str


class HeldEvent(TypedDict):
    """A lab event that came before its session's schedule, kept unapplied (``streams/holding.py``)."""

    seq: int  # arrival order within the session
    event: dict[str, Any]  # the event as JSON (state_codec.held_event decodes it)
    position: list[Any]  # where it was read: [topic, partition, offset, index in its EventBatch or None]


class SessionState(TypedDict):
    meta: SessionMeta | None  # None until the schedule arrives
    nips: list[str]  # every participant the session keeps state for, in the order first seen
    window_closed: bool
    closed: bool
    max_at: str | None  # the latest lab event time seen
    closed_by: str | None  # the SessionClosed event id
    closed_by_wall_clock: NotRequired[bool]  # the window was closed by CheckinWindowClosed
    unexpected_nips: NotRequired[list[str]]  # NIPs seen in lab events and not scheduled (StateLimits)
    rescores: NotRequired[dict[str, Rescore]]  # by activity id
    held: NotRequired[list[HeldEvent]]  # held events not about one participant
    held_nips: NotRequired[list[str]]  # participants whose record holds held events
    held_seq: NotRequired[int]  # the next held event's seq


class Unscheduled(TypedDict):
    """Per partition: sessions kept before their schedule, and the lab events they hold (``StateLimits``)."""

    ids: list[str]
    held: NotRequired[int]


# --------------------------------------------------------------------------------------------------
# Participants
# --------------------------------------------------------------------------------------------------


class Scheduled(TypedDict):
    """From ``ParticipantScheduled``. The ``home_*`` keys say where a susulan arrival's result is filed; state
    from before they existed lacks them."""

    at: str
    name: str
    tier: str
    event_id: str
    standard_levels: dict[str, int] | None
    rescheduled_from: NotRequired[str | None]
    home_agency_id: NotRequired[str | None]
    home_activity_id: NotRequired[str | None]
    home_purpose: NotRequired[str | None]


class Checkin(TypedDict):
    at: str  # the earliest check-in's time
    event_id: str


class StoredSheet(PackedSheet):
    """A submitted section: the later occurred_at wins, the event id breaks ties."""

    completion: str
    at: str
    event_id: str


class Autosave(PackedSheet):
    """The merged autosaves of a section not submitted (yet)."""

    at: str  # of the newest autosave
    event_ids: list[str]


class ResultMark(TypedDict):
    """What was emitted as the participant's result, and what it was computed from."""

    version: int
    digest: str
    inputs: NotRequired[str]


class ParticipantState(TypedDict):
    session_id: str
    nip: str
    scheduled: Scheduled | None
    unscheduled: bool
    rescheduled_to: str | None
    checkin: Checkin | None
    sheets: dict[str, StoredSheet]  # by section
    autosave: dict[str, Autosave]  # by section
    status: str | None  # the attendance status last emitted
    late: bool
    result: ResultMark | None
    facts: NotRequired[list[str]]  # ids of the attendance facts known: their count orders attendance rows
    revision: NotRequired[int]  # of the attendance row last emitted
    rescheduled_at: NotRequired[str]  # with rescheduled_to
    unscheduled_at: NotRequired[str]  # with unscheduled
    held: NotRequired[list[HeldEvent]]  # lab events about this participant held before the schedule


# --------------------------------------------------------------------------------------------------
# New records, keys, and the tables as typed records
# --------------------------------------------------------------------------------------------------


def new_session() -> SessionState:
    return {"meta": None, "nips": [], "window_closed": False, "closed": False, "max_at": None, "closed_by": None}


def new_participant(session_id: str, nip: str) -> ParticipantState:
    return {"session_id": session_id, "nip": nip, "scheduled": None, "unscheduled": False, "rescheduled_to": None,
            "checkin": None, "sheets": {}, "autosave": {}, "status": None, "late": False, "result": None}


def participant_key(session_id: str, nip: str) -> str:
    return f"{session_id}/{nip}"


def unscheduled_key(scope: str) -> str:
    """The key of a partition's :class:`Unscheduled` record ('#' is not allowed in session ids)."""
    return f"#unscheduled/{scope}"


class StateViews:
    """The two tables as declared records: where a stored JSON object is taken as its declared type, and
    where a record not stored yet gets its defaults. A record is changed in place and written back with
    ``put_*``: the worker's tables write a key only when it is put (``streams/state.py``)."""

    __slots__ = ("sessions", "participants")

    def __init__(self, sessions: MutableMapping[str, Any], participants: MutableMapping[str, Any]) -> None:
        self.sessions = sessions
        self.participants = participants

    def session(self, session_id: str) -> SessionState:
        """The session's record, a new one when none is stored (not stored until put)."""
        found: SessionState | None = self.sessions.get(session_id)
        return found or new_session()

    def has_session(self, session_id: str) -> bool:
        return session_id in self.sessions

    def put_session(self, session_id: str, s: SessionState) -> None:
        self.sessions[session_id] = s

    def participant(self, session_id: str, nip: str) -> ParticipantState:
        """The participant's record, a new one when none is stored (not stored until put)."""
        found: ParticipantState | None = self.participants.get(participant_key(session_id, nip))
        return found or new_participant(session_id, nip)

    def stored_participant(self, session_id: str, nip: str) -> ParticipantState | None:
        found: ParticipantState | None = self.participants.get(participant_key(session_id, nip))
        return found

    def held_participant(self, session_id: str, nip: str) -> ParticipantState:
        """A participant that holds events: stored by ``holding.hold`` (KeyError when not)."""
        found: ParticipantState = self.participants[participant_key(session_id, nip)]
        return found

    def put_participant(self, part: ParticipantState) -> None:
        self.participants[participant_key(part["session_id"], part["nip"])] = part

    def unscheduled(self, scope: str) -> Unscheduled | None:
        found: Unscheduled | None = self.sessions.get(unscheduled_key(scope))
        return found

    def put_unscheduled(self, scope: str, registry: Unscheduled) -> None:
        self.sessions[unscheduled_key(scope)] = registry
