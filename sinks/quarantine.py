"""Quarantine: what the sink hands the store, and what it cannot store.

A record the database refuses must not stop the sink: it is kept, bounded, with its reason and its source
position (``sink_quarantine``), and the rest of its batch is written (sinks/store.py ``write_records``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas import events as ev

#: Longest part of a refused record kept in ``sink_quarantine.event_json``: enough to read the event, bounded
#: so hostile input cannot fill the database; the source position points to the whole record.
QUARANTINE_JSON_CHARS = 16_384
_REASON_CHARS = 300
_STORED_TYPES = (ev.ParticipantScored, ev.AttendanceChanged, ev.SessionSummary, ev.DeadLettered)


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message: where it came from, its bytes, and its decoded event (or why it has none)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    event: ev.Event | None = None
    refusal: str | None = None  # set when there is no event: why the message could not be decoded


def one_line(exc: BaseException) -> str:
    """An exception as one short line for operators: the driver's message, never SQLAlchemy's SQL and values.

    ``str()`` of a SQLAlchemy error carries the statement and its parameters (NIPs among them), and
    PostgreSQL's DETAIL line repeats the offending key: only the first line of the original error is kept.
    """
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {text}"[:_REASON_CHARS].replace("\x00", "\\x00")


def _clean(text: str, limit: int) -> str:
    """Text PostgreSQL accepts (no NUL) and no longer than ``limit``."""
    return text.replace("\x00", "\\u0000")[:limit]


def python_refusal(e: ev.Event) -> str | None:
    """What would fail in Python while building the event's rows, checked up front because it costs little.

    An aware datetime near year 1 or 9999 passes validation but has no UTC value (``0001-01-01T00:00+14:00``):
    ``astimezone`` raises OverflowError. Caught here, the batch needs no bisection for it.
    """
    if not isinstance(e, _STORED_TYPES):
        return f"not an event the results store keeps ({e.event_type})"
    fields = [("occurred_at", e.occurred_at)]
    if isinstance(e, ev.SessionSummary):
        p = e.payload
        fields += [("starts_at", p.starts_at), ("checkin_closes_at", p.checkin_closes_at), ("ends_at", p.ends_at)]
    for name, at in fields:
        try:
            at.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            return f"{name} has no UTC value ({at.isoformat()}): {exc}"[:_REASON_CHARS]
    return None


def _identity(r: Record) -> tuple[str | None, str]:
    """(event id, event type) of a record, from its event or, for an undecodable one, its JSON if any.

    The type is a metric label: a name that is not one of the contract's event types becomes ``unknown``, so
    hostile input cannot grow the label set.
    """
    if r.event is not None:
        return str(r.event.event_id), r.event.event_type
    try:
        doc = orjson.loads(r.value or b"")
    except orjson.JSONDecodeError:
        return None, "unknown"
    if not isinstance(doc, dict):
        return None, "unknown"
    event_id, event_type = doc.get("event_id"), doc.get("event_type")
    return (event_id if isinstance(event_id, str) and len(event_id) <= 36 else None,
            event_type if isinstance(event_type, str) and event_type in ev.EVENT_TYPES else "unknown")


def quarantine_row(r: Record, reason: str, now: datetime) -> dict[str, Any]:
    event_id, event_type = _identity(r)
    value = r.value or b""
    return {"source_topic": r.topic[:249], "source_partition": r.partition, "source_offset": r.offset,
            "value_sha256": hashlib.sha256(value).hexdigest(), "event_id": event_id, "event_type": event_type,
            "reason": _clean(reason, 500),
            "event_json": _clean(value[:QUARANTINE_JSON_CHARS * 4].decode("utf-8", "backslashreplace"),
                                 QUARANTINE_JSON_CHARS),
            "event_bytes": len(value), "first_seen_at": now}
