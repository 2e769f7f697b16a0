"""Faust's broker settings, and the topic and progress admin the worker and the commands need.

The client keyword arguments themselves are built in schemas/kafka_config.py, once for every client library.

The admin helpers work on Apache Kafka and on the embedded Tansu broker alike, which shapes them:

* the admin API's ``list_consumer_group_offsets`` crashes Tansu 0.6, so committed offsets are read with a
  consumer that joins nothing (``AIOKafkaConsumer(group_id=...).committed(tp)``);
* Tansu answers ListOffsets(latest) with the base offset of the partition's last record batch + 1, so
  high watermarks are taken from a fetch response instead (see :func:`end_offsets`);
* Tansu creates a topic as soon as a metadata request names it, so topics are only ever described after
  listing what exists.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from schemas.kafka_config import bootstrap_list, client_kwargs, is_sasl, sasl_password
from schemas.settings import Settings
from schemas.topics import ALL_TOPICS, INPUT_TOPICS, TopicSpec

log = logging.getLogger("cact.worker")

#: CreateTopics error code for "topic already exists": returned per topic, not raised, and fine for us.
TOPIC_EXISTS = 36
#: How long ensure_topics waits for new topics to show up in metadata (Kafka propagates asynchronously).
TOPIC_METADATA_WAIT_SECONDS = 10.0
def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """faust.App(...) broker settings: one ``kafka://`` URL per bootstrap server, plus credentials.

    Faust derives the security protocol from the credentials object (SASL with an ssl_context is SASL_SSL),
    so the context from :func:`client_kwargs` is passed along for both SSL protocols.
    """
    import faust  # imported here: only the worker needs Faust, and it is slow to import

    kw: dict[str, Any] = {"broker": [f"kafka://{hp}" for hp in bootstrap_list(settings)]}
    ssl_context = client_kwargs(settings).get("ssl_context")
    if is_sasl(settings):
        kw["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=sasl_password(settings),
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    elif ssl_context is not None:
        kw["broker_credentials"] = faust.SSLCredentials(ssl_context)
    return kw


class _Failures(logging.Handler):
    """Keeps aiokafka's per-address connect errors, which its bootstrap logs but does not raise."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[tuple[str, BaseException]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if isinstance(record.msg, str) and record.msg.startswith(("Unable connect to", "Unable to request metadata")) \
                and len(args) == 3 and isinstance(args[2], BaseException):
            self.seen.append((f"{args[0]}:{args[1]}", args[2]))


async def probe(settings: Settings, timeout: float) -> list[tuple[str, BaseException]]:
    """A pre-flight metadata round trip: [] when Kafka answered, else (address, error) per failed address.

    aiokafka logs why each bootstrap server failed and raises only "Unable to bootstrap"; the log records
    are taken here (and not printed), so the caller can say why in one line.
    """
    from aiokafka.client import AIOKafkaClient

    logger = logging.getLogger("aiokafka")
    failures, propagate = _Failures(), logger.propagate
    logger.addHandler(failures)
    logger.propagate = False
    client = AIOKafkaClient(**client_kwargs(settings), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        return []
    except (TimeoutError, OSError, KafkaError) as exc:
        return failures.seen or [(settings.bootstrap_servers, exc)]
    finally:
        await client.close()
        logger.removeHandler(failures)
        logger.propagate = propagate


# ------------------------------------------------------------------------------------------------
# Topics
# ------------------------------------------------------------------------------------------------

async def _existing_partition_counts(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, int]:
    """Partition counts of those of ``names`` that exist, without creating the others.

    Listing first matters on Tansu, whose metadata request creates any topic it names.
    """
    existing = set(await admin.list_topics())
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0 and d["partitions"]}


