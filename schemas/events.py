"""Event contract v1: every message that crosses Kafka, defined once for producers and streams.

Each event is an envelope (``event_id``, ``event_type``, ``schema_version``, ``occurred_at``, ``lab_id``) around
a typed ``payload``. ``event_id`` makes a resend harmless downstream; ``occurred_at`` must carry its UTC offset
because labs run in WIB (+07:00), WITA (+08:00) and WIT (+09:00) and windows are closed by event time.
The JSON Schemas under ``schemas/json/`` are generated from these classes (``cact schemas export``).
"""

from __future__ import annotations

import operator
import re
import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from annotated_types import Interval
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from schemas import topics
from schemas.domain import AttendanceStatus, Competency, PositionTier, Purpose, Section
from schemas.nip import validate_nip

SCHEMA_VERSION: Literal[1] = 1
EVENT_NAMESPACE = uuid.UUID("6f1c4a52-8d0e-4c55-9a43-2b7b8a1f0c11")

def _text_only(value: Any) -> Any:
    """Choices (enums) take strings only: the enum's own error would repr() the value, and a list nested
    1,000 deep exhausts the stack in repr()."""
    if isinstance(value, str):
        return value
    raise ValueError("must be a string")


PurposeChoice = Annotated[Purpose, BeforeValidator(_text_only)]
TierChoice = Annotated[PositionTier, BeforeValidator(_text_only)]
SectionChoice = Annotated[Section, BeforeValidator(_text_only)]
CompetencyChoice = Annotated[Competency, BeforeValidator(_text_only)]
StatusChoice = Annotated[AttendanceStatus, BeforeValidator(_text_only)]


def _month_day(sep: str) -> str:
    """Month and day of a real date (29 February aside), as a regular expression every engine reads alike."""
    return (f"(?:(?:0[13578]|1[02]){sep}(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11){sep}(?:0[1-9]|[12][0-9]|30)"
            f"|02{sep}(?:0[1-9]|1[0-9]|2[0-8]))")


#: Leap years by century (every fourth year: 1900 and 2100 are outside every range below, 2000 is leap).
_LEAP_19, _LEAP_20 = "19(?:[468][048]|[579][26])", "20(?:[02468][048]|[13579][26])"
_LEAP_21 = "21(?:0[48]|[2468][048]|[13579][26])"

#: The NIP layout as tightly as a pattern can say it without knowing today's date: birth date YYYYMMDD (a real
#: day of 1940-2099), appointment year 1958-2099, month 01-12 (PNS) or marker 21-29 (PPPK), gender 1|2, serial.
#: What is left (birth year at most this year - 17, appointed at 18 or later, not after next year) is the rule
#: ``nip_dates`` of schemas/rules.py.
_NIP_BIRTH = f"(?:(?:19[4-9][0-9]|20[0-9]{{2}}){_month_day('')}|(?:{_LEAP_19}|{_LEAP_20})0229)"
NIP_PATTERN = "^" + _NIP_BIRTH + "(?:195[89]|19[6-9][0-9]|20[0-9]{2})(?:0[1-9]|1[0-2]|2[1-9])[12][0-9]{3}$"
NIP = Annotated[
    str,
    AfterValidator(validate_nip),
    Field(pattern=NIP_PATTERN, description="18-digit NIP (PNS or PPPK layout), dates checked."),
]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]

# --- What a hostile sender cannot get past the decoder (docs/events.md "Limits") -------------------------
# Every value that passes must be storable as it is on PostgreSQL and SQLite and convertible to UTC and
# back: `0001-01-01T00:00:00+14:00` once passed and then stopped the results store for good (issue 12).

#: Instants are written with a year from 2000 to 2099 and an offset of real time zones (-12:00 to +14:00), so
#: their UTC conversion never leaves 1999-12-31..2100-01-01: far inside what Python, PostgreSQL and SQLite hold,
#: and wider than any schedule, lab clock or replay of old spools the pipeline can meet.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099
MAX_OFFSET_WEST, MAX_OFFSET_EAST = timedelta(hours=12), timedelta(hours=14)
_OFFSET = "(?:Z|[+](?:0[0-9]|1[0-3]):[0-5][0-9]|[+]14:00|-(?:0[0-9]|1[01]):[0-5][0-9]|-12:00)"
_DATE_20 = f"(?:20[0-9]{{2}}-{_month_day('-')}|{_LEAP_20}-02-29)"
#: The one written form of an instant: RFC 3339 with `T`, a real date of 2000-2099, hours 00-23, minutes and
#: seconds 00-59 (no leap second), at most 9 decimals (kept to the microsecond) and a `Z` or `±hh:mm` offset.
#: Published as the JSON Schemas' pattern and checked the same here, so that every validator agrees without
#: relying on `format` (an annotation in draft 2020-12, and each library's date-time differs).
INSTANT_PATTERN = f"^{_DATE_20}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]{{1,9}})?{_OFFSET}$"
_INSTANT = re.compile(INSTANT_PATTERN)
_INSTANT_RULE = ("must be an RFC 3339 date-time such as 2026-11-03T07:52:10+08:00: a real date from 2000 to 2099, "
                 "'T', hh:mm:ss, and 'Z' or an offset from -12:00 to +14:00")
