"""Turn raw Kafka bytes into a contract event, or a reason code saying why not.

Reason codes are part of the contract (docs/events.md): operators and lab vendors filter the dead-letter
topic by them, so they are stable strings, never exception class names.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from schemas.events import EVENT_TYPES, SCHEMA_VERSION, Event


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


def decode_event(raw: bytes | str, *, topic: str | None = None) -> Event:
    """Parse and validate one message; raises Rejected with a reason code when it breaks the contract."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(Reason.BAD_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(Reason.NOT_AN_OBJECT, "an event is a JSON object")
    event_type = data.get("event_type")
    cls = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        shown = str(data.get("event_type"))[:64]
        raise Rejected(Reason.UNKNOWN_EVENT_TYPE, f"unknown event_type {shown!r}")
    if topic is not None and cls.topic.name != topic:
        raise Rejected(Reason.WRONG_TOPIC, f"{cls.__name__} belongs on {cls.topic.name}, not {topic}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        reason, detail = _validation_reason(exc)
        raise Rejected(reason, detail) from None