async def partition_counts(settings: Settings, names: Sequence[str]) -> dict[str, int]:
    """Partition count of every topic in ``names`` that exists; missing topics are left out (not created)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        return await _existing_partition_counts(admin, names)
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, specs: Sequence[TopicSpec] = ALL_TOPICS) -> None:
    """Create the missing topics, then refuse to go on when schedule and lab are not co-partitioned.

    New topics get ``settings.topic_partitions`` and ``settings.topic_replication``; existing topics are
    left as they are. The worker needs the schedule and lab topics to have the same partition count, or a
    session's schedule and its lab events land in different partitions and are never seen together, so
    an existing mismatch is an error here rather than silently wrong attendance later.
    """
    names = [s.name for s in specs]
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        missing = [n for n in names if n not in set(await admin.list_topics())]
        if missing:
            response = await admin.create_topics(
                [NewTopic(n, settings.topic_partitions, settings.topic_replication) for n in missing])
            failed = [(topic, code, message) for topic, code, message in response.topic_errors
                      if code not in (0, TOPIC_EXISTS)]  # 36: created meanwhile by someone else, fine
            if failed:
                raise RuntimeError("could not create Kafka topics: " + "; ".join(
                    f"{topic}: error {code} {message or ''}".rstrip() for topic, code, message in failed))
        deadline = time.monotonic() + TOPIC_METADATA_WAIT_SECONDS
        while True:  # Apache Kafka shows a new topic in metadata a moment after CreateTopics returns
            # Both input topics, even when ``specs`` names only one: the other may exist with another count.
            counts = await _existing_partition_counts(admin, [*names, *(t.name for t in INPUT_TOPICS)])
            if set(counts) >= set(names) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    if absent := [n for n in names if n not in counts]:
        raise RuntimeError(f"topics {absent} still missing from the cluster metadata "
                           f"{TOPIC_METADATA_WAIT_SECONDS:.0f} s after creating them")
    inputs = {t.name: counts[t.name] for t in INPUT_TOPICS if t.name in counts}
    if len(set(inputs.values())) > 1:
        raise RuntimeError(
            "the schedule and lab topics must have the same partition count, because the worker relies on "
            f"session_id co-partitioning; found {inputs}. Recreate or repartition one of them to match "
            f"(CACT_TOPIC_PARTITIONS={settings.topic_partitions} is what this pipeline creates).")


# ------------------------------------------------------------------------------------------------
# Progress: offsets and consumer-group lag
# ------------------------------------------------------------------------------------------------

async def _true_end_offsets(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition],
                            timeout: float = 5.0, strict: bool = False,
                            reported: Mapping[TopicPartition, int] | None = None) -> dict[TopicPartition, int]:
    """High watermarks that are right on Tansu as on Apache Kafka, read with an already started consumer.

    Tansu 0.6 answers ListOffsets(latest) with the base offset of the last record batch + 1, short by
    the rest of that batch, while its Fetch responses carry the true high watermark. So: ask ListOffsets,
    and where a partition is not empty fetch from its reported end - 1 (which is inside the last batch)
    and take the larger of the fetch's high watermark and the last offset fetched + 1. On Apache Kafka
    that fetch just confirms the reported value. The consumer's assignment is replaced.

    ``strict``: raise TimeoutError when a partition's end could not be confirmed in time, instead of returning
    the (possibly short) reported value: table recovery must never stop short (``streams/faust_fixes.py``),
    while a lag reading may be a little off on a slow poll. ``reported``: ListOffsets answers already in hand.
    """
    if reported is None:
        reported = await consumer.end_offsets(list(tps))
    ends = dict(reported)
    todo = {tp for tp in tps if reported[tp] > 0}
    if not todo:
        return ends
    consumer.assign(list(todo))
    for tp in todo:
        consumer.seek(tp, reported[tp] - 1)
    deadline = time.monotonic() + timeout
    while todo and time.monotonic() < deadline:
        batches = await consumer.getmany(*todo, timeout_ms=200)
        for tp in list(todo):
            records = batches.get(tp)
            highwater = consumer.highwater(tp)
            if records:
                ends[tp] = max(ends[tp], records[-1].offset + 1)
            if highwater is not None:
                ends[tp] = max(ends[tp], highwater)
            if records or highwater is not None:
                todo.discard(tp)
    consumer.unsubscribe()
    if strict and todo:
        raise TimeoutError(f"the end of {len(todo)} partitions could not be confirmed in {timeout:g} s "
                           f"(e.g. {sorted(todo)[0]})")
    return ends


async def end_offsets(settings: Settings, tps: Sequence[TopicPartition], *, strict: bool = False,
                      timeout: float = 5.0) -> dict[TopicPartition, int]:
    """True high watermarks of ``tps`` (see :func:`_true_end_offsets` for why not plain ListOffsets)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        return await _true_end_offsets(consumer, tps, timeout=timeout, strict=strict)
    finally:
        await consumer.stop()