#: A calendar date (a result's ``assessed_on`` and ``valid_until``): YYYY-MM-DD, a real date of 2000-2199 (a
#: result assessed in 2099 is valid until 2102).
DATE_PATTERN = f"^(?:2[01][0-9]{{2}}-{_month_day('-')}|(?:{_LEAP_20}|{_LEAP_21})-02-29)$"
_DATE = re.compile(DATE_PATTERN)
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2199, 12, 31)


def _check_instant(value: Any) -> Any:
    """Only the written form above, or an aware datetime inside the same bounds (events built in Python).

    Pydantic alone would also take a number or a digit string as Unix time, a space for the `T`, `+23:59`
    and year 1: none of these is what the published schema allows, and some cannot be stored."""
    if isinstance(value, str):
        if not _INSTANT.fullmatch(value):
            raise ValueError(_INSTANT_RULE)
        return value
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None and not (EARLIEST_YEAR <= value.year <= LATEST_YEAR
                                       and -MAX_OFFSET_WEST <= offset <= MAX_OFFSET_EAST
                                       and offset % timedelta(minutes=1) == timedelta(0)):
            raise ValueError(_INSTANT_RULE)
        return value  # a naive one is refused by AwareDatetime, with its own message
    raise ValueError(_INSTANT_RULE)


Instant = Annotated[AwareDatetime, BeforeValidator(_check_instant),
                    WithJsonSchema({"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN})]


def in_contract_range(at: datetime) -> bool:
    """Whether an aware datetime may be an event's time (e.g. a Kafka record timestamp used as one)."""
    try:
        _check_instant(at)
    except ValueError:
        return False
    return at.utcoffset() is not None


#: Canonical RFC 4122 text: 36 characters, hyphens at 8-4-4-4-12, hex in either case. Python's UUID also reads
#: 32 bare digits, braces and ``urn:uuid:``; the published schemas do not, so neither does the decoder.
UUID_PATTERN = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
_UUID = re.compile(UUID_PATTERN)


def _check_uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID) or (isinstance(value, str) and _UUID.fullmatch(value)):
        return value
    raise ValueError("must be a UUID written as 8-4-4-4-12 hex digits, e.g. 3b0f8f0e-6a53-4a4f-9a57-0d1b0f3c2a11")


Uuid = Annotated[uuid.UUID, BeforeValidator(_check_uuid),
                 WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN})]


