"""The contract rules that no JSON Schema can say, in one registry.

A schema-valid event may still be refused, but only for a rule listed here: the export writes each rule into
the ``description`` of the schemas it applies to, docs/events.md lists them ("Rules beyond the schemas"), and
the differential tests (tests/integration/schemas/test_contract_differential.py, tests/integration/schemas/) fail on
any refusal of a schema-valid event that no rule here explains.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import events as ev
from schemas.nip import InvalidNIP, validate_nip
from schemas.reasons import Reason

_ALL = tuple(ev.EVENT_TYPES)


def _payload_fields(cls: type[ev.Event]) -> dict[str, object]:
    payload = cls.model_fields["payload"].annotation
    return dict(getattr(payload, "model_fields", {}))


_WITH_NIP = tuple(name for name, cls in ev.EVENT_TYPES.items() if "nip" in _payload_fields(cls))


@dataclass(frozen=True)
class Rule:
    id: str
    #: One sentence, as published.
    text: str
    event_types: tuple[str, ...]
    #: The reason codes an event breaking the rule is refused with (none: the message itself is not refused).
    reasons: tuple[str, ...]
    #: Whether a decoded JSON object that its schema accepts breaks the rule; None when the rule is about the
    #: record (its key, its topic) or about the events inside a batch, not about the object.
    broken_by: Callable[[dict[str, Any]], bool] | None


def _payload(data: dict[str, Any]) -> dict[str, Any]:
    payload = data.get("payload")
    return payload if isinstance(payload, dict) else {}


def _nip_dates_broken(data: dict[str, Any]) -> bool:
    nip = _payload(data).get("nip")
    if not isinstance(nip, str) or not re.fullmatch(ev.NIP_PATTERN, nip):
        return False  # then the schema refuses it already
    try:
        validate_nip(nip)
    except InvalidNIP:
        return True
    return False


def _instant(text: str) -> datetime:
    """As the decoder reads a time: fractions beyond the microsecond are cut, not rounded."""
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    return datetime.fromisoformat(text)


def _times_out_of_order(data: dict[str, Any]) -> bool:
    p = _payload(data)
    times = [p.get(k) for k in ("starts_at", "checkin_closes_at", "ends_at")]
    if not all(isinstance(t, str) and re.fullmatch(ev.INSTANT_PATTERN, t) for t in times):
        return False
    try:
        start, close, end = map(_instant, times)  # type: ignore[arg-type]
    except ValueError:  # not a real time: the schema's to refuse, not this rule's
        return False
    return not start <= close <= end


def _home_partial(data: dict[str, Any]) -> bool:
    p = _payload(data)
    return p.get("home_activity_id") is not None and (p.get("home_agency_id") is None or p.get("home_purpose") is None)


#: orjson's limit, and the decoder's: deeper JSON is refused before any schema is consulted.
MAX_DEPTH = 1024


def _not_utf8_json(data: dict[str, Any]) -> bool:
    """A lone surrogate in any string or key (it has no UTF-8 form), or containers nested deeper than MAX_DEPTH."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            for text in (k, v):
                if isinstance(text, str) and not _encodable(text):
                    return True
            if isinstance(v, (dict, list)):
                stack.append((v, depth + 1))
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


RULES: tuple[Rule, ...] = (
    Rule("utf8_json",
         "The message is UTF-8 JSON text with at most 1,024 levels of nesting and no lone surrogate escape such "
         "as \\ud800 in a string or key (JSON Schema judges the parsed value, where both can stand); otherwise "
         "bad_json.",
         _ALL, (Reason.BAD_JSON,), _not_utf8_json),
    Rule("nip_dates",
         "A NIP's dates must also be plausible today: birth year at most the current year minus 17, appointment "
         "(year and month; year only for PPPK) at age 18 or later and not after next year; otherwise invalid_nip.",
         _WITH_NIP, (Reason.INVALID_NIP,), _nip_dates_broken),
    Rule("session_times_ordered",
         "payload.starts_at <= payload.checkin_closes_at <= payload.ends_at, compared as instants (offsets "
         "applied, fractions beyond the microsecond ignored); otherwise invalid_field.",
         ("SessionScheduled",), (Reason.INVALID_FIELD,), _times_out_of_order),
    Rule("susulan_home_whole",
         "payload.home_activity_id, when given, comes with payload.home_agency_id and payload.home_purpose: a "
         "result is filed under the home activity and categorised by its purpose; otherwise invalid_field.",
         ("ParticipantScheduled",), (Reason.INVALID_FIELD,), _home_partial),
    Rule("key_is_key_field",
         "The record's Kafka key is the UTF-8 bytes of the key field named above; a valid event keyed otherwise "
         "is wrong_key.",
         _ALL, (Reason.WRONG_KEY,), None),
    Rule("topic_of_type",
         "The event is sent to the topic named above; on any other topic it is wrong_topic.",
         _ALL, (Reason.WRONG_TOPIC,), None),
    Rule("batch_events_one_by_one",
         "Each of payload.events is validated on its own against its type's schema and rules, and must be of "
         "the batch's topic and session (payload.session_id) and not an EventBatch; a bad one is dead-lettered "
         "alone with its index (wrong_topic, invalid_field or its own reason) and the rest of the batch is "
         "accepted.",
         ("EventBatch",), (), None),
)
RULES_BY_ID = {rule.id: rule for rule in RULES}


def rules_for(event_type: str) -> tuple[Rule, ...]:
    return tuple(rule for rule in RULES if event_type in rule.event_types)


def broken_rules(event_type: str, data: dict[str, Any]) -> tuple[Rule, ...]:
    """The rules of ``event_type`` that ``data`` (a schema-valid instance) breaks."""
    return tuple(r for r in rules_for(event_type) if r.broken_by is not None and r.broken_by(data))


def batch_member_misplaced(batch: dict[str, Any], event: dict[str, Any], topic: str) -> bool:
    """Whether an event inside ``batch`` breaks ``batch_events_one_by_one`` by where it is, not by what it is:
    another topic's type, another session, or a batch inside the batch."""
    cls = ev.EVENT_TYPES.get(event.get("event_type"))  # type: ignore[arg-type]
    if cls is None:
        return False
    on = {cls.topic.name, *(t.name for t in getattr(cls, "also_on", ()))}
    key = _payload(event).get(cls.key_field)
    return cls is ev.EventBatch or topic not in on or key != _payload(batch).get("session_id")
