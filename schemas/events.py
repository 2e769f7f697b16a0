"""Event contract v1: every message that crosses Kafka, defined once for producers and streams.

Each event is an envelope (``event_id``, ``event_type``, ``schema_version``, ``occurred_at``, ``lab_id``) around
a typed ``payload``. ``event_id`` makes a resend harmless downstream; ``occurred_at`` must carry its UTC offset
because labs run in WIB (+07:00), WITA (+08:00) and WIT (+09:00) and windows are closed by event time.
The JSON Schemas under ``schemas/json/`` are generated from these classes (``cact schemas export``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas import topics
from schemas.domain import AttendanceStatus, Competency, PositionTier, Purpose, Section
from schemas.nip import validate_nip

SCHEMA_VERSION = 1
EVENT_NAMESPACE = uuid.UUID("6f1c4a52-8d0e-4c55-9a43-2b7b8a1f0c11")

NIP = Annotated[
    str,
    AfterValidator(validate_nip),
    Field(pattern=r"^[0-9]{18}$", description="18-digit NIP (PNS or PPPK layout), dates checked."),
]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
ItemId = Annotated[str, Field(min_length=1, max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


# --------------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------------


class SessionScheduledPayload(_Model):
    session_id: Id
    activity_id: Id = Field(description="The assessment activity (kegiatan) the session belongs to.")
    agency_id: Id = Field(description="The user agency (instansi) whose participants sit the session.")
    agency_name: str = Field(default="", max_length=200)
    starts_at: AwareDatetime
    checkin_closes_at: AwareDatetime = Field(description="After this, a scheduled participant not checked in is a no-show.")
    ends_at: AwareDatetime
    blueprint_id: Id = Field(description="Test blueprint, e.g. `cact-full` or `mansoskul-only`.")
    purpose: Purpose
    seats: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "SessionScheduledPayload":
        if not self.starts_at <= self.checkin_closes_at <= self.ends_at:
            raise ValueError("expected starts_at <= checkin_closes_at <= ends_at")
        return self


class ParticipantScheduledPayload(_Model):
    session_id: Id
    nip: NIP
    name: str = Field(max_length=200)
    position_tier: PositionTier
    standard_levels: dict[Competency, Annotated[int, Field(ge=1, le=5)]] | None = Field(
        default=None, description="Overrides the tier's standard level for the named competencies."
    )
    rescheduled_from: Id | None = Field(
        default=None, description="Set when the participant was moved here from another session (susulan)."
    )


class ParticipantRescheduledPayload(_Model):
    nip: NIP
    from_session_id: Id
    to_session_id: Id
    reason: str = Field(default="", max_length=500)


class ParticipantUnscheduledPayload(_Model):
    session_id: Id
    nip: NIP
    reason: str = Field(default="", max_length=500)


class ParticipantCheckedInPayload(_Model):
    session_id: Id
    nip: NIP
    seat: str | None = Field(default=None, max_length=32)


class SectionStartedPayload(_Model):
    session_id: Id
    nip: NIP
    section: Section


class Answer(_Model):
    item_id: ItemId
    option: str | None = Field(max_length=8, description="Chosen option label; null when left blank.")


class AnswersSavedPayload(_Model):
    session_id: Id
    nip: NIP
    section: Section
    answers: list[Answer] = Field(min_length=1, max_length=1000)


class SectionSubmittedPayload(_Model):
    session_id: Id
    nip: NIP
    section: Section
    completion: Literal["submitted", "timed_out"]
    answers: list[Answer] = Field(max_length=1000, description="The whole final answer sheet of the section.")


class SessionClosedPayload(_Model):
    session_id: Id


class CompetencyResult(_Model):
    code: Competency
    siasn_field: str
    raw: float
    max_raw: float
    level: int = Field(ge=1, le=5)
    standard: int = Field(ge=1, le=5)
    gap: int


class SectionScore(_Model):
    section: Section
    score: float = Field(ge=0, le=100)
    level: int = Field(ge=1, le=5)
    answered: int
    items: int
    completion: Literal["submitted", "timed_out", "autosave"]
    subtests: dict[str, float] = Field(default_factory=dict, description="0-100 score per sub-test.")


class ParticipantScoredPayload(_Model):
    result_id: uuid.UUID = Field(description="Stable per (NIP, activity): all versions share it.")
    result_version: int = Field(ge=1, description="Increases when the result is recomputed (resubmission, rescoring).")
    nip: NIP
    activity_id: Id
    session_id: Id
    agency_id: Id
    purpose: Purpose
    position_tier: PositionTier
    blueprint_id: Id
    blueprint_version: str
    competencies: list[CompetencyResult]
    jpm: float | None = Field(description="Job Person Match, percent; null when Mansoskul was not taken.")
    category: str | None
    strengths: list[Competency]
    development_areas: list[Competency]
    sections: list[SectionScore]
    assessed_on: date
    valid_until: date
    flags: list[str] = Field(default_factory=list, description="e.g. `scored_from_autosave`, `timed_out`.")
    provenance: list[uuid.UUID] = Field(description="event_id of every event the result was computed from.")


class AttendanceChangedPayload(_Model):
    session_id: Id
    activity_id: Id
    agency_id: Id
    nip: NIP
    status: AttendanceStatus
    previous: AttendanceStatus | None
    late: bool = False
    correction: bool = Field(default=False, description="True when this reverses an earlier declaration.")
    rescheduled_to: Id | None = None
    rescheduled_from: Id | None = None


class SessionSummaryPayload(_Model):
    session_id: Id
    activity_id: Id
    agency_id: Id
    scheduled: int
    checked_in: int
    no_show: int
    rescheduled: int
    unexpected: int
    no_show_rate: float
    final: bool = Field(description="True once the check-in window has closed.")


class DeadLetteredPayload(_Model):
    reason: str = Field(description="Machine-readable reason code, see docs/events.md.")
    detail: str = Field(max_length=2000)
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None
    value_b64: str = Field(description="The original message bytes, base64.")


# --------------------------------------------------------------------------------------------------
# Envelopes
# --------------------------------------------------------------------------------------------------


class Event(_Model):
    """Fields every event carries."""

    topic: ClassVar[topics.TopicSpec]
    key_field: ClassVar[str] = "session_id"

    event_id: uuid.UUID
    event_type: str
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(description="RFC 3339 with UTC offset, by the emitter's clock.")
    lab_id: Id = Field(description="The lab or system that emitted the event.")
    payload: Any

    def key(self) -> str:
        return str(getattr(self.payload, self.key_field))

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class SessionScheduled(Event):
    topic = topics.SCHEDULE
    event_type: Literal["SessionScheduled"] = "SessionScheduled"
    payload: SessionScheduledPayload


class ParticipantScheduled(Event):
    topic = topics.SCHEDULE
    event_type: Literal["ParticipantScheduled"] = "ParticipantScheduled"
    payload: ParticipantScheduledPayload


class ParticipantRescheduled(Event):
    topic = topics.SCHEDULE
    key_field = "from_session_id"
    event_type: Literal["ParticipantRescheduled"] = "ParticipantRescheduled"
    payload: ParticipantRescheduledPayload


class ParticipantUnscheduled(Event):
    topic = topics.SCHEDULE
    event_type: Literal["ParticipantUnscheduled"] = "ParticipantUnscheduled"
    payload: ParticipantUnscheduledPayload


class ParticipantCheckedIn(Event):
    topic = topics.LAB
    event_type: Literal["ParticipantCheckedIn"] = "ParticipantCheckedIn"
    payload: ParticipantCheckedInPayload


class SectionStarted(Event):
    topic = topics.LAB
    event_type: Literal["SectionStarted"] = "SectionStarted"
    payload: SectionStartedPayload


class AnswersSaved(Event):
    topic = topics.LAB
    event_type: Literal["AnswersSaved"] = "AnswersSaved"
    payload: AnswersSavedPayload


class SectionSubmitted(Event):
    topic = topics.LAB
    event_type: Literal["SectionSubmitted"] = "SectionSubmitted"
    payload: SectionSubmittedPayload


class SessionClosed(Event):
    topic = topics.LAB
    event_type: Literal["SessionClosed"] = "SessionClosed"
    payload: SessionClosedPayload


class ParticipantScored(Event):
    topic = topics.RESULTS
    key_field = "nip"
    event_type: Literal["ParticipantScored"] = "ParticipantScored"
    payload: ParticipantScoredPayload


class AttendanceChanged(Event):
    topic = topics.ATTENDANCE
    event_type: Literal["AttendanceChanged"] = "AttendanceChanged"
    payload: AttendanceChangedPayload


class SessionSummary(Event):
    topic = topics.ATTENDANCE
    event_type: Literal["SessionSummary"] = "SessionSummary"
    payload: SessionSummaryPayload


class DeadLettered(Event):
    topic = topics.DEADLETTER
    key_field = "source_topic"
    event_type: Literal["DeadLettered"] = "DeadLettered"
    payload: DeadLetteredPayload


SCHEDULE_EVENTS = (SessionScheduled, ParticipantScheduled, ParticipantRescheduled, ParticipantUnscheduled)
LAB_EVENTS = (ParticipantCheckedIn, SectionStarted, AnswersSaved, SectionSubmitted, SessionClosed)
OUTPUT_EVENTS = (ParticipantScored, AttendanceChanged, SessionSummary, DeadLettered)
ALL_EVENTS: tuple[type[Event], ...] = SCHEDULE_EVENTS + LAB_EVENTS + OUTPUT_EVENTS
EVENT_TYPES: dict[str, type[Event]] = {cls.model_fields["event_type"].default: cls for cls in ALL_EVENTS}

InputEvent = Union[
    SessionScheduled, ParticipantScheduled, ParticipantRescheduled, ParticipantUnscheduled,
    ParticipantCheckedIn, SectionStarted, AnswersSaved, SectionSubmitted, SessionClosed,
]

E = TypeVar("E", bound=Event)


def new_event(cls: type[E], *, lab_id: str, occurred_at: datetime, payload: dict[str, Any] | BaseModel,
              event_id: uuid.UUID | None = None) -> E:
    """Build and validate an event; raises pydantic.ValidationError when it breaks the contract."""
    return cls.model_validate(
        {
            "event_id": event_id or uuid.uuid4(),
            "event_type": cls.model_fields["event_type"].default,
            "occurred_at": occurred_at,
            "lab_id": lab_id,
            "payload": payload,
        }
    )


def derived_id(*parts: object) -> uuid.UUID:
    """Deterministic event id for events the pipeline derives, so a replay emits the same ids."""
    return uuid.uuid5(EVENT_NAMESPACE, "|".join(str(p) for p in parts))