def _check_day(value: Any) -> Any:
    """Only YYYY-MM-DD, or a date in the same range: pydantic alone reads a Unix time or a midnight datetime."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        return value
    if isinstance(value, date) and not isinstance(value, datetime) and EARLIEST_DAY <= value <= LATEST_DAY:
        return value
    raise ValueError("must be a date written YYYY-MM-DD, a real day from 2000 to 2199")


Day = Annotated[date, BeforeValidator(_check_day),
                WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN})]

#: The largest integer every JSON reader holds exactly (2^53 - 1, JavaScript's MAX_SAFE_INTEGER): the bound of
#: every count and offset, so that no validator compares a rounded double with it and orjson never meets an
#: integer beyond 64 bits that a schema allowed.
MAX_SAFE_INT = 2**53 - 1


def _check_number(value: Any) -> Any:
    """JSON numbers only: pydantic would read ``true`` as 1 and ``"5"`` as 5, which no schema allows. An integral
    float such as ``40.0`` is an integer to JSON Schema, and stays one here."""
    if type(value) is bool or not isinstance(value, (int, float)):
        raise ValueError("must be a JSON number, not a string or a boolean")
    return value


# Integers always carry both bounds, in the model and its published schema alike (bounds first: see the schema),
# and are JSON numbers only. Written out per range, so a type checker reads them as types.
_IntCheck = BeforeValidator(_check_number)
#: A count: 0 up to the largest integer every JSON reader holds exactly.
Count = Annotated[int, Interval(ge=0, le=MAX_SAFE_INT), _IntCheck]
Positive = Annotated[int, Interval(ge=1, le=MAX_SAFE_INT), _IntCheck]
#: A competency or section level, 1-5, or its position standard.
Level = Annotated[int, Interval(ge=1, le=5), _IntCheck]
#: A level minus its standard.
Gap = Annotated[int, Interval(ge=-4, le=4), _IntCheck]
Seats = Annotated[int, Interval(ge=1, le=10_000), _IntCheck]
Int32 = Annotated[int, Interval(ge=0, le=2**31 - 1), _IntCheck]


#: A real number, integers included, never a string or a boolean (pydantic's strict float).
Number = StrictFloat
Flag = StrictBool


#: No control characters (U+0000-U+001F, U+007F) in text: PostgreSQL refuses U+0000 in text and JSON, and the
#: others are never part of a name, seat or version, only of an attack on a log or a terminal.
NO_CONTROL = r"^[^\u0000-\u001f\u007f]*$"
#: Free-text reasons may hold tabs and line breaks, no other control character.
NO_CONTROL_BUT_LINES = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"
_CONTROL_CHAR = re.compile("[\x00-\x1f\x7f]")
ItemId = Annotated[str, Field(min_length=1, max_length=64, pattern=NO_CONTROL)]


def _escape(c: str) -> str:
    if c.isprintable():
        return c
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: str, max_chars: int) -> str:
    """Diagnostic text that is safe to log, store and show whatever it quotes: control and format characters
    (a NUL, a terminal escape, a right-to-left override), unassigned code points and lone surrogates escaped
    as ``\\xNN``/``\\uNNNN``, at most ``max_chars`` characters."""
    text = text[: max_chars + 1]
    if not text.isprintable():
        text = "".join(map(_escape, text))
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


#: Meanings of fields that recur across payloads, so each is documented once (schemas and docs/events.md).
FIELD_DOCS: dict[str, str] = {
    "session_id": "The test session (one lab, one time slot).",
    "activity_id": "The assessment activity (kegiatan) the session belongs to.",
    "agency_id": "The user agency (instansi) whose participants sit the session.",
    "agency_name": "Display name of the agency.",
    "starts_at": "Start of the session, with the lab's UTC offset.",
    "ends_at": "Planned end of the session.",
    "purpose": "`mapping` (competency mapping) or `position_filling`: selects the category set.",
    "seats": "Seats in the lab for this session.",
    "nip": "The participant's NIP (18 digits, validated).",
    "name": "The participant's name, for the lab's roster.",
    "position_tier": "Position tier: sets the default standard level of each competency.",
    "from_session_id": "The session the participant was scheduled in.",
    "to_session_id": "The session the participant is moved to.",
    "reason": "Free-text reason, for operators.",
    "seat": "Seat or workstation label.",
    "section": "`mansoskul`, `emerging_skills` or `digital_literacy`.",
    "completion": "`submitted` by the participant or `timed_out` at the end of the section's time.",
    "item_id": "Item identifier from the blueprint (never its key).",
    "code": "Competency code M1-M8, S1.",
    "siasn_field": "The competency's field name in the SI ASN API.",
    "raw": "Sum of the chosen options' weights.",
    "max_raw": "Highest possible raw score.",
    "level": "Proficiency level 1-5.",
    "standard": "The position's standard level for this competency.",
    "gap": "level - standard; >= 0 is a strength.",
    "score": "Score 0-100.",
    "answered": "Items answered (not blank).",
    "items": "Items in the section.",
    "status": "Attendance status.",
    "previous": "The status before this change; null for the first.",
    "late": "Checked in after the check-in window closed.",
    "rescheduled_to": "Set when moved to another session.",
    "scheduled": "Participants scheduled (including those rescheduled away).",
    "checked_in": "Participants checked in.",
    "no_show": "Scheduled, not checked in when the window closed.",
    "rescheduled": "Moved to another session.",
    "unexpected": "Checked in without being scheduled here: for the operator to resolve.",
    "no_show_rate": "no_show / scheduled.",
    "source_topic": "Where the rejected message was read: also the dead letter's Kafka key.",
    "source_partition": "Its partition.",
    "source_offset": "Its offset.",
    "key_b64": "The original key, base64.",
    "strengths": "Competencies at or above the standard.",
    "development_areas": "Competencies below the standard.",
    "sections": "Score of each section of the blueprint.",
    "competencies": "The nine competencies.",
    "category": "Category by purpose (Optimal/Cukup Optimal/Kurang Optimal or MS/MMS/KMS).",
    "blueprint_version": "Version of the blueprint used.",
    "assessed_on": "The lab's local date of the last answer sheet.",
    "valid_until": "Three years after assessed_on.",
    "answers": "The answers: item id and chosen option (null = blank).",
    "blueprint_id": "The test blueprint the result was scored with.",
    "rescheduled_from": "Set when moved here from another session (susulan).",
    "detail": "Human-readable explanation of the reason.",
}


def _describe_fields(schema: dict[str, Any]) -> None:
    for name, prop in schema.get("properties", {}).items():
        if "description" not in prop and FIELD_DOCS.get(name):
            prop["description"] = FIELD_DOCS[name]


class _Model(BaseModel):
    # No NaN or infinity: JSON has neither, and a NaN score would compare as nothing at all downstream.
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, allow_inf_nan=False,
                              json_schema_extra=_describe_fields)


# --------------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------------


class SessionScheduledPayload(_Model):
    session_id: Id
    lab_id: Id | None = Field(
        default=None, description="The lab hosting the session: only its events are accepted for the session. "
        "When absent (a scheduler older than this field), the first lab to send an event for the session after "
        "its schedule is known becomes its host.")
    activity_id: Id = Field(description="The assessment activity (kegiatan) the session belongs to.")
    agency_id: Id = Field(description="The user agency (instansi) whose participants sit the session.")
    agency_name: str = Field(default="", max_length=200, pattern=NO_CONTROL)
    starts_at: Instant
    checkin_closes_at: Instant = Field(description="After this, a scheduled participant not checked in is a no-show.")
    ends_at: Instant
    blueprint_id: Id = Field(description="Test blueprint, e.g. `cact-full` or `mansoskul-only`.")
    purpose: PurposeChoice
    seats: Seats | None = None
    organiser_id: Id | None = Field(
        default=None, description="The institution that runs the session, by its id in the accreditation registry "
        "(docs/accreditation.md); absent: BKN itself (head office, a regional office or a technical unit).")

    @model_validator(mode="after")
    def _ordered(self) -> SessionScheduledPayload:
        if not self.starts_at <= self.checkin_closes_at <= self.ends_at:
            raise ValueError("expected starts_at <= checkin_closes_at <= ends_at")
        return self


class ParticipantScheduledPayload(_Model):
    session_id: Id
    nip: NIP
    name: str = Field(max_length=200, pattern=NO_CONTROL)
    position_tier: TierChoice
    standard_levels: dict[Competency, Level] | None = Field(
        default=None, description="Overrides the tier's standard level for the named competencies."
    )
    rescheduled_from: Id | None = Field(
        default=None, description="Set when the participant was moved here from another session (susulan)."
    )
    home_agency_id: Id | None = Field(
        default=None, description="With rescheduled_from: the agency the participant belongs to.")
    home_activity_id: Id | None = Field(
        default=None, description="With rescheduled_from: the activity the participant belongs to.")
    home_purpose: PurposeChoice | None = Field(
        default=None, description="With home_activity_id (required with it): the purpose of the participant's home "
        "activity, which selects the category set of their result.")

    @model_validator(mode="after")
    def _home_whole(self) -> ParticipantScheduledPayload:
        if self.home_activity_id is not None and (self.home_agency_id is None or self.home_purpose is None):
            raise ValueError("home_activity_id needs home_agency_id and home_purpose")
        return self


class ParticipantRescheduledPayload(_Model):
    nip: NIP
    from_session_id: Id
    to_session_id: Id
    reason: str = Field(default="", max_length=500, pattern=NO_CONTROL_BUT_LINES)


class ParticipantUnscheduledPayload(_Model):
    session_id: Id
    nip: NIP
    reason: str = Field(default="", max_length=500, pattern=NO_CONTROL_BUT_LINES)


class RescoreRequestedPayload(_Model):
    session_id: Id
    activity_id: Id
    blueprint_id: Id
    blueprint_version: str = Field(min_length=1, max_length=32, pattern=NO_CONTROL,
                                   description="The corrected blueprint version to rescore with.")
    reason: str = Field(default="", max_length=500, pattern=NO_CONTROL_BUT_LINES)


class ParticipantCheckedInPayload(_Model):
    session_id: Id
    nip: NIP
    seat: str | None = Field(default=None, max_length=32, pattern=NO_CONTROL)


class SectionStartedPayload(_Model):
    session_id: Id
    nip: NIP
    section: SectionChoice


@with_config(ConfigDict(extra="forbid", json_schema_extra=_describe_fields))
class Answer(TypedDict):
    # A plain dict, not a model: a day carries millions of answers, and an object per answer costs (no
    # docstring here: it would change the published JSON Schema).
    item_id: ItemId
    option: Annotated[str | None, Field(max_length=8, pattern=NO_CONTROL,
                                        description="Chosen option label; null when left blank.")]


_ANSWER_KEYS = frozenset(("item_id", "option"))
_item_ids, _options = operator.itemgetter("item_id"), operator.itemgetter("option")


class AnswerList(list[Any]):
    """An answer list that passed the schema check, with the item ids and options the check pulled out: the
    worker packs a sheet from these columns instead of walking the answers again (streams/processor.py)."""

    __slots__ = ("item_ids", "options")
    item_ids: list[str]
    options: list[str | None]


def _answer_columns(value: list[Any]) -> tuple[list[Any], list[Any]] | None:
    """The JSON Schema of an answer list, checked with C-level passes over the whole list (no Python loop):
    (item ids, options) when it holds, else None."""
    try:
        items, options = list(map(_item_ids, value)), list(map(_options, value))  # objects with both keys...
    except (KeyError, TypeError):
        return None
    if sum(map(len, value)) != 2 * len(value):  # ...and nothing else
        return None
    if set(map(type, items)) - {str} or (
            items and not 1 <= min(lengths := list(map(len, items))) <= max(lengths) <= 64):
        return None
    if set(map(type, options)) - _OPTION_TYPES or max(map(len, filter(None, options)), default=0) > 8:
        return None
    if _has_control(items) or _has_control(filter(None, set(options))):
        return None
    return items, options


_OPTION_TYPES = {str, type(None)}


def _has_control(texts: Any) -> bool:
    """One C-level pass over all the texts (isprintable is twice as fast as the regex, and true for real ids)."""
    joined = "".join(texts)
    return not joined.isprintable() and _CONTROL_CHAR.search(joined) is not None


def _answer_error(value: list[Any]) -> str:
    """Which answer breaks the schema, and how: the slow path, only for a list already found wrong."""
    for i, a in enumerate(value):
        if type(a) is not dict or a.keys() != _ANSWER_KEYS:
            return f"answers[{i}] must be an object with exactly item_id and option"
        item, option = a["item_id"], a["option"]
        if type(item) is not str or not 0 < len(item) <= 64 or _CONTROL_CHAR.search(item):
            return f"answers[{i}].item_id must be a string of 1 to 64 characters, no control character"
        if option is not None and (type(option) is not str or len(option) > 8 or _CONTROL_CHAR.search(option)):
            return f"answers[{i}].option must be null or a string of at most 8 characters, no control character"
    return "answers are invalid"


def _answer_list(min_items: int) -> PlainValidator:
    """Checks an answer list as the JSON Schema does, by hand: pydantic's per-answer validation was the
    worker's costliest decode step (docs/benchmarks.md). The published schema still comes from ``list[Answer]``."""

    def check(value: Any) -> list[Answer]:
        if not isinstance(value, list):
            raise ValueError("answers must be a list")
        if not min_items <= len(value) <= 1000:
            raise ValueError(f"answers must have {min_items} to 1000 entries, not {len(value)}")
        if (columns := _answer_columns(value)) is None:
            raise ValueError(_answer_error(value))
        out = AnswerList(value)
        out.item_ids, out.options = columns
        return out

    return PlainValidator(check)


