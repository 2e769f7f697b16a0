"""The commit protocol: when an input record may be acknowledged, and how the worker leaves when it may not.

The rule, in one sentence: an input record is acknowledged to Faust (so its offset can be committed) only
after every output it caused, its dead letter if any, and its state change are acknowledged by the broker, in
that order. docs/operations.md ("The delivery guarantee") states the guarantee; issues 12 and 13 measured why
each step is there. For one chunk of a batch (streams/intake.py ``Chunk``), :meth:`Committer.commit` does:

1. **outputs first**: results, attendance, summaries and dead letters are sent straight to the producer and
   every send is awaited until the broker acknowledged it (``acks=all``);
2. **state second**: each table overlay writes its changed keys to its changelog and waits for the broker's
   acknowledgement before the table's memory changes (streams/state.py ``TableOverlay.flush``);
3. **bookkeeping third**: counters, the broker marks and the lag position learn that the chunk's records are
   done (``acknowledged``), and each record's latency, from its Kafka timestamp to now, is observed
   (``cact_event_latency_seconds``);
4. **input last**: :func:`run_batch` returns, and Faust's ``take_events`` acknowledges the batch's records; it
   commits acknowledged offsets every ``CACT_COMMIT_INTERVAL_SECONDS``.

A crash anywhere before 4 re-reads the records from the last commit and replays them against the state as
acknowledged: the same deterministic event ids come out again, and every sink upserts.

**Crash-only exits.** Faust acknowledges a ``take_events`` batch in a ``finally``, also when the agent raises or
is cancelled, and restarts a failed agent. So a failure must never reach Faust: :func:`to_completion` ends the
process (exit 70, :data:`EXIT_CRASH`) before that ``finally`` runs, a stop (SIGTERM, a rebalance) lets the
batch in hand finish first, for at most :data:`STOP_GRACE_SECONDS`, and a worker halted on a broker loss
(:func:`halt`) exits without acknowledging when stopped. A supervisor or the operator restarts the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, NoReturn, Protocol

from schemas.events import Event
from streams.intake import Chunk, Intake

log = logging.getLogger("cact.worker")

#: Exit code of a worker stopped by an unexpected error (EX_SOFTWARE): nothing of its batch was acknowledged.
EXIT_CRASH = 70
#: How long a stopping worker lets the batch in hand finish before it exits without acknowledging it.
STOP_GRACE_SECONDS = 30.0


class Producer(Protocol):
    """What the protocol needs of Faust's producer (``app.producer``): a send whose awaited result is a future
    that resolves once the broker acknowledged the record, and fails when it refused it."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
                   timestamp: float | None, headers: Any) -> Awaitable[Any]: ...


class Overlay(Protocol):
    async def flush(self, producer: Any) -> int: ...


def exit_without_ack(code: int, message: str, exc: BaseException | None = None) -> NoReturn:
    """Leave now, before Faust's clean-up acknowledges the batch in hand: its records are read again on restart."""
    if exc is not None:
        log.critical("%s: %s: %s", message, type(exc).__name__, exc, exc_info=exc)
    else:
        log.critical("%s", message)
    logging.shutdown()
    os._exit(code)


async def to_completion(work: Coroutine[Any, Any, None]) -> None:
    """Run one batch so that only a finished batch is ever acknowledged.

    A cancel lets the batch finish first (bounded by STOP_GRACE_SECONDS), and a batch that fails or cannot
    finish ends the process before Faust's ``finally`` acknowledges it."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
        except BaseException as exc:  # noqa: BLE001 - whatever it was, the batch is not done
            exit_without_ack(EXIT_CRASH, "stopped in the middle of a batch; it was not acknowledged", exc)
        raise
    except BaseException as exc:  # noqa: BLE001
        exit_without_ack(EXIT_CRASH, "the worker stopped on an unexpected error; nothing of the batch in hand "
                         "was acknowledged, it is processed again on restart", exc)


async def halt(message: Callable[[], str], *, every_s: float = 60.0) -> NoReturn:
    """Stop processing for good, loudly (the rest of the worker, /metrics included, keeps running); a stop
    exits without acknowledging."""
    try:
        while True:
            log.error(message())
            await asyncio.sleep(every_s)
    except asyncio.CancelledError:
        exit_without_ack(EXIT_CRASH, "stopped while halted on a broker loss; nothing was acknowledged")


async def send(producer: Producer, events: Sequence[Event]) -> None:
    """Send events to their topics and wait until the broker has acknowledged them all (raises if it refused one).

    Straight to the producer: the events are bytes already, and Topic.send's channel, codec and sensor
    layers cost more per message than the send itself (docs/benchmarks.md)."""
    pending = [await producer.send(e.topic.name, e.key().encode(), e.to_bytes(), None, None, None) for e in events]
    if pending:
        await asyncio.gather(*pending)


class Committer:
    """Steps 1-3 of the protocol for one chunk; ``producer`` is read at each commit (Faust makes it at start).

    ``acknowledged(chunk, written)`` is the bookkeeping, called once outputs and state are both acknowledged,
    with the number of state keys written; it must not do I/O that can fail (a failure there is a crash).
    ``latency(seconds)`` (a histogram's ``observe``) is told, per record of the chunk, how long it took from
    the record's Kafka timestamp to that acknowledgement, on ``clock`` (the wall clock, as Kafka's are)."""

    def __init__(self, producer: Callable[[], Producer], acknowledged: Callable[[Chunk, int], None], *,
                 latency: Callable[[float], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self._producer = producer
        self._acknowledged = acknowledged
        self._latency = latency
        self._clock = clock

    async def send(self, events: Sequence[Event]) -> None:
        await send(self._producer(), events)

    async def commit(self, chunk: Chunk) -> None:
        producer = self._producer()
        await send(producer, chunk.out)
        overlays: Iterable[Overlay] = (chunk.sessions, chunk.participants)
        written = sum(await asyncio.gather(*(overlay.flush(producer) for overlay in overlays)))
        acked_at = self._clock()
        self._acknowledged(chunk, written)
        if self._latency is not None:
            for record in chunk.records:
                sent_at = record.message.timestamp
                if sent_at is not None:  # a lab whose clock runs ahead would read negative: counted as 0
                    self._latency(max(0.0, acked_at - sent_at))


async def run_batch(batch: Sequence[Any], intake: Intake, *, chunk_events: int,
                    commit: Callable[[Chunk], Awaitable[None]]) -> None:
    """Take a Faust batch through the intake, committing a chunk every ``chunk_events`` events.

    A Faust batch counts messages, and an EventBatch message holds many events: results go out, and state is
    written, every ``chunk_events`` events, so the sink and memory never wait for a whole batch."""
    chunk = intake.new_chunk()
    for record in batch:
        chunk = intake.take(chunk, record)
        if chunk.events >= chunk_events:
            await commit(chunk)
            chunk = intake.new_chunk()
    await commit(chunk)
