"""The lab emitter: how exam labs put contract-v1 events on Kafka (kafka-python), through a durable spool.

Every event is validated against the contract before anything else, so an invalid event is an error for the
caller (:class:`InvalidEvent`, with the reason code the worker would dead-letter it with) and is neither
spooled nor sent. A valid event is committed to the SQLite spool (``producers/spool.py``) and ``send``
returns: it never waits for Kafka, so a lab keeps running through a network or broker outage. A sender
thread delivers the spool in its original order with ``acks=all``, one request in flight per connection and
the idempotent producer where the broker supports it, keyed by the contract's key (the session id) so a
session's events share a partition. Rows stay pending until the broker acknowledged them, so an outage or a
killed lab process loses nothing: the next emitter on the spool resends the leftovers first, and
``event_id`` makes a resend harmless downstream. Acknowledged rows keep their payload for
``lab_spool_keep_sent_hours``, so :meth:`LabEmitter.resend` (``cact lab resend --since``) can send them again
to a broker that lost them.

Size: a message whose encoded value is larger than ``max_message_bytes`` (``CACT_MAX_MESSAGE_BYTES``) is refused
with :class:`InvalidEvent` ``too_large`` before it is spooled: the broker or the worker would refuse it anyway,
and a lab must hear it at once, not find a failed row later. Autosave batches the emitter builds itself are
split so that none is ever too large.

Autosaves: :meth:`LabEmitter.autosave` takes single answers and emits one ``AnswersSaved`` per participant
and section after ``lab_autosave_batch`` answers or ``lab_autosave_seconds``, and always before any later
event of that participant (their ``SectionSubmitted``) or the session's ``SessionClosed``, so the worker sees
them in order. Buffered answers are in the spool too, so they survive a restart as well. See docs/labs.md.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from producers.sender import Sender
from producers.spool import (
    RAW_EVENT_TYPE,
    BufferedAnswer,
    NewRow,
    Requeued,
    Spool,
    SpoolRow,
    normalize_destination,
)
from schemas.decode import Reason, Rejected, decode_event
from schemas.events import EVENT_TYPES, AnswersSaved, Event, EventBatch, SessionClosed, new_event
from schemas.kafka_config import kafka_python_kwargs
from schemas.settings import Settings

log = logging.getLogger(__name__)

QUEUE_MAX = 20_000            # spooled rows held in memory for the sender; beyond, it reads the file


class InvalidEvent(ValueError):
    """The event breaks contract v1; ``reason`` is the same code the worker would dead-letter it with."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DeliveryTimeout(TimeoutError):
    """``flush`` ran out of time: the events are safe in the spool and are sent when Kafka is reachable."""

    def __init__(self, pending: int, spool: Path, last_error: str | None) -> None:
        why = f"; last error: {last_error}" if last_error else ""
        super().__init__(f"{pending} events not yet acknowledged by Kafka; they stay spooled in {spool} and are "
                         f"resent in order when the broker is reachable{why}")
        self.pending = pending
        self.last_error = last_error


class DeliveryFailed(RuntimeError):
    """Kafka refused some events for good (e.g. too large); they are kept as ``failed`` in the spool."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} events refused by Kafka and kept as failed in the spool: {errors[0]}")
        self.errors = errors


def validate(event: Event | dict[str, Any] | bytes | str) -> Event:
    """Accept a built event, a dict or raw JSON; return the validated event or raise InvalidEvent."""
    if isinstance(event, Event):
        return event
    try:
        raw = event if isinstance(event, (bytes, str)) else orjson.dumps(event, default=str)
        return decode_event(raw)
    except Rejected as exc:
        raise InvalidEvent(exc.reason, exc.detail) from None
    except (TypeError, ValidationError) as exc:
        raise InvalidEvent("invalid_field", str(exc)) from None


def topic_of(event: Event) -> str:
    """The event's topic; a batch goes where the events it carries belong (it is allowed on both inputs)."""
    if isinstance(event, EventBatch):
        first = event.payload.events[0].get("event_type")
        cls = EVENT_TYPES.get(first) if isinstance(first, str) else None
        if cls is not None and cls is not EventBatch:
            return cls.topic.name
    return event.topic.name


def _row(event: Event) -> NewRow:
    return NewRow(topic=topic_of(event), key=event.key().encode(), value=event.to_bytes(),
                  event_id=str(event.event_id), event_type=event.event_type)