class AnswersSavedPayload(_Model):
    session_id: Id
    nip: NIP
    section: SectionChoice
    answers: Annotated[list[Answer], _answer_list(1)] = Field(json_schema_extra={"minItems": 1, "maxItems": 1000})


class SectionSubmittedPayload(_Model):
    session_id: Id
    nip: NIP
    section: SectionChoice
    completion: Literal["submitted", "timed_out"]
    answers: Annotated[list[Answer], _answer_list(0)] = Field(
        description="The whole final answer sheet of the section.", json_schema_extra={"maxItems": 1000})


class SessionClosedPayload(_Model):
    session_id: Id


class CheckinWindowClosedPayload(_Model):
    session_id: Id
    reason: Literal["wall_clock"] = Field(default="wall_clock", description="Why the pipeline closed the window.")


class EventBatchPayload(_Model):
    session_id: Id = Field(description="The session every event in the batch belongs to: the batch's key.")
    events: list[Annotated[dict[str, Any], WithJsonSchema({"type": "object", "title": "Event"})]] = Field(
        min_length=1, max_length=1000,
        description="Whole contract-v1 events of this session (not batches), in the order they happened. Each is "
                    "validated on its own: a bad one is dead-lettered with its index, the others are processed.")


class CompetencyResult(_Model):
    code: CompetencyChoice
    siasn_field: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    raw: Number = Field(ge=0, le=MAX_SAFE_INT)
    max_raw: Number = Field(ge=0, le=MAX_SAFE_INT)
    level: Level
    standard: Level
    gap: Gap


