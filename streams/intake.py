"""The worker's intake: Kafka records in, outputs and dead letters out, and nothing a record can make raise.

Two rules make the commit protocol (docs/operations.md, "The delivery guarantee") hold against input nobody
here wrote:

* **Total**: no value, key, header or record timestamp makes :meth:`Intake.take` raise. A record is either
  applied, or answered by exactly one dead letter naming every reason (bounded in size, see
  ``streams/deadletter.py``). Too-large and empty records are dead-lettered before they are parsed.
* **No half-applied event**: when the processor fails on an event with anything but ``Rejected`` (a bug the
  event triggered), the event may have changed state before it failed. The chunk is then thrown away and
  replayed from its first record with that event parked as ``processing_error``, so state is exactly as if
  the poisoned event had never arrived, and the replay after a crash parks it the same way.

A chunk is the unit of the commit protocol: its outputs and state are sent and acknowledged together
(``streams/commit.py``), and only then are its records acknowledged to Faust.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas import topics
from schemas.decode import Reason, Rejected, at_index, decode_event, unpack
from schemas.events import Event
from streams.deadletter import dead_letter
from streams.processor import Position, SessionProcessor
from streams.state import TableOverlay

log = logging.getLogger("cact.worker")


class _Poisoned(Exception):
    def __init__(self, position: Position, detail: str) -> None:
        super().__init__(detail)
        self.position, self.detail = position, detail


@dataclass
class Chunk:
    """Records processed against one private copy of the state, then emitted and written together."""

    processor: SessionProcessor
    sessions: TableOverlay
    participants: TableOverlay
    out: list[Event] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # event types, counted once the chunk is acknowledged
    deadletters: list[tuple[str, str]] = field(default_factory=list)  # (reason, source topic), likewise
    events: int = 0
    records: list[Any] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)


class Intake:
    """Builds chunks and feeds them records; ``new_chunk`` gives a chunk over fresh overlays of the tables.

    ``on_lab_event(event, chunk)`` is told of every accepted lab event (the silent-lab watch); a failing hook is
    logged and never costs an event.
    """

    def __init__(self, new_chunk: Callable[[], Chunk], *, max_message_bytes: int,
                 on_lab_event: Callable[[Event, Chunk], None] | None = None) -> None:
        self.new_chunk = new_chunk
        self.max_message_bytes = max_message_bytes
        self.on_lab_event = on_lab_event
        self._parked: dict[Position, str] = {}

    def take(self, chunk: Chunk, record: Any) -> Chunk:
        """Apply one Faust event (``record.message`` is the Kafka record); returns the chunk to go on with,
        which is a rebuilt one when an event of this chunk had to be parked."""
        chunk.records.append(record)
        try:
            self._apply(chunk, record)
            return chunk
        except _Poisoned as poison:
            self._parked[poison.position] = poison.detail
            return self._replay(chunk.records)

    def _replay(self, records: list[Any]) -> Chunk:
        """The chunk again from fresh overlays, parked events skipped: state as if they never came."""
        while True:
            chunk = self.new_chunk()
            chunk.records = list(records)
            try:
                for record in records:
                    self._apply(chunk, record)
                return chunk
            except _Poisoned as poison:  # a second poisoned event in the same chunk
                self._parked[poison.position] = poison.detail

    def forget_parked(self) -> None:
        """Called once a chunk is acknowledged: its parked events are dead letters on the broker now."""
        self._parked.clear()

    # ----------------------------------------------------------------------------------------------

    def _apply(self, chunk: Chunk, record: Any) -> None:
        msg = record.message
        chunk.sessions.event = chunk.participants.event = record
        chunk.processor.scope = str(msg.partition)
        try:
            failures = self._events(chunk, msg)
        except _Poisoned:
            raise
        except Exception as exc:  # a bug in the intake itself: park the record, never the worker
            log.exception("intake failed at %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            failures = [(Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")]
        if failures:
            chunk.out.append(self._dead_letter(msg, failures))
            chunk.deadletters.extend((reason, msg.topic) for reason, _ in failures)

    def _events(self, chunk: Chunk, msg: Any) -> list[tuple[str, str]]:
        """Apply the record's events; returns the (reason, detail) of those refused."""
        failures: list[tuple[str, str]] = []
        # size and key first: a too-large record is refused unread, a wrongly keyed one sits in the wrong partition
        try:
            decoded_events = list(unpack(decode_event(msg.value, topic=msg.topic, key=msg.key,
                                                      max_bytes=self.max_message_bytes), topic=msg.topic))
        except Rejected as exc:
            chunk.events += 1
            return [(exc.reason, exc.detail)]
        for index, decoded in decoded_events:
            chunk.events += 1
            if isinstance(decoded, Rejected):
                failures.append((decoded.reason, decoded.detail))
                continue
            position: Position = (msg.topic, msg.partition, msg.offset, index)
            if position in self._parked:
                failures.append((Reason.PROCESSING_ERROR, at_index(index) + self._parked[position]))
                continue
            chunk.processor.position = position
            try:
                outputs = chunk.processor.handle(decoded)
            except Rejected as exc:
                failures.append((exc.reason, at_index(index) + exc.detail))
                continue
            except Exception as exc:
                log.exception("processing failed at %s[%s]@%s %s: the event is parked", msg.topic, msg.partition,
                              msg.offset, at_index(index))
                raise _Poisoned(position, f"{type(exc).__name__}: {exc}") from None
            chunk.out.extend(outputs)
            chunk.deadletters.extend(chunk.processor.late_rejections)  # held events refused once scheduled
            chunk.accepted.append(decoded.event_type)
            if msg.topic == topics.LAB.name and self.on_lab_event is not None:
                try:
                    self.on_lab_event(decoded, chunk)
                except Exception:  # a monitoring hook never costs an event
                    log.exception("lab activity hook failed")
        return failures

    @staticmethod
    def _dead_letter(msg: Any, failures: list[tuple[str, str]]) -> Event:
        """One dead letter per source record (the store keeps one per source position), naming every reason."""
        try:
            return dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                               value=msg.value, timestamp=msg.timestamp, reason=failures[0][0],
                               detail="; ".join(d for _, d in failures))
        except Exception as exc:  # the last resort must not fail: a dead letter with nothing of the record
            log.exception("could not build the dead letter for %s[%s]@%s", msg.topic, msg.partition, msg.offset)
            return dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=None, value=None,
                               timestamp=None, reason=Reason.PROCESSING_ERROR,
                               detail=f"dead letter not buildable: {type(exc).__name__}")
