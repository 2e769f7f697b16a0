"""Delivery of the lab emitter's spooled events to Kafka (kafka-python), in order, through outages.

Apart from the emitter (producers/emitter.py), which validates, batches and spools: what happens after an
event is safely in the spool is this module's. Each outcome is written back to the spool (acknowledged,
or failed for good when Kafka refuses the record itself), so a crash at any point loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kafka import KafkaProducer
from kafka import errors as kafka_errors
from kafka.producer.future import FutureRecordMetadata

from producers.spool import SpoolRow
from schemas.retry import BackoffCursor, RetryPolicy

if TYPE_CHECKING:
    from producers.emitter import LabEmitter

log = logging.getLogger("producers.emitter")

#: Kafka refuses these records themselves; resending cannot help, so the row is marked failed.
POISON_ERRORS: tuple[type[Exception], ...] = (
    kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError, kafka_errors.InvalidTopicError,
    kafka_errors.CorruptRecordError, kafka_errors.InvalidRecordError)
WINDOW = 5000                 # rows handed to kafka-python and not yet acknowledged, at most
DISPATCH_ROWS = 1000          # rows read from the spool at a time
TICK_SECONDS = 0.005          # the sender's pace while rows are in flight
HEARTBEAT_SECONDS = 2.0       # well inside the spool's owner lease
ADOPT_EVERY_SECONDS = 10.0    # look for a dead emitter's leftovers on a shared spool
PRUNE_EVERY_SECONDS = 3600.0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class _LoginRefusals(logging.Handler):
    """Keeps a SASL refusal that kafka-python logs while it bootstraps and then hides behind its own
    "Unable to bootstrap" timeout, so the emitter's last error says the credentials are wrong, not the network."""

    def __init__(self, seen: Callable[[BaseException], None]) -> None:
        super().__init__(logging.WARNING)
        self.refusal: BaseException | None = None
        self._seen = seen

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, BaseException) and "Authentication" in type(arg).__name__:
                self.refusal = arg
                self._seen(arg)  # at once: a flush that gives up before the bootstrap does must say why


