"""The results-store sink: output topics → SQLAlchemy store, one transaction per batch, commit after write.

At-least-once by construction: offsets are committed only after the batch's transaction is durable, and
every write is an idempotent upsert, so a crash between the two (or a full replay) changes nothing.

It never stops on its input or on the database (issue 12):

* a record the database refuses is quarantined with its reason (``ResultsStore.write_records``), the rest
  of the batch is written and the offsets are committed;
* a database outage is waited out with exponential backoff, the batch in hand retried until it is written,
  offsets untouched meanwhile, including at start-up (the schema migration waits too);
* a refused offset commit (a rebalance) only means the batch comes again: the consumer is rewound to it
  and the idempotent upserts make the second write a no-op.

Anything else is a bug: it propagates and stops the sink without committing the batch (crash-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from schemas import topics
from schemas.decode import Rejected, decode_output
from schemas.fetch_wait import FetchWait, adapt_fetch_wait
from schemas.kafka_config import client_kwargs
from schemas.retry import BackoffCursor, RetryPolicy
from schemas.settings import Settings
from sinks.metrics import SinkMetrics, count_by_event_type, default_sink_metrics
from sinks.quarantine import Record, one_line
from sinks.store import ResultsStore

log = logging.getLogger("cact.sink")
SINK_TOPICS = (topics.RESULTS.name, topics.ATTENDANCE.name, topics.DEADLETTER.name)

#: As the defaults of ``CACT_SINK_RETRY_BASE_SECONDS`` / ``CACT_SINK_RETRY_MAX_SECONDS``: the first retry after
#: half a second (a database restart), then doubling up to 30 s (a long outage costs one attempt per 30 s).
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0

#: How long one fetch of an idle sink (its last fetch brought nothing) waits for records; the stop event is
#: watched meanwhile, so this bounds nothing but how often an idle sink wakes.
IDLE_FETCH_SECONDS = 5.0

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def sink_group(settings: Settings) -> str:
    return f"{settings.app_id}-sink"


class Backoff(BackoffCursor):
    """Delays between attempts during one outage: ``base``, doubling, capped at ``maximum``.

    The pipeline's retry policy (schemas/retry.py) without jitter: one sink per worker waits for its database,
    there is no crowd to spread, and an operator reads "doubles up to the maximum" in the docs.
    """

    def __init__(self, base: float = RETRY_BASE_SECONDS, maximum: float = RETRY_MAX_SECONDS) -> None:
        if base <= 0 or maximum < base:
            raise ValueError(f"backoff needs 0 < base <= maximum, got base={base} maximum={maximum}")
        super().__init__(RetryPolicy(base, maximum, jitter=0))
        self.base, self.maximum = base, maximum

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        return cls(settings.sink_retry_base_seconds, settings.sink_retry_max_seconds)


class StoreHealth:
    """Whether the results store answers: the ``cact_sink_db_up`` gauge and one log line per outage, not per retry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, metrics: SinkMetrics | None = None) -> None:
        self._clock = clock
        self.metrics = metrics or default_sink_metrics()
        self.up: bool | None = None  # unknown until the first attempt
        self.down_since = 0.0
        self.retries = 0
        self.outages = 0

    def failed(self, exc: BaseException) -> None:
        if self.up is not False:
            self.outages += 1
            self.down_since, self.retries = self._clock(), 0
            log.warning("results store unreachable (%s): the sink waits and retries, offsets stay uncommitted",
                        one_line(exc))
        self.up = False
        self.metrics.db_up.set(0)

    def retrying(self) -> None:
        self.retries += 1
        self.metrics.db_retries.inc()

    def succeeded(self) -> None:
        if self.up is False:
            log.warning("results store reachable again after %.1f s and %d retries: the sink catches up",
                        self._clock() - self.down_since, self.retries)
        self.up = True
        self.metrics.db_up.set(1)


class Stopped(Exception):
    """The stop event was set while the sink was waiting for the database."""


class Consumer(Protocol):
    """What the sink needs of an ``AIOKafkaConsumer`` (so the loop can be driven without a broker)."""

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> Mapping[TopicPartition, Sequence[Any]]: ...
    async def commit(self) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def assignment(self) -> set[TopicPartition]: ...


