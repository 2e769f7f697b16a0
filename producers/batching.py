"""Packing a session's events into ``EventBatch`` messages, for labs and replays that send bursts.

A worker's cost is per Kafka message far more than per byte, so a lab that has several events of one session
ready (a room submitting, a spool flushed after an outage, a replay) sends them as one ``EventBatch``. Events
keep their order within a session; batches never mix sessions or topics, because the session id is the key
that decides the partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from schemas.events import EVENT_TYPES, EventBatch

#: Well under the broker's default 1 MB message limit and ``CACT_MAX_MESSAGE_BYTES`` (1,000,000); a hard
#: ceiling, envelope included (see batch_events).
MAX_BATCH_BYTES = 512 * 1024
MAX_BATCH_EVENTS = 1000  # the contract's limit


def _route(event: Mapping[str, Any]) -> tuple[str, str]:
    cls = EVENT_TYPES[event["event_type"]]
    return cls.topic.name, str(event["payload"][cls.key_field])


def envelope(session_id: str, events: list[Mapping[str, Any]], *, lab_id: str, occurred_at: str) -> bytes:
    """One ``EventBatch`` message (JSON bytes) around already contract-shaped events of one session."""
    return orjson.dumps({
        "event_id": str(uuid.uuid4()), "event_type": EventBatch.model_fields["event_type"].default,
        "schema_version": 1, "occurred_at": occurred_at, "lab_id": lab_id,
        "payload": {"session_id": session_id, "events": events},
    })


def batch_events(events: Iterable[Mapping[str, Any]], *, max_events: int = 200,
                 max_bytes: int = MAX_BATCH_BYTES) -> Iterator[tuple[str, str, bytes]]:
    """Group events (JSON-shaped dicts, in order) into ``(topic, key, EventBatch bytes)`` per topic and session.

    A session's buffer is sent when it holds ``max_events``, when the next event would make the message larger
    than ``max_bytes`` (counted exactly: envelope, events and commas), and the rest at the end, so each
    session's events stay in order and no batch is ever larger than ``max_bytes``; the batch takes the lab
    and time of its last event. An event too large to share an envelope within ``max_bytes`` is yielded on
    its own, as itself (not an ``EventBatch``), after the session's earlier events. Keep ``max_bytes`` at or
    below ``CACT_MAX_MESSAGE_BYTES``, which the emitter and the worker enforce.
    """
    if not 1 <= max_events <= MAX_BATCH_EVENTS:
        raise ValueError(f"max_events must be 1..{MAX_BATCH_EVENTS}")
    buffers: dict[tuple[str, str], tuple[list[Mapping[str, Any]], list[int]]] = {}

    def occurred(event: Mapping[str, Any]) -> str:
        at = event["occurred_at"]
        return at.isoformat() if isinstance(at, datetime) else at

    def flush(route: tuple[str, str]) -> tuple[str, str, bytes]:
        pending, _size = buffers.pop(route)
        last = pending[-1]
        return route[0], route[1], envelope(route[1], pending, lab_id=last["lab_id"], occurred_at=occurred(last))

    for event in events:
        route = _route(event)
        data = orjson.dumps(event, default=str)
        # What the batch would weigh ending with this event: an empty envelope with its lab and time, the
        # events so far and this one, and a comma between each two.
        base = len(envelope(route[1], [], lab_id=event["lab_id"], occurred_at=occurred(event)))
        if route in buffers:
            pending, size = buffers[route]
            if base + size[0] + len(pending) + len(data) > max_bytes:
                yield flush(route)
        if base + len(data) > max_bytes:
            yield route[0], route[1], data
            continue
        pending, size = buffers.setdefault(route, ([], [0]))
        pending.append(event)
        size[0] += len(data)
        if len(pending) >= max_events:
            yield flush(route)
    for route in list(buffers):
        yield flush(route)
