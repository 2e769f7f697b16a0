"""Turn raw Kafka bytes into a contract event, or a reason code saying why not.

Reason codes are part of the contract (docs/events.md): operators and lab vendors filter the dead-letter
topic by them, so they are stable strings, never exception class names.

Total: whatever the bytes, :func:`decode_event` and :func:`unpack` return events or raise :class:`Rejected`,
nothing else (tests/unit/schemas/test_decode_is_total.py), and what they return is storable downstream
(docs/events.md "Limits"). A worker that got any other exception here would stop on one message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import EllipsisType
from typing import Annotated, Union

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from schemas.events import EVENT_TYPES, OUTPUT_EVENTS, SCHEMA_VERSION, WIRE, Event, EventBatch, printable
from schemas.nip import mask_nip
from schemas.reasons import Reason

#: Characters of a reason's detail: it is logged, shown to operators and stored (DeadLettered.detail).
DETAIL_MAX_CHARS = 1000


@dataclass(frozen=True)
class Rejected(Exception):
    """Why a message is refused. The detail may quote hostile input (a field name, an item id): it is made
    printable and bounded here, so no caller can put a NUL or a megabyte into a log or a dead letter."""

    reason: str
    detail: str

    def __post_init__(self) -> None:
        detail = _NIP_LIKE.sub(lambda m: mask_nip(m.group()), printable(str(self.detail), DETAIL_MAX_CHARS))
        object.__setattr__(self, "detail", detail)


#: A NIP quoted back from hostile input (as a field name, say) is masked like any NIP shown to operators.
_NIP_LIKE = re.compile(r"(?<![0-9])[0-9]{18}(?![0-9])")


def _validation_reason(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors(include_url=False, include_input=False)
    for err in errors:
        if "nip" in err["loc"]:
            return Reason.INVALID_NIP, f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
    for err in errors:
        if err["loc"][:1] == ("schema_version",):
            return Reason.UNSUPPORTED_SCHEMA_VERSION, f"schema_version must be {SCHEMA_VERSION}"
    first = errors[0]
    where = ".".join(map(str, first["loc"])) or "(event)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return Reason.INVALID_FIELD, f"{where}: {first['msg']}{more}"


def _accepts(cls: type[Event], topic: str) -> bool:
    return topic == cls.topic.name or any(topic == t.name for t in getattr(cls, "also_on", ()))


def _validate(data: object, topic: str | None) -> Event:
    if not isinstance(data, dict):
        raise Rejected(Reason.NOT_AN_OBJECT, "an event is a JSON object")
    event_type = data.get("event_type")
    cls = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        if "event_type" not in data:
            raise Rejected(Reason.UNKNOWN_EVENT_TYPE, "event_type is missing")
        # Never str() of the value: a list nested 1,000 deep would exhaust the stack.
        shown = repr(event_type[:64]) if isinstance(event_type, str) else f"of type {type(event_type).__name__}"
        raise Rejected(Reason.UNKNOWN_EVENT_TYPE, f"unknown event_type {shown}")
    if topic is not None and not _accepts(cls, topic):
        raise Rejected(Reason.WRONG_TOPIC, f"{cls.__name__} belongs on {cls.topic.name}, not {topic}")
    try:
        return cls.model_validate(data, context=WIRE)
    except ValidationError as exc:
        reason, detail = _validation_reason(exc)
        raise Rejected(reason, detail) from None


def _size(raw: object) -> int:
    if isinstance(raw, str):
        return len(raw.encode("utf-8", "surrogatepass"))
    return len(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else 0


def decode_event(raw: bytes | str | None, *, topic: str | None = None, key: bytes | None | EllipsisType = ...,
                 max_bytes: int | None = None) -> Event:
    """Parse and validate one message; raises Rejected with a reason code when it breaks the contract.

    ``max_bytes``: a longer message is ``too_large`` before it is parsed. ``key``: the record's Kafka key (None
    for a record without one) when the caller wants it checked, left out (``...``) when not: a valid event
    keyed by anything but its key field is ``wrong_key``; a batch's events are checked against the batch by
    :func:`unpack`."""
    if max_bytes is not None and (size := _size(raw)) > max_bytes:
        raise Rejected(Reason.TOO_LARGE, f"{size:,} bytes, more than the {max_bytes:,} accepted")
    try:
        data = orjson.loads(raw)  # type: ignore[arg-type]
    except orjson.JSONDecodeError as exc:
        what = "no message value" if raw is None else f"not valid JSON: {exc}"
        raise Rejected(Reason.BAD_JSON, what) from None
    try:
        event = _validate(data, topic)
    except Rejected:
        raise
    except Exception as exc:  # a decoder bug: proven absent by the tests, kept from stopping a worker anyway
        raise Rejected(Reason.PROCESSING_ERROR, f"decoder failed: {type(exc).__name__}") from None
    if key is not ... and key != event.key().encode():
        raise Rejected(Reason.WRONG_KEY, f"the message key is not payload.{event.key_field}")
    return event


def at_index(index: int | None) -> str:
    """Where in an EventBatch something went wrong, as dead letters name it (empty for a lone event)."""
    return f"events[{index}]: " if index is not None else ""


def unpack(event: Event, *, topic: str | None = None) -> Iterator[tuple[int | None, Event | Rejected]]:
    """The events a decoded message carries: itself, or each event of an :class:`EventBatch` with its index.

    An event inside a batch is validated like a message of its own (same reason codes) and must belong to the
    batch's topic and session: the batch's key decided the partition, and a session's state lives in one.
    A bad event is yielded as its Rejected, so the caller dead-letters it and goes on with the others.
    """
    if not isinstance(event, EventBatch):
        yield None, event
        return
    session_id = event.payload.session_id
    for index, data in enumerate(event.payload.events):
        try:
            if isinstance(data, dict) and data.get("event_type") == "EventBatch":
                raise Rejected(Reason.INVALID_FIELD, "an EventBatch cannot contain another EventBatch")
            inner = _validate(data, topic)
            if inner.key() != session_id:
                raise Rejected(Reason.INVALID_FIELD,
                               f"payload.{inner.key_field} is not the batch's session {session_id}")
            yield index, inner
        except Rejected as exc:
            yield index, Rejected(exc.reason, at_index(index) + exc.detail)
        except Exception as exc:  # as in decode_event: never expected, never allowed to stop the caller
            yield index, Rejected(Reason.PROCESSING_ERROR, f"{at_index(index)}decoder failed: {type(exc).__name__}")


# Union[...] of the runtime tuple OUTPUT_EVENTS unpacks it into the union of its classes; UP007's "fix" drops the
# Union altogether (Annotated of a tuple fails on import), and X | Y cannot be written over a tuple.
_OUTPUT: TypeAdapter[Event] = TypeAdapter(
    Annotated[Union[OUTPUT_EVENTS], Field(discriminator="event_type")])  # type: ignore[arg-type, unused-ignore]  # noqa: UP007


def decode_output(raw: bytes | str, *, topic: str | None = None) -> Event:
    """The sink's decode of the pipeline's own output events: one pass of pydantic's JSON parser, no dict
    in between (the sink decodes every result and attendance change of the day). Same checks, same reasons."""
    try:
        event = _OUTPUT.validate_json(raw, context=WIRE)
    except ValidationError:
        return decode_event(raw, topic=topic)  # not an output event, or invalid: say why as for input
    if topic is not None and not _accepts(type(event), topic):
        raise Rejected(Reason.WRONG_TOPIC, f"{type(event).__name__} belongs on {event.topic.name}, not {topic}")
    return event
