"""Peers for ``make bench``: what a competent user would build instead of the project's Faust worker and sink.

Each peer is a process of its own (``python -m bench.peers.<name>``, settings from the environment as for
``cact worker``) that reads the same input topics and calls the project's own rules (``schemas.decode``,
``streams.processor.SessionProcessor``) and store writer (``sinks.store.ResultsStore.write_batch``), so only the
plumbing differs from the project. The bench compares their CPU, memory and stored rows with the project's.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas import topics
from schemas.decode import Rejected, decode_event, unpack
from schemas.events import Event
from streams.deadletter import dead_letter
from streams.processor import SessionProcessor

#: What the project's sink stores; the processor's other outputs (e.g. control events) are not the store's.
STORED_TOPICS = frozenset({topics.RESULTS.name, topics.ATTENDANCE.name, topics.DEADLETTER.name})
#: Outputs that are input again (a reschedule's arrival side, re-keyed to its target session): a peer produces
#: them back to their topic before it commits the input that made them, as the worker does.
FED_BACK_TOPICS = frozenset(t.name for t in topics.INPUT_TOPICS)


def apply_message(processor: SessionProcessor, topic: str, partition: int, offset: int, key: bytes | None,
                  value: bytes, timestamp: float | None = None) -> Iterable[Event]:
    """One input record through the project's decode and rules, as streams/intake.py applies it: the outputs to
    store or to feed back, and one dead letter naming every refused event of the record. ``timestamp``: in
    seconds, as Faust gives it."""
    processor.scope = str(partition)
    failures: list[tuple[str, str]] = []
    try:
        decoded = list(unpack(decode_event(value, topic=topic, key=key), topic=topic))
    except Rejected as exc:
        decoded, failures = [], [(exc.reason, exc.detail)]
    for index, event in decoded:
        if isinstance(event, Rejected):
            failures.append((event.reason, event.detail))
            continue
        processor.position = (topic, partition, offset, index)
        try:
            outputs = processor.handle(event)
        except Rejected as exc:
            failures.append((exc.reason, exc.detail))
            continue
        yield from (out for out in outputs if out.topic.name in STORED_TOPICS or out.topic.name in FED_BACK_TOPICS)
    if failures:
        yield dead_letter(topic=topic, partition=partition, offset=offset, key=key, value=value,
                          timestamp=timestamp, reason=failures[0][0], detail="; ".join(d for _, d in failures))