class SubtestScore(_Model):
    score: Number = Field(ge=0, le=100)
    level: Level


class SectionScore(_Model):
    section: SectionChoice
    score: Number = Field(ge=0, le=100)
    level: Level
    answered: Count
    items: Count
    completion: Literal["submitted", "timed_out", "autosave", "not_started"] = Field(
        description="`submitted` or `timed_out` (a sheet), `autosave` (scored from the latest autosaved answers at "
        "session close), `not_started` (neither: every item blank).")
    subtests: dict[str, SubtestScore] = Field(default_factory=dict, description="Score and level per sub-test.")


class PotentialScores(_Model):
    """The potential profile in SI ASN's field names (``potensi/save``); scores are percents, 0..100."""

    berfikirKritis: Number = Field(ge=0, le=100)
    intelektual: Number = Field(ge=0, le=100)
    interpersonal: Number = Field(ge=0, le=100)
    kesadaranDiri: Number = Field(ge=0, le=100)
    motivasiKomitmen: Number = Field(ge=0, le=100)
    total: Number = Field(ge=0, le=100)


Standing = Literal["counted", "incomplete", "not_recognised"]


class ParticipantScoredPayload(_Model):
    result_id: Uuid = Field(description="Stable per (NIP, home activity): all versions share it.")
    result_version: Positive = Field(description="Increases when the result is recomputed (resubmission, rescoring).")
    nip: NIP
    activity_id: Id = Field(description="The participant's home activity, where the result is filed (for a susulan: "
                            "not the activity of the session it was sat in, see host_activity_id).")
    session_id: Id = Field(description="The session the test was sat in (for a susulan: the host session).")
    agency_id: Id = Field(description="The participant's home agency.")
    purpose: PurposeChoice = Field(description="The purpose of the home activity: selects the category set.")
    host_activity_id: Id | None = Field(default=None, description="Set for a susulan only: the activity of the "
                                        "host session the test was sat in.")
    host_agency_id: Id | None = Field(
        default=None, description="Set for a susulan only: the agency of the host session.")
    organiser_id: Id | None = Field(default=None, description="The institution that ran the session (accreditation "
                                    "registry id); absent: BKN itself.")
    standing: Standing = Field(default="counted", description="`counted`: goes to SI ASN; `incomplete`: too little "
                               "evidence, held until an operator releases or voids it; `not_recognised`: the "
                               "organiser was not accredited for this test date or tier, never sent.")
    standing_detail: str | None = Field(default=None, max_length=500, pattern=NO_CONTROL,
                                        description="Why the result is not counted, for operators.")
    position_tier: TierChoice
    participant_name: str | None = Field(
        default=None, max_length=200, pattern=NO_CONTROL,
        description="The participant's name as scheduled, for the agencies' reports (docs/reports.md); absent in "
        "results scored before names were carried.")
    blueprint_id: Id
    blueprint_version: str = Field(min_length=1, max_length=32, pattern=NO_CONTROL)
    competencies: list[CompetencyResult]
    jpm: Annotated[Number, Interval(ge=0, le=100)] | None = Field(
        description="Job Person Match, percent; null when Mansoskul was not taken.")
    category: str | None = Field(max_length=64, pattern=NO_CONTROL)
    strengths: list[CompetencyChoice]
    development_areas: list[CompetencyChoice]
    sections: list[SectionScore]
    potential: PotentialScores | None = Field(
        default=None, description="Only when the blueprint maps sub-tests to potential (docs/scoring.md).")
    assessed_on: Day
    valid_until: Day
    flags: list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]] = Field(
        default_factory=list, max_length=32, description="e.g. `scored_from_autosave`, `timed_out`.")
    provenance: list[Uuid] = Field(description="event_id of every event the result was computed from.")