@contextlib.contextmanager
def _login_refusals(seen: Callable[[BaseException], None]) -> Iterator[_LoginRefusals]:
    logger, handler = logging.getLogger("kafka"), _LoginRefusals(seen)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class Sender:
    """Delivers the emitter's pending rows in ``seq`` order and records each outcome in the spool.

    Runs in its own thread, except for the fast path (:meth:`offer`): when nothing older is waiting, the
    thread that just spooled a row hands it to kafka-python itself, which avoids a second Python thread
    fighting for the GIL on every event. ``lock`` guards the producer, the in-flight rows and the cursor,
    so rows are handed over strictly in ``seq`` order whichever thread does it.
    """

    def __init__(self, emitter: LabEmitter) -> None:
        self.e = emitter
        self.spool = emitter._spool
        self.lock = threading.Lock()
        self.producer: KafkaProducer | None = None
        self.inflight: deque[tuple[int, FutureRecordMetadata]] = deque()
        self.cursor = 0
        self.from_db = True  # read the file first: it may hold rows spooled before this emitter started
        self.failure: BaseException | None = None  # seen by offer(), handled by the thread
        # Waits between connections to a Kafka it cannot reach: the pipeline's retry policy (schemas/retry.py),
        # doubling from CACT_LAB_RETRY_BASE_SECONDS to CACT_LAB_RETRY_MAX_SECONDS without jitter.
        self.backoff = BackoffCursor(RetryPolicy(emitter._settings.lab_retry_base_seconds,
                                                 emitter._settings.lab_retry_max_seconds, jitter=0))
        self.next_connect = 0.0
        now = time.monotonic()
        self.last_heartbeat = self.last_adopt = self.last_prune = now

    # ---- the caller's fast path ---------------------------------------------------------------

    def offer(self, rows: list[SpoolRow]) -> bool:
        """Send just-spooled rows from the caller's thread if nothing older waits; False: queue them."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            if (self.producer is None or self.from_db or self.failure is not None
                    or len(self.inflight) >= WINDOW):
                return False
            with self.e._cond:
                if self.e._queue or self.e._queue_overflowed:
                    return False
            self._send(rows)
            return True
        finally:
            self.lock.release()

    # ---- the thread ---------------------------------------------------------------------------

    def loop(self) -> None:
        e = self.e
        while True:
            try:
                self._housekeeping()
            except Exception as exc:  # a busy spool file, say: retry on the next turn
                log.warning("spool housekeeping failed: %s", _describe(exc))
            if e._stopping:
                self._stop()
                return
            with self.lock:
                if self.failure is not None:
                    self._reset(self.failure)
                if self.producer is None and not self._connect():
                    busy = False
                else:
                    busy = self._dispatch()
                acked = self._collect()
            if acked:
                self.spool.mark_sent(acked)
                e._last_error = None
                self._update_floor()
            if not busy:  # let rows and acknowledgements accumulate: SQLite and Kafka both prefer batches
                if self.producer is None:
                    self._wait(min(0.2, max(0.0, self.next_connect - time.monotonic())))
                else:
                    self._wait(TICK_SECONDS if self.inflight else 0.1, idle=not self.inflight)

    def _wait(self, seconds: float, idle: bool = False) -> None:
        with self.e._cond:
            if not self.e._stopping:
                self.e._sender_idle = idle
                self.e._cond.wait(seconds)
                self.e._sender_idle = False

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat >= HEARTBEAT_SECONDS:
            self.spool.heartbeat()
            self.last_heartbeat = now
        self.e._emit_due_autosaves()
        if now - self.last_adopt >= ADOPT_EVERY_SECONDS:
            self.last_adopt = now
            with self.lock:
                if not self.inflight and self.spool.adopt():
                    self.cursor, self.from_db = 0, True  # adopted rows are older than ours: send them first
                    with self.e._cond:
                        self.e._spooled_upto = max(self.e._spooled_upto, self.spool.newest_pending_seq() or 0)
                    self._update_floor()
        if now - self.last_prune >= PRUNE_EVERY_SECONDS:
            self.last_prune = now
            self.spool.prune_sent(self.e._settings.lab_spool_keep_sent_hours)

    def _connect(self) -> bool:
        if time.monotonic() < self.next_connect:
            return False
        try:
            with _login_refusals(self._refused) as refusals:
                self.producer = KafkaProducer(**self.e._producer_kwargs)
        except Exception as exc:
            self._outage(refusals.refusal or exc)
            return False
        self.backoff.reset()
        self.cursor, self.from_db = 0, True
        return True

    def _send(self, rows: list[SpoolRow]) -> None:
        """Hand rows to kafka-python in order (under ``lock``); a failure is left for the thread to handle."""
        assert self.producer is not None
        for r in rows:
            if self.failure is not None:
                return  # the rest stays pending in the file; the reset reads it from there
            try:
                future = self.producer.send(r.topic, value=r.value, key=r.key)
            except POISON_ERRORS as exc:
                self._poison(r.seq, exc)
            except Exception as exc:  # metadata not available in time, producer closed: an outage
                self.failure = exc
                return
            else:
                self.inflight.append((r.seq, future))
            self.cursor = r.seq

    def _dispatch(self) -> bool:
        """Hand the next waiting rows to kafka-python; True when there may be more right away."""
        room = WINDOW - len(self.inflight)
        if room <= 0 or self.producer is None:
            return False
        rows = self._next_rows(min(room, DISPATCH_ROWS))
        if rows:
            self._send(rows)
        return len(rows) == DISPATCH_ROWS

    def _next_rows(self, limit: int) -> list[SpoolRow]:
        """The next rows in ``seq`` order: from the file while catching up (start, adoption, after an outage),
        else from the emitter's in-memory queue. Switching happens under the emitter's condition, which
        every spooled row passes through after its commit, so no row is skipped or taken twice."""
        e = self.e
        with e._cond:
            if e._queue_overflowed:
                e._queue_overflowed = False
                self.from_db = True
            if not self.from_db:
                rows = e._queue[:limit]
                del e._queue[:limit]
                # A row queued just as the sender caught up from the file may have been sent from there.
                return [r for r in rows if r.seq > self.cursor]
            rows = self.spool.pending(self.cursor, limit)
            if len(rows) < limit:  # caught up: whatever is committed later arrives through the queue
                self.from_db = False
                last = rows[-1].seq if rows else self.cursor
                e._queue = [r for r in e._queue if r.seq > last]
            return rows

    def _collect(self) -> list[int]:
        """Acknowledged rows, oldest first, up to the first still in flight; a failure is noted for reset."""
        acked: list[int] = []
        while self.inflight and self.inflight[0][1].is_done:
            seq, future = self.inflight[0]
            if future.exception is None:
                acked.append(seq)
            elif isinstance(future.exception, POISON_ERRORS):
                self._poison(seq, future.exception)
            else:
                if self.failure is None:
                    self.failure = future.exception
                break
            self.inflight.popleft()
        return acked

    def _poison(self, seq: int, exc: BaseException) -> None:
        self.spool.mark_failed(seq, _describe(exc))
        self.e._failures.append(f"seq {seq}: {_describe(exc)}")
        self._update_floor()

    def _reset(self, exc: BaseException) -> None:
        """An outage or a broken producer: drop it, keep unacknowledged rows pending, resend from the oldest."""
        producer, self.producer = self.producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=0)  # fails what is still queued, so nothing is sent behind our back
        late = [seq for seq, f in self.inflight if f.succeeded()]
        if late:  # acknowledged after an older row failed: already in Kafka, so do not send them again
            self.spool.mark_sent(late)
        unacked = [seq for seq, f in self.inflight if not f.succeeded()]
        if unacked:
            self.spool.note_attempt_failed(unacked, _describe(exc))
        self.inflight.clear()
        self.failure = None
        self.cursor, self.from_db = 0, True
        self._update_floor()
        self._outage(exc)

    def rewind(self) -> None:
        """Start again from the file's oldest pending row (under ``lock``), for rows that became pending behind
        the cursor (a resend). What is in flight is dropped with its producer, so no newer row is handed to
        Kafka before them; those rows stay pending and go again (a few may arrive twice, as after an outage)."""
        if self.inflight:
            producer, self.producer = self.producer, None
            if producer is not None:
                with contextlib.suppress(Exception):
                    producer.close(timeout=0)
            late = [seq for seq, f in self.inflight if f.succeeded()]
            if late:
                self.spool.mark_sent(late)
            self.inflight.clear()
        self.cursor, self.from_db = 0, True

    def _refused(self, exc: BaseException) -> None:
        self.e._last_error = _describe(exc)

    def _outage(self, exc: BaseException) -> None:
        self.e._last_error = _describe(exc)
        self.next_connect = time.monotonic() + self.backoff.next_delay()
        log.warning("Kafka unreachable (%s); events stay spooled, retrying in %.1f s", self.e._last_error,
                    self.next_connect - time.monotonic())

    def _update_floor(self) -> None:
        with self.e._cond:
            self.e._floor = self.spool.oldest_pending_seq()
            self.e._cond.notify_all()

    def _stop(self) -> None:
        """Give what is in flight a moment to be acknowledged; the rest stays pending in the spool."""
        with self.lock:
            if self.producer is not None:
                with contextlib.suppress(Exception):
                    self.producer.flush(timeout=2)
                with contextlib.suppress(Exception):
                    self.producer.close(timeout=1)
                acked = [seq for seq, f in self.inflight if f.succeeded()]
                if acked:
                    self.spool.mark_sent(acked)
                self.inflight.clear()
                self.producer = None
