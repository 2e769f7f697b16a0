"""Turn raw Kafka bytes into a contract event, or a reason code saying why not.

Reason codes are part of the contract (docs/events.md): operators and lab vendors filter the dead-letter
topic by them, so they are stable strings, never exception class names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Union
from dataclasses import dataclass

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from schemas.events import EVENT_TYPES, OUTPUT_EVENTS, SCHEMA_VERSION, Event, EventBatch


class Reason:
    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    INVALID_NIP = "invalid_nip"
    INVALID_FIELD = "invalid_field"
    WRONG_TOPIC = "wrong_topic"
    UNKNOWN_SESSION = "unknown_session"
    UNKNOWN_BLUEPRINT = "unknown_blueprint"
    UNKNOWN_ITEM = "unknown_item"
    UNKNOWN_OPTION = "unknown_option"
    UNKNOWN_PARTICIPANT = "unknown_participant"
    UNKNOWN_SECTION = "unknown_section"
    PROCESSING_ERROR = "processing_error"

    ALL = (BAD_JSON, NOT_AN_OBJECT, UNKNOWN_EVENT_TYPE, UNSUPPORTED_SCHEMA_VERSION, INVALID_NIP, INVALID_FIELD,
           WRONG_TOPIC, UNKNOWN_SESSION, UNKNOWN_BLUEPRINT, UNKNOWN_ITEM, UNKNOWN_OPTION,
           UNKNOWN_PARTICIPANT, UNKNOWN_SECTION, PROCESSING_ERROR)


@dataclass(frozen=True)
class Rejected(Exception):
    reason: str
    detail: str


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
        shown = str(data.get("event_type"))[:64]
        raise Rejected(Reason.UNKNOWN_EVENT_TYPE, f"unknown event_type {shown!r}")
    if topic is not None and not _accepts(cls, topic):
        raise Rejected(Reason.WRONG_TOPIC, f"{cls.__name__} belongs on {cls.topic.name}, not {topic}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        reason, detail = _validation_reason(exc)
        raise Rejected(reason, detail) from None


def decode_event(raw: bytes | str, *, topic: str | None = None) -> Event:
    """Parse and validate one message; raises Rejected with a reason code when it breaks the contract."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(Reason.BAD_JSON, f"not valid JSON: {exc}") from None
    return _validate(data, topic)


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
                raise Rejected(Reason.INVALID_FIELD, f"payload.{inner.key_field} is not the batch's session {session_id}")
            yield index, inner
        except Rejected as exc:
            yield index, Rejected(exc.reason, at_index(index) + exc.detail)


_OUTPUT: TypeAdapter[Event] = TypeAdapter(Annotated[Union[OUTPUT_EVENTS], Field(discriminator="event_type")])  # type: ignore[valid-type]


def decode_output(raw: bytes | str, *, topic: str | None = None) -> Event:
    """The sink's decode of the pipeline's own output events: one pass of pydantic's JSON parser, no dict
    in between (the sink decodes every result and attendance change of the day). Same checks, same reasons."""
    try:
        event = _OUTPUT.validate_json(raw)
    except ValidationError:
        return decode_event(raw, topic=topic)  # not an output event, or invalid: say why as for input
    if topic is not None and not _accepts(type(event), topic):
        raise Rejected(Reason.WRONG_TOPIC, f"{type(event).__name__} belongs on {event.topic.name}, not {topic}")
    return event
