"""Kafka client settings for every library the project uses, and the topic and progress admin it needs.

One function per client library turns the one Settings object into that library's keyword arguments, so
SASL/TLS for a secured cluster is configured once, from the environment, for producers, Faust and sinks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import TopicPartition

from schemas import topics
from schemas.settings import Settings

TOPIC_EXISTS = 36


def _ssl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka consumers, producers and admin clients."""
    kw: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers,
                          "security_protocol": settings.kafka_security_protocol}
    if _ssl(settings):
        kw["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    if _sasl(settings):
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kw["sasl_plain_username"] = settings.kafka_sasl_username
        kw["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return kw


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """kafka-python producers (the lab emitter)."""
    kw: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers.split(","),
                          "security_protocol": settings.kafka_security_protocol}
    if _ssl(settings):
        kw.update(ssl_cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
                  ssl_certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
                  ssl_keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
    if _sasl(settings):
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism or "PLAIN",
                  sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None)
    return kw


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """faust.App(...) broker settings."""
    import faust

    kw: dict[str, Any] = {"broker": [f"kafka://{hp.strip()}" for hp in settings.bootstrap_servers.split(",")]}
    ssl_context = client_kwargs(settings).get("ssl_context")
    if _sasl(settings):
        kw["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None,
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    elif ssl_context is not None:
        kw["broker_credentials"] = faust.SSLCredentials(ssl_context)
    return kw


async def ensure_topics(settings: Settings, specs: Sequence[topics.TopicSpec] = topics.ALL_TOPICS) -> None:
    """Create missing topics; refuse to run when the schedule and lab topics are not co-partitioned."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(s.name, settings.topic_partitions, settings.topic_replication) for s in specs])
    except Exception as exc:  # some brokers raise TopicAlreadyExists instead of returning error code 36
        if "already exists" not in str(exc).lower() and type(exc).__name__ != "TopicAlreadyExistsError":
            raise
    finally:
        await admin.close()
    counts = await partition_counts(settings, [t.name for t in topics.INPUT_TOPICS])
    if len(set(counts.values())) > 1:
        raise RuntimeError(f"schedule and lab topics must have equal partition counts (co-partitioned by session), got {counts}")


async def partition_counts(settings: Settings, names: Sequence[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def end_offsets(settings: Settings, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
    """True high watermarks.

    Tansu answers ListOffsets(latest) with the base offset of the last record batch + 1, which is short by
    the rest of that batch; reading the last batch and taking its last offset + 1 is right on Tansu and on
    Apache Kafka alike.
    """
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        reported = await consumer.end_offsets(list(tps))
        ends = dict(reported)
        todo = {tp for tp in tps if reported[tp] > 0}
        if todo:
            consumer.assign(list(todo))
            for tp in todo:
                consumer.seek(tp, reported[tp] - 1)
            deadline = time.monotonic() + 5
            while todo and time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(*todo, timeout_ms=200)).items():
                    if records:
                        ends[tp] = max(ends[tp], records[-1].offset + 1)
                        todo.discard(tp)
        return ends
    finally:
        await consumer.stop()


async def group_lag(settings: Settings, group_id: str, topic_names: Sequence[str]) -> int:
    """Messages the group has not committed yet, over every partition of the topics.

    Reads committed offsets through a non-subscribed consumer: the admin API's list_consumer_group_offsets
    crashes the Tansu broker.
    """
    consumer = AIOKafkaConsumer(group_id=group_id, enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topic_names for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return 0
        starts: Mapping[TopicPartition, int] = await consumer.beginning_offsets(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()
    ends = await end_offsets(settings, tps)
    return sum(ends[tp] - (committed[tp] if committed[tp] is not None else starts[tp]) for tp in tps)


async def wait_until_consumed(settings: Settings, groups: Mapping[str, Sequence[str]], *, timeout: float,
                              settle: float = 1.0, progress: Callable[[int], None] | None = None) -> None:
    """Wait until every group has committed everything on its topics, twice in a row ``settle`` apart.

    Twice, because a worker's outputs land on the next group's topics only after its own commit.
    """
    deadline = time.monotonic() + timeout
    clean = 0
    lag = -1
    while time.monotonic() < deadline:
        lag = sum([await group_lag(settings, g, t) for g, t in groups.items()])
        if progress:
            progress(lag)
        clean = clean + 1 if lag == 0 else 0
        if clean >= 2:
            return
        await asyncio.sleep(settle)
    raise TimeoutError(f"still {lag} messages unprocessed after {timeout:.0f} s")