class AttendanceChangedPayload(_Model):
    session_id: Id
    activity_id: Id = Field(description="The participant's own activity (for a susulan arrival: the home activity).")
    agency_id: Id = Field(description="The participant's own agency (for a susulan arrival: the home agency).")
    lab_id: Id = Field(description="The lab of the session.")
    nip: NIP
    status: StatusChoice
    previous: StatusChoice | None
    late: Flag = False
    correction: Flag = Field(default=False, description="True when this reverses an earlier declaration.")
    rescheduled_to: Id | None = None
    rescheduled_from: Id | None = None
    revision: Count = Field(default=0, description="Facts known about this participant in this session; "
                          "grows with every fact, whatever order they arrive in: stores keep the highest.")


class SessionSummaryPayload(_Model):
    session_id: Id
    activity_id: Id
    agency_id: Id
    lab_id: Id
    starts_at: Instant
    checkin_closes_at: Instant
    ends_at: Instant
    closed: Flag = Field(description="The lab closed the session.")
    closed_by_wall_clock: Flag = Field(
        description="The check-in window was closed by the wall-clock fallback (lab silent).")
    scheduled: Count
    checked_in: Count
    no_show: Count
    rescheduled: Count
    unexpected: Count
    no_show_rate: Number = Field(ge=0, le=1)
    final: Flag = Field(description="True once the check-in window has closed.")
    revision: Count = Field(default=0, description="Facts known about the session; stores keep the highest.")
    agency_name: str = Field(default="", max_length=200, pattern=NO_CONTROL)
    organiser_id: Id | None = Field(default=None, description="The institution running the session; absent: BKN.")
    accreditation_warning: str | None = Field(
        default=None, max_length=500, pattern=NO_CONTROL,
        description="Set when the organiser's accreditation expires within the warning period of the session, has "
        "expired, or is unknown: results of an unaccredited session are not recognised.")