def too_large(size: int, limit: int) -> InvalidEvent:
    return InvalidEvent(Reason.TOO_LARGE, f"the message is {size:,} bytes, more than CACT_MAX_MESSAGE_BYTES "
                                          f"({limit:,}), which the worker dead-letters unread; send an EventBatch "
                                          "as several smaller ones")


@dataclass
class _Buffer:
    """One participant-section's answers waiting to be batched; the last answer per item wins."""

    started: float
    ids: list[int] = field(default_factory=list)
    latest: dict[str, BufferedAnswer] = field(default_factory=dict)

    def add(self, answer: BufferedAnswer) -> None:
        self.ids.append(answer.id)
        self.latest.pop(answer.item_id, None)  # re-insert: the item moves to the position of its last save
        self.latest[answer.item_id] = answer


class LabEmitter:
    """Validated, spooled, ordered delivery of a lab's events; use as a context manager or close() it.

    ``send`` returns once the event is committed to the spool; ``flush`` waits until Kafka acknowledged
    everything sent so far. One emitter may be used from several threads.
    """

    def __init__(self, settings: Settings, *, linger_ms: int = 20, spool_path: Path | None = None,
                 lab_id: str | None = None, **producer_options: Any) -> None:
        self._settings = settings
        self._lab_id = lab_id or settings.lab_id
        self._autosave_batch = settings.lab_autosave_batch
        self._autosave_seconds = settings.lab_autosave_seconds
        self.max_message_bytes = int(settings.max_message_bytes)
        self.spool_path = Path(spool_path or settings.lab_spool_path)
        self._producer_kwargs: dict[str, Any] = {
            "acks": "all", "linger_ms": linger_ms, "max_in_flight_requests_per_connection": 1,
            "batch_size": 256 * 1024, "request_timeout_ms": 10_000, "delivery_timeout_ms": 30_000,
            "max_block_ms": 2_000, "bootstrap_timeout_ms": 3_000, "reconnect_backoff_max_ms": 5_000,
            **kafka_python_kwargs(settings), **producer_options,
        }
        self._spool = Spool(self.spool_path, normalize_destination(settings.bootstrap_servers),
                            synchronous=settings.lab_spool_synchronous)
        self._lock = threading.RLock()             # autosave buffers and what they emit
        self._cond = threading.Condition()         # wakes the sender; flush waits on it
        self._buffers: dict[tuple[str, str, str], _Buffer] = {}
        self._queue: list[SpoolRow] = []           # spooled rows on their way to the sender (under _cond)
        self._queue_overflowed = False
        self._spooled_upto = 0                     # highest seq this emitter spooled
        self._failures: list[str] = []             # refused for good since the last flush
        self._last_error: str | None = None
        self._sender_idle = False
        self._stopping = False
        self._closed = False
        adopted = self._spool.adopt()
        if adopted:
            log.warning("resending %d events left unsent in %s by an earlier emitter", adopted, self.spool_path)
        self._spool.prune_sent(settings.lab_spool_keep_sent_hours)
        self._floor = self._spool.oldest_pending_seq()  # oldest unacknowledged row of ours; None: all done
        self._spooled_upto = self._spool.newest_pending_seq() or 0  # flush waits for adopted rows too
        self._delivery = Sender(self)
        self._recover_autosaves()
        self._sender = threading.Thread(target=self._run, name="lab-emitter-sender", daemon=True)
        self._sender.start()

    # ---- sending ------------------------------------------------------------------------------

    def check(self, event: Event | dict[str, Any] | bytes | str) -> Event:
        """What ``send`` accepts: the validated event, or InvalidEvent (contract breaches and ``too_large``)."""
        checked = validate(event)
        self._sized(_row(checked))
        return checked

    def _sized(self, row: NewRow) -> NewRow:
        if len(row.value) > self.max_message_bytes:
            raise too_large(len(row.value), self.max_message_bytes)
        return row

    def send(self, event: Event | dict[str, Any] | bytes | str) -> int:
        """Validate and spool one event; returns its spool sequence number. Never waits for Kafka."""
        checked = validate(event)
        row = self._sized(_row(checked))
        with self._lock:
            self._emit_autosaves_before(checked)
            seq = self._spool.append([row])[0]
            self._spooled([SpoolRow(seq, row.topic, row.key, row.value)])
        return seq

    def send_all(self, events: Iterable[Event | dict[str, Any] | bytes | str]) -> int:
        """Validate every event first, then spool them in one transaction: all or, on InvalidEvent, none."""
        checked: list[tuple[Event, NewRow]] = []
        for i, e in enumerate(events):
            try:
                event = validate(e)
                checked.append((event, self._sized(_row(event))))
            except InvalidEvent as exc:
                raise InvalidEvent(exc.reason, f"event {i}: {exc.detail}") from None
        with self._lock:
            rows: list[NewRow] = []
            for e, row in checked:
                if self._buffers and self._autosaves_for(e):
                    self._append(rows)  # the autosaves go between the events before and this one
                    rows = []
                    self._emit_autosaves_before(e)
                rows.append(row)
            self._append(rows)
        return len(checked)

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> int:
        """Bypass validation: only the simulator uses it, to inject malformed input on purpose.

        Spooled like any event (event type ``(raw)``), so it keeps its place in the order and survives
        outages like the rest. Too large is still refused (InvalidEvent ``too_large``): such a message would
        only end as a failed row; send an oversize test message with a plain producer.
        """
        if len(value) > self.max_message_bytes:
            raise too_large(len(value), self.max_message_bytes)
        with self._lock:
            seq = self._spool.append([NewRow(topic, key, value, None, RAW_EVENT_TYPE)])[0]
            self._spooled([SpoolRow(seq, topic, key, value)])
        return seq

    def _append(self, rows: list[NewRow]) -> None:
        if rows:
            seqs = self._spool.append(rows)
            self._spooled([SpoolRow(seq, r.topic, r.key, r.value) for seq, r in zip(seqs, rows)])

    def _spooled(self, rows: list[SpoolRow]) -> None:
        """Committed rows go to Kafka from here when nothing older waits, else to the sender's queue (in
        memory: it reads the file only to catch up). Called with ``_lock`` held, so rows arrive in order."""
        with self._cond:
            self._spooled_upto = max(self._spooled_upto, rows[-1].seq)
            if self._floor is None:
                self._floor = rows[0].seq
        if self._delivery.offer(rows):
            return
        with self._cond:
            if not self._queue_overflowed:
                self._queue.extend(rows)
                if len(self._queue) > QUEUE_MAX:  # the sender is stuck: it will read the file instead
                    self._queue.clear()
                    self._queue_overflowed = True
            if self._sender_idle:  # a busy sender looks again within a tick: waking it per event costs
                self._sender_idle = False
                self._cond.notify_all()

    # ---- autosave batching --------------------------------------------------------------------

    def autosave(self, session_id: str, nip: str, section: str, item_id: str, option: str | None,
                 at: datetime, *, lab_id: str | None = None) -> None:
        """Buffer one autosaved answer; raises InvalidEvent at once when it could not be sent.

        Emitted as part of one ``AnswersSaved`` per participant and section, after ``lab_autosave_batch``
        distinct items or ``lab_autosave_seconds``, and before any later event of that participant.
        """
        lab = lab_id or self._lab_id
        if not lab:
            raise ValueError("autosave needs a lab id: LabEmitter(settings, lab_id=...) or CACT_LAB_ID")
        probe = validate({"event_id": str(uuid.uuid4()), "event_type": "AnswersSaved", "schema_version": 1,
                          "occurred_at": at, "lab_id": lab,
                          "payload": {"session_id": session_id, "nip": nip, "section": section,
                                      "answers": [{"item_id": item_id, "option": option}]}})
        assert isinstance(probe, AnswersSaved)
        self._sized(_row(probe))  # a batch of this one answer must fit, or the answer could never be sent
        p = probe.payload
        with self._lock:
            rid = self._spool.buffer_answer(p.session_id, p.nip, str(p.section), item_id, option,
                                            probe.occurred_at.isoformat(), lab)
            key = (p.session_id, p.nip, str(p.section))
            buf = self._buffers.setdefault(key, _Buffer(time.monotonic()))
            buf.add(BufferedAnswer(rid, p.session_id, p.nip, str(p.section), item_id, option,
                                   probe.occurred_at.isoformat(), lab))
            if len(buf.latest) >= self._autosave_batch:
                self._emit_buffer(key)

    def _autosaves_for(self, event: Event) -> list[tuple[str, str, str]]:
        """Buffers to emit before ``event``: its participant's in its session, or the whole session's."""
        session = event.key()
        nip = getattr(event.payload, "nip", None)
        whole_session = nip is None or isinstance(event, (SessionClosed, EventBatch))
        return [k for k in self._buffers if k[0] == session and (whole_session or k[1] == nip)]

    def _emit_autosaves_before(self, event: Event) -> None:
        if self._buffers:
            for key in self._autosaves_for(event):
                self._emit_buffer(key)

    def _emit_buffer(self, key: tuple[str, str, str]) -> None:
        buf = self._buffers.pop(key)
        rows = self._autosave_rows(key, list(buf.latest.values()))
        seqs = self._spool.replace_answers(buf.ids, rows)
        self._spooled([SpoolRow(seq, r.topic, r.key, r.value) for seq, r in zip(seqs, rows)])

    def _autosave_rows(self, key: tuple[str, str, str], answers: list[BufferedAnswer]) -> list[NewRow]:
        """One ``AnswersSaved`` for the answers, or, when that would be too large, halves of them in their order
        (each item is in one of them only, so the worker merges them to the same answers)."""
        last = max(answers, key=lambda a: (datetime.fromisoformat(a.at), a.id))
        event = new_event(AnswersSaved, lab_id=last.lab_id, occurred_at=datetime.fromisoformat(last.at), payload={
            "session_id": key[0], "nip": key[1], "section": key[2],
            "answers": [{"item_id": a.item_id, "option": a.option} for a in answers]})
        row = _row(event)
        if len(row.value) <= self.max_message_bytes or len(answers) == 1:  # one answer fits: autosave() checked
            return [row]
        half = len(answers) // 2
        return self._autosave_rows(key, answers[:half]) + self._autosave_rows(key, answers[half:])

    def _emit_due_autosaves(self, everything: bool = False) -> None:
        if not self._buffers:
            return
        with self._lock:
            now = time.monotonic()
            for key, buf in list(self._buffers.items()):
                if everything or now - buf.started >= self._autosave_seconds:
                    self._emit_buffer(key)

    def _recover_autosaves(self) -> None:
        """Answers a dead emitter buffered (now ours after adopt) are emitted at once: they are overdue."""
        with self._lock:
            for a in self._spool.buffered_answers():
                self._buffers.setdefault((a.session_id, a.nip, a.section), _Buffer(0.0)).add(a)
            self._emit_due_autosaves(everything=True)

    # ---- waiting ------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 60) -> None:
        """Emit buffered autosaves, then wait until Kafka acknowledged everything spooled so far.

        Raises DeliveryTimeout (the events stay spooled and keep being retried) or DeliveryFailed (Kafka
        refused some events for good since the last flush).
        """
        self._emit_due_autosaves(everything=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._spooled_upto
            while self._floor is not None and self._floor <= target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise DeliveryTimeout(self.pending(), self.spool_path, self._last_error)
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
            failures, self._failures = self._failures, []
        if failures:
            raise DeliveryFailed(failures)

    def pending(self) -> int:
        """Events of this emitter not yet acknowledged by Kafka."""
        return self._spool.count_pending()

    def resend(self, since: float, until: float | None = None, *, from_destination: str | None = None) -> Requeued:
        """Send again the acknowledged events sent in ``[since, until)`` (unix times), in their original order.

        For a broker that lost data it had acknowledged (a memory broker restarted, a cluster rebuilt): the
        rows go back to pending, owned by this emitter, and the sender delivers them like any other pending
        row, oldest first, before this emitter's newer ones; ``flush`` waits for them too. Returns at once.
        Events whose payload was already pruned cannot be resent: ``payload_gone`` says how many.
        """
        with self._lock, self._delivery.lock:
            requeued = self._spool.requeue_sent(since, until, from_destination=from_destination)
            if requeued.events:
                self._delivery.rewind()
                with self._cond:
                    self._spooled_upto = max(self._spooled_upto, requeued.last_seq or 0)
                    self._sender_idle = False
                self._delivery._update_floor()  # wakes the sender
        return requeued

    def close(self, timeout: float = 30) -> None:
        """Flush for up to ``timeout`` seconds, then stop. Whatever is left stays spooled for the next emitter."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout)
        except DeliveryTimeout as exc:
            log.warning("closing with undelivered events: %s", exc)
        except DeliveryFailed as exc:
            log.error("%s", exc)
        finally:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._sender.join()
            self._spool.close()

    def __enter__(self) -> LabEmitter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # Leaving on an error (Ctrl-C...): do not hold the lab up; the spool keeps what was not sent.
        self.close(timeout=30 if exc_type is None else 2)

    # ---- the sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._delivery.loop()
        except Exception:  # never expected; the events stay spooled for the next emitter
            log.exception("lab emitter sender stopped")
            self._last_error = "sender stopped unexpectedly; see the log"
