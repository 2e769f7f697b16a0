"""Table recovery reads a changelog to its true end, on the embedded broker as on Apache Kafka.

Tansu answers ListOffsets(latest) with the base offset of the last record batch + 1; Faust's recovery stopped
there and the worker went on without the rest of that batch (issue 12). A state flush writes hundreds of keys
in one produce request, so here hundreds of records go out as one batch, as the worker writes them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from streams import faust_fixes

RECORDS = 300


@pytest.mark.broker
def test_recovery_highwater_is_the_true_end_of_a_changelog(pipeline_kafka: Settings) -> None:
    faust_fixes.install(fetch_max_wait_ms=50, settings=pipeline_kafka)
    topic = "cact-pipeline-recovery-probe-changelog"

    async def scenario() -> tuple[int, int]:
        producer = AIOKafkaProducer(linger_ms=200, max_batch_size=1_000_000, **client_kwargs(pipeline_kafka))
        await producer.start()
        try:
            pending = [await producer.send(topic, key=f'"k{i}"'.encode(), value=b'{"v": 1}', partition=0)
                       for i in range(RECORDS)]
            offsets = [(await p).offset for p in pending]
        finally:
            await producer.stop()
        assert offsets == list(range(RECORDS))
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(pipeline_kafka))
        await consumer.start()
        try:
            stub = SimpleNamespace(consumer=SimpleNamespace(in_transaction=False), _ensure_consumer=lambda: consumer)
            highwaters = await AIOKafkaConsumerThread._highwaters(stub, [TP(topic, 0)])  # type: ignore[arg-type]
            return highwaters[TP(topic, 0)], (await consumer.end_offsets([TopicPartition(topic, 0)]))[
                TopicPartition(topic, 0)]
        finally:
            await consumer.stop()

    highwater, reported = asyncio.run(scenario())
    assert highwater == RECORDS, f"recovery would stop at {highwater} of {RECORDS} (ListOffsets said {reported})"