class ResultsSink:
    """The sink's loop over one consumer and one store; ``sleep`` and ``clock`` are injectable for tests.

    ``metrics``: where it counts (the worker's registry when it runs inside the worker), by default the
    process's global registry (sinks/metrics.py)."""

    def __init__(self, store: ResultsStore, settings: Settings, *, stop: asyncio.Event | None = None,
                 sleep: Sleep | None = None, clock: Callable[[], float] = time.monotonic,
                 backoff: Backoff | None = None, metrics: SinkMetrics | None = None) -> None:
        self.store, self.settings = store, settings
        self.stop = stop or asyncio.Event()
        self.backoff = backoff or Backoff.from_settings(settings)
        self.commit_backoff = Backoff(self.backoff.base, self.backoff.maximum)
        self.metrics = metrics or default_sink_metrics()
        self.health = StoreHealth(clock, self.metrics)
        self._sleep = sleep or self._sleep_unless_stopped

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def until_done(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a thread until it gets through an outage; raises ``Stopped`` if told to stop meanwhile."""
        self.backoff.reset()
        while True:
            try:
                result = await asyncio.to_thread(work)
            except Exception as exc:
                if not self.store.is_outage(exc):
                    raise
                self.health.failed(exc)
                self.store.dispose()  # every pooled connection died with the server: do not ping them one by one
                if self.stop.is_set():
                    raise Stopped from exc
                await self._sleep(self.backoff.next_delay())
                if self.stop.is_set():
                    raise Stopped from exc
                self.health.retrying()
                continue
            self.health.succeeded()
            return result

    async def prepare(self) -> None:
        """Migrate the store, waiting for it if it is down, and publish how many rows wait in quarantine."""
        await self.until_done(self.store.create_schema)
        self.metrics.quarantine_rows.set(await self.until_done(self.store.quarantine_count))

    @staticmethod
    def records(fetched: Mapping[TopicPartition, Sequence[Any]]) -> list[Record]:
        """Decode a fetch; an undecodable message becomes a record with a refusal, to be quarantined, not dropped."""
        out: list[Record] = []
        for tp, messages in fetched.items():
            for msg in messages:
                try:
                    event, refusal = decode_output(msg.value, topic=tp.topic), None
                except Rejected as exc:  # our own output: a bug upstream or a stranger on our topics
                    event, refusal = None, f"undecodable output ({exc.reason}): {exc.detail}"
                except Exception as exc:  # e.g. a tombstone (no value): still not ours to drop
                    event, refusal = None, f"undecodable output: {one_line(exc)}"
                out.append(Record(tp.topic, tp.partition, msg.offset, msg.value, event, refusal))
        return out

    async def handle(self, consumer: Consumer, fetched: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Write one fetch (waiting out outages), then commit; a refused commit rewinds to the fetch's start."""
        records = self.records(fetched)

        def write() -> list[dict[str, Any]]:
            started = time.perf_counter()
            written = self.store.write_records(records)
            self.metrics.batch_seconds.observe(time.perf_counter() - started)  # not the time spent waiting
            return written

        if records:
            quarantined = await self.until_done(write)
            kept = [r.event.event_type for r in records if r.event is not None]
            if quarantined:
                refused = {(q["source_topic"], q["source_partition"], q["source_offset"]) for q in quarantined}
                kept = [r.event.event_type for r in records if r.event is not None
                        and (r.topic, r.partition, r.offset) not in refused]
                for q in quarantined:
                    log.error("quarantined %s at %s[%s]@%s: %s (see `cact sink quarantine`)", q["event_type"],
                              q["source_topic"], q["source_partition"], q["source_offset"], q["reason"])
                count_by_event_type(self.metrics.quarantined, (q["event_type"] for q in quarantined))
                self.metrics.quarantine_rows.set(await self.until_done(self.store.quarantine_count))
            count_by_event_type(self.metrics.rows, kept)
            self.metrics.batch_events.observe(len(records))
        try:
            await consumer.commit()
        except KafkaError as exc:  # CommitFailedError after a rebalance, a coordinator moving, a broker away
            self.metrics.commit_failures.inc()
            log.warning("offset commit refused (%s): the batch will be written again (idempotent)", one_line(exc))
            self.rewind(consumer, fetched)
            await self._sleep(self.commit_backoff.next_delay())  # a commit that keeps failing is no busy loop
        else:
            self.commit_backoff.reset()

    @staticmethod
    def rewind(consumer: Consumer, fetched: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Fetch the batch again where this consumer still owns its partition; a new owner starts at the commit."""
        owned = consumer.assignment()
        for tp, messages in fetched.items():
            if messages and tp in owned:
                try:
                    consumer.seek(tp, messages[0].offset)
                except IllegalStateError:  # revoked between the two calls
                    pass

    async def next_fetch(self, consumer: Consumer, timeout: float) -> Mapping[TopicPartition, Sequence[Any]] | None:
        """The consumer's next fetch, or None when told to stop before it came.

        Raced with ``stop`` so that an idle sink need not wake every ``sink_batch_seconds`` only to look at the
        stop event: after an empty fetch it waits up to ``IDLE_FETCH_SECONDS`` (records end the wait at once)."""
        fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=int(timeout * 1000),
                                                       max_records=self.settings.sink_batch_size))
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (the worker stopping its in-process sink): the fetch goes too
            fetch.cancel()
            raise
        finally:
            stopping.cancel()
        if not fetch.done():  # stopped first
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fetch
            return None
        return fetch.result()

    async def run(self, consumer: Consumer) -> None:
        timeout = self.settings.sink_batch_seconds
        while not self.stop.is_set():
            fetched = await self.next_fetch(consumer, timeout)
            if fetched is None:
                return
            timeout = self.settings.sink_batch_seconds if fetched else max(IDLE_FETCH_SECONDS, timeout)
            if not fetched:
                continue
            try:
                await self.handle(consumer, fetched)
            except Stopped:
                return  # told to stop during an outage: the batch stays uncommitted and comes again


async def run_sink(settings: Settings, stop: asyncio.Event | None = None, *, sleep: Sleep | None = None,
                   backoff: Backoff | None = None, metrics: SinkMetrics | None = None) -> None:
    """Run the sink until ``stop`` is set; it waits for the database rather than failing when it is down."""
    store = ResultsStore(settings.database_url)
    sink = ResultsSink(store, settings, stop=stop, sleep=sleep, backoff=backoff, metrics=metrics)
    try:
        try:
            await sink.prepare()
        except Stopped:
            return
        consumer = AIOKafkaConsumer(
            *SINK_TOPICS, group_id=sink_group(settings), enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,  # see streams/faust_fixes.py: a long wait is latency
            **client_kwargs(settings),
        )
        await consumer.start()
        adapt_fetch_wait(consumer._fetcher, FetchWait.from_settings(settings))  # schemas/fetch_wait.py
        try:
            await sink.run(consumer)
        finally:
            await consumer.stop()
    finally:
        store.dispose()