#: Validation context of a message read from a topic (schemas/decode.py): checked, never repaired.
WIRE: dict[str, Any] = {"wire": True}


def _safe_detail(value: Any, info: ValidationInfo) -> Any:
    """Built in Python, a detail is made printable and bounded here (it may quote hostile input); read from a
    topic, it is only checked, so the decoder accepts exactly what the published schema does."""
    if isinstance(value, str) and info.mode == "python" and not (info.context or {}).get("wire"):
        return printable(value, 2000)
    return value


#: Standard base64 with padding: what a dead letter's key and value prefixes are written in.
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class DeadLetteredPayload(_Model):
    reason: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$",
                        description="Machine-readable reason code, see docs/events.md.")
    detail: Annotated[str, BeforeValidator(_safe_detail)] = Field(max_length=2000, pattern=NO_CONTROL)
    source_topic: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")  # Kafka's topic names
    source_partition: Int32
    source_offset: Count
    key_b64: str | None = Field(max_length=344, pattern=_BASE64,
                                description="The original key (its first 256 bytes), base64.")
    value_b64: str = Field(max_length=5464, pattern=_BASE64,
                           description="The original message bytes, base64: the first 4,096 bytes only when "
                           "``value_truncated``; the full record stays at the source position.")
    value_bytes: Count | None = Field(default=None, description="Length of the original message in bytes.")
    value_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$",
                                     description="SHA-256 of the whole original message, hex.")
    value_truncated: Flag = Field(default=False, description="value_b64 holds only a prefix of the message.")


# --------------------------------------------------------------------------------------------------
# Envelopes
# --------------------------------------------------------------------------------------------------


def _event_schema(schema: dict[str, Any]) -> None:
    """``event_type`` has a default so that Python code need not repeat it, but on the wire it selects the
    type: the decoder requires it, so the published schema does too."""
    _describe_fields(schema)
    required = set(schema.get("required", ())) | {"event_type"}
    schema["required"] = [name for name in schema["properties"] if name in required]


class Event(_Model):
    """Fields every event carries."""

    model_config = ConfigDict(json_schema_extra=_event_schema)

    topic: ClassVar[topics.TopicSpec]
    key_field: ClassVar[str] = "session_id"

    event_id: Uuid
    event_type: str
    schema_version: Annotated[Literal[1], BeforeValidator(_check_number)] = SCHEMA_VERSION
    occurred_at: Instant = Field(description="RFC 3339 with UTC offset, by the emitter's clock.")
    lab_id: Id = Field(description="The lab or system that emitted the event.")
    payload: Any

    def key(self) -> str:
        return str(getattr(self.payload, self.key_field))

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class SessionScheduled(Event):
    """A test session was planned: where, when, for which agency and activity, with which blueprint."""

    topic = topics.SCHEDULE
    event_type: Literal["SessionScheduled"] = "SessionScheduled"
    payload: SessionScheduledPayload


class ParticipantScheduled(Event):
    """A participant is expected in a session."""

    topic = topics.SCHEDULE
    event_type: Literal["ParticipantScheduled"] = "ParticipantScheduled"
    payload: ParticipantScheduledPayload


class ParticipantRescheduled(Event):
    """A participant was moved to another session (susulan), possibly of another agency."""

    topic = topics.SCHEDULE
    key_field = "from_session_id"
    event_type: Literal["ParticipantRescheduled"] = "ParticipantRescheduled"
    payload: ParticipantRescheduledPayload


class ParticipantUnscheduled(Event):
    """A participant is no longer expected in a session; not counted as a no-show."""

    topic = topics.SCHEDULE
    event_type: Literal["ParticipantUnscheduled"] = "ParticipantUnscheduled"
    payload: ParticipantUnscheduledPayload


