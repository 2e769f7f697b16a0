"""What the worker's lag (streams/lag.py) rests on, checked on the broker itself: the high watermark a consumer
reads from a fetch response is the partition's true end, on the embedded Tansu broker as on Apache Kafka, also
when the response carries an earlier batch only; ListOffsets(latest), on Tansu, is not (docs/operations.md,
"Freshness and consumer lag")."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from schemas.topics import TopicSpec
from streams.kafka import ensure_topics
from streams.lag import lag_of

BATCH = 10


async def _produce(settings: Settings, topic: str, batches: int) -> None:
    """``batches`` produce requests of BATCH records each: one record batch per request."""
    producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
    await producer.start()
    try:
        for b in range(batches):
            batch = producer.create_batch()
            for i in range(BATCH):
                batch.append(key=None, value=f"{b}-{i}".encode() * 20, timestamp=None)
            await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


async def _read_until(consumer: AIOKafkaConsumer, tp: TopicPartition, last: int) -> list[int | None]:
    """Fetch until offset ``last`` is read; the high watermark the consumer knew after each fetch."""
    seen: list[int | None] = []
    deadline = asyncio.get_running_loop().time() + 30
    while await consumer.position(tp) <= last:
        assert asyncio.get_running_loop().time() < deadline, f"offset {last} never came"
        if (await consumer.getmany(tp, timeout_ms=1000)).get(tp):
            seen.append(consumer.highwater(tp))
    return seen


@pytest.mark.broker
def test_the_fetch_high_watermark_is_the_true_end(kafka_settings: Settings) -> None:
    topic = f"cact.test.hw-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(kafka_settings.model_copy(update={"topic_partitions": 1}), [TopicSpec(topic, "k", "")]))
    tp = TopicPartition(topic, 0)

    async def run() -> None:
        await _produce(kafka_settings, topic, 3)  # batches based at 0, 10, 20: the end is 30
        consumer = AIOKafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=100, max_partition_fetch_bytes=1,
                                    **client_kwargs(kafka_settings))
        await consumer.start()
        try:
            reported = (await consumer.end_offsets([tp]))[tp]
            assert reported in (3 * BATCH, 2 * BATCH + 1)  # Apache Kafka: the end; Tansu 0.6: last batch's base + 1
            consumer.assign([tp])
            consumer.seek(tp, 0)
            first = (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
            assert first and consumer.highwater(tp) == 3 * BATCH  # from the first fetch on, whatever it carried
            assert lag_of(consumer.highwater(tp), first[-1].offset + 1) == 3 * BATCH - 1 - first[-1].offset
            await _read_until(consumer, tp, 3 * BATCH - 1)
            # two more batches while the consumer sits at the end: read, the new end is known, and never
            # less than what was read (a short high watermark would report a lag of 0 too early)
            await _produce(kafka_settings, topic, 2)
            seen = await _read_until(consumer, tp, 5 * BATCH - 1)
            assert seen[-1] == 5 * BATCH and all(hw is not None and hw >= 4 * BATCH for hw in seen)
        finally:
            await consumer.stop()

    asyncio.run(run())
