"""Every dead-letter reason in one table: its constant, what it means, and what the sender should do.

The worker writes the code into each dead letter; docs/events.md renders the table (schemas/export.py), and
operators read the same words in ``cact deadletters``. A code is added here, in one row, or nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReasonCode:
    code: str
    #: What happened, in the sender's terms (docs/events.md, "Dead-letter reason codes").
    meaning: str
    #: What the sender of the message should do about it.
    action: str


#: code → its row, in the order the docs list them.
TABLE: dict[str, ReasonCode] = {}


def _row(code: str, meaning: str, action: str) -> str:
    TABLE[code] = ReasonCode(code, meaning, action)
    return code


class Reason:
    """The codes as constants (a dead letter's ``reason``)."""

    BAD_JSON = _row(
        "bad_json",
        "the bytes are not JSON (or not UTF-8).",
        "Send UTF-8 JSON, one event per message, then send the event again.",
    )
    NOT_AN_OBJECT = _row(
        "not_an_object",
        "the JSON is not an object (an array, a string…).",
        "Send each event as its own message: never an array of events or a bare value.",
    )
    UNKNOWN_EVENT_TYPE = _row(
        "unknown_event_type",
        "`event_type` is missing or not one of the contract's types.",
        "Use an event type of this document, spelled exactly (case matters).",
    )
    UNSUPPORTED_SCHEMA_VERSION = _row(
        "unsupported_schema_version",
        "`schema_version` is not 1.",
        "Send `schema_version: 1` on the `.v1` topics; another version goes to its own topics.",
    )
    INVALID_NIP = _row(
        "invalid_nip",
        "a `nip` is not a valid 18-digit PNS or PPPK NIP (layout and dates checked).",
        "Take the NIP from the participant's SI ASN record, never retype or pad it; send again.",
    )
    INVALID_FIELD = _row(
        "invalid_field",
        'a field is missing, has the wrong type or is out of its bounds (a time outside 2000-2099 or without its UTC '
        'offset, a control character in text, a number too large: "Limits" above); `detail` names it.',
        "Fix the field named in `detail` (validate against `schemas/json/` before sending); send again.",
    )
    WRONG_TOPIC = _row(
        "wrong_topic",
        "the event type belongs on another topic.",
        "Send the event to its type's topic (the tables above; the schema's description names it).",
    )
    UNKNOWN_SESSION = _row(
        "unknown_session",
        "the event names a session the pipeline does not know (today: a `RescoreRequested` for a session not scheduled "
        "in that activity).",
        "Name a scheduled session with its own `activity_id`; check for a typo in either.",
    )
    UNKNOWN_BLUEPRINT = _row(
        "unknown_blueprint",
        "`blueprint_id` (with `blueprint_version` in a rescore) names a blueprint the worker has not loaded, or a "
        "rescore names another blueprint than the session's.",
        "Use a blueprint id and version BKN has deployed to the workers; ask BKN first for a new one.",
    )
    UNKNOWN_ITEM = _row(
        "unknown_item",
        "an answer names an item that is not in the item bank, or belongs to another section.",
        "Check that the lab runs the blueprint version the session was scheduled with; send the corrected sheet.",
    )
    UNKNOWN_OPTION = _row(
        "unknown_option",
        "an answer names an option the item does not have.",
        "As for `unknown_item`: the lab's copy of the blueprint differs from BKN's.",
    )
    UNKNOWN_PARTICIPANT = _row(
        "unknown_participant",
        "a reschedule names a participant who is not scheduled in the `from` session.",
        "Send the `ParticipantScheduled` for the `from` session first, then the reschedule again.",
    )
    UNKNOWN_SECTION = _row(
        "unknown_section",
        "the section is not part of the session's blueprint.",
        "Send only the sections of the session's blueprint.",
    )
    PROCESSING_ERROR = _row(
        "processing_error",
        "the worker failed on a valid-looking event (a bug): the message is parked, not lost.",
        "Nothing on the producer's side: report the source topic, partition and offset to BKN operators.",
    )
    TOO_LARGE = _row(
        "too_large",
        "the message is larger than the worker accepts (`CACT_MAX_MESSAGE_BYTES`, 1,000,000 bytes by default); it was "
        "not parsed, and the dead letter keeps only its first 4,096 bytes, length and SHA-256.",
        "Split it: at most 1,000 answers per `AnswersSaved` or `EventBatch`, one section per `SectionSubmitted`; the "
        "lab emitter refuses such a message before sending.",
    )
    STATE_LIMIT = _row(
        "state_limit",
        "accepting the event would grow the worker's state past its cap: more sessions with lab events but no "
        "schedule, or more participants nobody scheduled in one session, than the worker keeps.",
        "Send the sessions' `SessionScheduled` and `ParticipantScheduled` first, then resend the lab events (`cact lab "
        "resend`); operators can replay the dead letters once the schedule is in.",
    )
    WRONG_KEY = _row(
        "wrong_key",
        "a valid event whose Kafka key is not its key field (`payload.session_id`, `payload.from_session_id` for a "
        "reschedule): it went to another partition than its session's state.",
        "Key every message by its key field (the tables above) with the default partitioner, then send it again.",
    )
    WRONG_LAB = _row(
        "wrong_lab",
        "a lab event for a session hosted by another lab (`SessionScheduled.payload.lab_id`): a lab speaks only for "
        "its own sessions.",
        "Send events only for the sessions your lab hosts, with your own `lab_id`; if the schedule names the wrong "
        "lab, ask BKN to correct the `SessionScheduled`.",
    )
    IMPLAUSIBLE_TIME = _row(
        "implausible_time",
        "a lab event stamped far outside its session's schedule (more than `CACT_LAB_TIME_BEFORE_START_HOURS` before "
        "its start or `CACT_LAB_TIME_AFTER_END_HOURS` after its end, 6 h each by default): a wrong clock, which must "
        "not move the session's check-in window.",
        "Set the lab machine's clock (NTP) and time zone, then resend the events with their corrected times (`cact lab "
        "resend`).",
    )

    ALL = tuple(TABLE)