class RescoreRequested(Event):
    """An operator asks for a session's results to be recomputed with a corrected blueprint version (sent by
    `cact rescore` on the control topic; refused as `wrong_topic` anywhere else)."""

    topic = topics.CONTROL
    event_type: Literal["RescoreRequested"] = "RescoreRequested"
    payload: RescoreRequestedPayload


class ParticipantCheckedIn(Event):
    """A participant checked in at the lab."""

    topic = topics.LAB
    event_type: Literal["ParticipantCheckedIn"] = "ParticipantCheckedIn"
    payload: ParticipantCheckedInPayload


class SectionStarted(Event):
    """A participant opened a section."""

    topic = topics.LAB
    event_type: Literal["SectionStarted"] = "SectionStarted"
    payload: SectionStartedPayload


class AnswersSaved(Event):
    """A batch of autosaved answers: labs batch autosaves, never one message per answer."""

    topic = topics.LAB
    event_type: Literal["AnswersSaved"] = "AnswersSaved"
    payload: AnswersSavedPayload


class SectionSubmitted(Event):
    """The final answer sheet of one section, submitted by the participant or at time-out."""

    topic = topics.LAB
    event_type: Literal["SectionSubmitted"] = "SectionSubmitted"
    payload: SectionSubmittedPayload


class CheckinWindowClosed(Event):
    """The pipeline closed a check-in window by the wall clock because the session's lab went silent (control
    topic only: a lab cannot close a window by decree, only by the times of its own events)."""

    topic = topics.CONTROL
    event_type: Literal["CheckinWindowClosed"] = "CheckinWindowClosed"
    payload: CheckinWindowClosedPayload


class SessionClosed(Event):
    """The lab closed the session: unsubmitted sections are scored from autosaves."""

    topic = topics.LAB
    event_type: Literal["SessionClosed"] = "SessionClosed"
    payload: SessionClosedPayload


class EventBatch(Event):
    """Several events of one session in one message: how a lab sends a burst (answer sheets of a whole room).

    Per-message overhead, not event size, limits a worker, so lab emitters may batch a session's events over a
    short linger (``producers/batching.py``). Allowed on both input topics; the events inside must belong to
    the topic the batch is sent to and to the batch's session."""

    topic = topics.LAB
    also_on: ClassVar[tuple[topics.TopicSpec, ...]] = (topics.SCHEDULE,)
    event_type: Literal["EventBatch"] = "EventBatch"
    payload: EventBatchPayload


class ParticipantScored(Event):
    """A participant's result (one version): levels, JPM, category, section scores, provenance."""

    topic = topics.RESULTS
    key_field = "nip"
    event_type: Literal["ParticipantScored"] = "ParticipantScored"
    payload: ParticipantScoredPayload


class AttendanceChanged(Event):
    """A participant's attendance status in a session changed."""

    topic = topics.ATTENDANCE
    event_type: Literal["AttendanceChanged"] = "AttendanceChanged"
    payload: AttendanceChangedPayload


class SessionSummary(Event):
    """Counts and no-show rate of a session; final once the check-in window has closed."""

    topic = topics.ATTENDANCE
    event_type: Literal["SessionSummary"] = "SessionSummary"
    payload: SessionSummaryPayload


class DeadLettered(Event):
    """An input message the pipeline could not accept, with the reason and the original bytes."""

    topic = topics.DEADLETTER
    key_field = "source_topic"
    event_type: Literal["DeadLettered"] = "DeadLettered"
    payload: DeadLetteredPayload


SCHEDULE_EVENTS = (SessionScheduled, ParticipantScheduled, ParticipantRescheduled, ParticipantUnscheduled)
LAB_EVENTS = (ParticipantCheckedIn, SectionStarted, AnswersSaved, SectionSubmitted, SessionClosed, EventBatch)
CONTROL_EVENTS = (CheckinWindowClosed, RescoreRequested)
OUTPUT_EVENTS = (ParticipantScored, AttendanceChanged, SessionSummary, DeadLettered)
ALL_EVENTS: tuple[type[Event], ...] = SCHEDULE_EVENTS + LAB_EVENTS + CONTROL_EVENTS + OUTPUT_EVENTS
EVENT_TYPES: dict[str, type[Event]] = {cls.model_fields["event_type"].default: cls for cls in ALL_EVENTS}

InputEvent = (
    SessionScheduled | ParticipantScheduled | ParticipantRescheduled | ParticipantUnscheduled | RescoreRequested
    | ParticipantCheckedIn | SectionStarted | AnswersSaved | SectionSubmitted | SessionClosed | CheckinWindowClosed
    | EventBatch
)

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