class WatchedEnds:
    """True ends of the same partitions read again and again: the broker watch's, every few seconds for the
    worker's whole life (streams/broker_watch.py).

    ``end_offsets`` started a consumer (a connection, a metadata round) and fetched the last record batch of
    every partition at each read; an idle worker spent 4 of its 11 ms of CPU per second on that
    (docs/benchmarks.md). Here one consumer serves every read, and a partition whose ListOffsets answer is the
    one its true end was last confirmed with is not fetched again: a log only grows by new batches, and on
    Tansu as on Apache Kafka a new batch moves that answer, while a broker that lost the log answers less.
    A failed read drops the consumer; the next read starts a fresh one. ``close`` at the worker's stop."""

    def __init__(self, settings: Settings, *, strict: bool = True, timeout: float = 15.0,
                 consumer: Callable[[], AIOKafkaConsumer] | None = None) -> None:
        self._new_consumer = consumer or (lambda: AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings)))
        self.strict, self.timeout = strict, timeout
        self._consumer: AIOKafkaConsumer | None = None
        #: per partition: (the ListOffsets answer, the true end confirmed with it)
        self._confirmed: dict[TopicPartition, tuple[int, int]] = {}
        self.fetched = 0  # partitions whose end had to be confirmed by a fetch (tests, curiosity)

    async def __call__(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            if self._consumer is None:
                consumer = self._new_consumer()
                await consumer.start()
                self._consumer = consumer
            reported = await self._consumer.end_offsets(list(tps))
            ends = {tp: known[1] for tp in tps if (known := self._confirmed.get(tp)) and known[0] == reported[tp]}
            if todo := [tp for tp in tps if tp not in ends]:
                confirmed = await _true_end_offsets(self._consumer, todo, timeout=self.timeout, strict=self.strict,
                                                    reported={tp: reported[tp] for tp in todo})
                self._confirmed.update((tp, (reported[tp], confirmed[tp])) for tp in todo)
                self.fetched += sum(reported[tp] > 0 for tp in todo)  # an empty partition has nothing to fetch
                ends.update(confirmed)
            return ends
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._confirmed.clear()
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception as exc:  # a consumer whose broker went away: nothing left to release
                log.debug("end-offset consumer stopped with %s", exc)


async def group_lag(settings: Settings, group_id: str, topics: Sequence[str]) -> int:
    """Messages the group has not committed yet, summed over every partition of ``topics``.

    Per partition: end offset - committed offset, or end - beginning offset when the group never
    committed there (what it will read after ``auto_offset_reset=earliest``). Topics that do not exist
    count as 0. Committed offsets come from a consumer that neither subscribes nor commits, because the
    admin API's ``list_consumer_group_offsets`` crashes the Tansu broker.
    """
    consumer = AIOKafkaConsumer(group_id=group_id, enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        # start() fetched metadata for all topics: one missing from it does not exist, so it has no lag.
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return 0
        starts: Mapping[TopicPartition, int] = await consumer.beginning_offsets(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        ends = await _true_end_offsets(consumer, tps)
    finally:
        await consumer.stop()
    total = 0
    for tp in tps:
        position = committed[tp] if committed[tp] is not None else starts[tp]
        total += max(0, ends[tp] - position)
    return total


async def wait_until_consumed(settings: Settings, groups: Mapping[str, Sequence[str]], *, timeout: float,
                              settle: float = 1.0, progress: Callable[[int], None] | None = None) -> None:
    """Wait until every group (group id -> its input topics) has committed everything, twice in a row.

    Twice, ``settle`` seconds apart, because a worker's outputs reach the next group's topics only around
    its own commit, so one clean poll can come just before new input for the next group appears.
    ``progress`` gets the total lag after every poll (and may raise, e.g. when the worker died).
    Raises TimeoutError naming the groups still behind when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    clean = 0
    lags: dict[str, int] = {}
    while True:
        lags = {group: await group_lag(settings, group, topics) for group, topics in groups.items()}
        total = sum(lags.values())
        if progress is not None:
            progress(total)
        clean = clean + 1 if total == 0 else 0
        if clean >= 2:
            return
        if time.monotonic() + settle > deadline:
            break
        await asyncio.sleep(settle)
    behind = ", ".join(f"{group}: {lag}" for group, lag in lags.items() if lag) or "none on the last poll"
    raise TimeoutError(f"still {sum(lags.values())} messages unconsumed after {timeout:g} s ({behind})")
