"""The embedded broker and the Kafka admin helpers the demo and the pipeline tests rely on.

Most tests share the session's broker (``kafka_settings``) and stay out of each other's way with their own
topic and group names; the ones about starting, stopping and the pipeline's own topics start a broker of
their own, which takes well under a second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from kafka import KafkaProducer

from schemas import topics
from schemas.kafka_config import client_kwargs, kafka_python_kwargs
from schemas.settings import Settings
from schemas.topics import TopicSpec
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import WatchedEnds, end_offsets, ensure_topics, group_lag, partition_counts, wait_until_consumed

pytestmark = pytest.mark.broker

MESSAGES = 100
EXTERNAL_KAFKA = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("CACT_KAFKA_BOOTSTRAP_SERVERS"))
embedded_only = pytest.mark.skipif(EXTERNAL_KAFKA, reason="starts its own embedded broker")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker.log") as broker:
        yield broker


@pytest.fixture
def filled_topic(kafka_settings: Settings) -> tuple[str, dict[bytes, int]]:
    """A new 4-partition topic holding MESSAGES keyed messages sent by kafka-python with acks=all.

    Returns the topic and how many messages each key has. linger_ms makes kafka-python send multi-record
    batches, the case where Tansu's ListOffsets answer falls short of the real end of the partition.
    """
    topic = f"cact.test.{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(kafka_settings.model_copy(update={"topic_partitions": 4}), [TopicSpec(topic, "k", "")]))
    producer = KafkaProducer(acks="all", linger_ms=20, **kafka_python_kwargs(kafka_settings))
    per_key: dict[bytes, int] = {}
    try:
        for i in range(MESSAGES):
            key = f"session-{i % 13}".encode()
            per_key[key] = per_key.get(key, 0) + 1
            producer.send(topic, key=key, value=f"{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close()
    return topic, per_key


async def _consume_all(settings: Settings, topic: str, group: str) -> list[tuple[bytes, int, int]]:
    """Join ``group``, read every message of ``topic`` and commit: (key, partition, value) per message."""
    consumer = AIOKafkaConsumer(topic, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=10_000, rebalance_timeout_ms=1_000, heartbeat_interval_ms=500,
                                **client_kwargs(settings))
    await consumer.start()
    seen: list[tuple[bytes, int, int]] = []
    try:
        deadline = time.monotonic() + 60
        while len(seen) < MESSAGES and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                seen += [(r.key, tp.partition, int(r.value)) for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    return seen


async def _commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit offsets for ``group`` without joining it (quicker than a join, which Tansu makes take ~5 s)."""
    consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def _all_committed(settings: Settings, topic: str, group: str) -> None:
    tps = [TopicPartition(topic, p) for p in range(4)]
    asyncio.run(_commit(settings, group, asyncio.run(end_offsets(settings, tps))))


def test_pipeline_topics_exist_with_the_configured_partitions(kafka_settings: Settings) -> None:
    names = [t.name for t in topics.ALL_TOPICS]
    counts = asyncio.run(partition_counts(kafka_settings, names))
    assert set(counts) == set(names)
    assert counts[topics.SCHEDULE.name] == counts[topics.LAB.name]  # co-partitioned by session_id
    if not EXTERNAL_KAFKA:  # an external cluster may have had the topics before, with other counts
        assert set(counts.values()) == {kafka_settings.topic_partitions}
    asyncio.run(ensure_topics(kafka_settings))  # a second run finds everything in place and changes nothing
    assert asyncio.run(partition_counts(kafka_settings, names)) == counts


def test_partition_counts_does_not_create_topics(kafka_settings: Settings) -> None:
    ghost = f"cact.test.ghost-{uuid.uuid4().hex[:8]}"
    assert asyncio.run(partition_counts(kafka_settings, [ghost])) == {}
    assert asyncio.run(partition_counts(kafka_settings, [ghost])) == {}  # Tansu creates topics it is asked about


def test_keyed_messages_from_kafka_python_reach_an_aiokafka_group_and_lag_drops_to_zero(
        kafka_settings: Settings, filled_topic: tuple[str, dict[bytes, int]]) -> None:
    topic, per_key = filled_topic
    tps = [TopicPartition(topic, p) for p in range(4)]
    assert sum(asyncio.run(end_offsets(kafka_settings, tps)).values()) == MESSAGES
    group = f"cact-test-{uuid.uuid4().hex[:8]}"
    assert asyncio.run(group_lag(kafka_settings, group, [topic])) == MESSAGES  # never committed: from the start

    seen = asyncio.run(_consume_all(kafka_settings, topic, group))

    assert sorted(v for _, _, v in seen) == list(range(MESSAGES))
    partitions_of_key: dict[bytes, set[int]] = {}
    for key, partition, _ in seen:
        partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_of_key.values()), "one key, one partition"
    assert len({p for ps in partitions_of_key.values() for p in ps}) > 1, "keys spread over partitions"
    for key, count in per_key.items():  # each key's messages in the order they were sent
        values = [v for k, _, v in seen if k == key]
        assert values == sorted(values) and len(values) == count
    assert asyncio.run(group_lag(kafka_settings, group, [topic])) == 0
    assert asyncio.run(group_lag(kafka_settings, f"{group}-other", [topic])) == MESSAGES  # groups are independent


def test_the_watched_ends_are_the_true_ends_read_after_read_and_fetch_only_what_grew(
        kafka_settings: Settings, filled_topic: tuple[str, dict[bytes, int]]) -> None:
    topic, _ = filled_topic
    tps = [TopicPartition(topic, p) for p in range(4)]

    async def reads() -> tuple[list[dict[TopicPartition, int]], list[int]]:
        ends = WatchedEnds(kafka_settings)
        try:
            seen, fetched = [await ends(tps)], [ends.fetched]
            seen.append(await ends(tps))  # nothing produced since: nothing fetched
            fetched.append(ends.fetched)
            producer = KafkaProducer(acks="all", linger_ms=20, **kafka_python_kwargs(kafka_settings))
            try:
                for i in range(9):  # one key: one partition grows, by one multi-record batch
                    producer.send(topic, key=b"session-0", value=f"more-{i}".encode())
                producer.flush(timeout=30)
            finally:
                producer.close()
            seen.append(await ends(tps))
            fetched.append(ends.fetched)
            return seen, fetched
        finally:
            await ends.close()

    (first, second, third), fetched = asyncio.run(reads())
    assert sum(first.values()) == MESSAGES and first == second
    assert third == asyncio.run(end_offsets(kafka_settings, tps, strict=True))
    grown = [tp for tp in tps if third[tp] != first[tp]]
    assert len(grown) == 1 and third[grown[0]] == first[grown[0]] + 9
    nonempty = sum(1 for tp in tps if first[tp] > 0)
    assert fetched == [nonempty, nonempty, nonempty + 1]


def test_group_lag_counts_per_partition_from_the_committed_offset(
        kafka_settings: Settings, filled_topic: tuple[str, dict[bytes, int]]) -> None:
    topic, _ = filled_topic
    tps = [TopicPartition(topic, p) for p in range(4)]
    ends = asyncio.run(end_offsets(kafka_settings, tps))
    group = f"cact-test-{uuid.uuid4().hex[:8]}"

    busy = max(tps, key=lambda tp: ends[tp])
    asyncio.run(_commit(kafka_settings, group, {busy: ends[busy] // 2}))
    assert asyncio.run(group_lag(kafka_settings, group, [topic])) == MESSAGES - ends[busy] // 2
    asyncio.run(_commit(kafka_settings, group, ends))
    assert asyncio.run(group_lag(kafka_settings, group, [topic, f"cact.test.absent-{group}"])) == 0


def test_wait_until_consumed_returns_once_lag_stays_zero(
        kafka_settings: Settings, filled_topic: tuple[str, dict[bytes, int]]) -> None:
    topic, _ = filled_topic
    group = f"cact-test-{uuid.uuid4().hex[:8]}"
    _all_committed(kafka_settings, topic, group)
    polls: list[int] = []
    started = time.monotonic()
    asyncio.run(wait_until_consumed(kafka_settings, {group: [topic]}, timeout=30, settle=0.5, progress=polls.append))
    assert polls == [0, 0]  # two clean polls in a row, no more
    assert 0.5 <= time.monotonic() - started < 15


def test_wait_until_consumed_times_out_naming_the_lag_left(
        kafka_settings: Settings, filled_topic: tuple[str, dict[bytes, int]]) -> None:
    topic, _ = filled_topic
    done = f"cact-test-{uuid.uuid4().hex[:8]}"
    idle = f"cact-test-idle-{uuid.uuid4().hex[:8]}"
    _all_committed(kafka_settings, topic, done)
    polls: list[int] = []
    started = time.monotonic()
    with pytest.raises(TimeoutError) as raised:
        asyncio.run(wait_until_consumed(kafka_settings, {done: [topic], idle: [topic]}, timeout=2, settle=0.5,
                                        progress=polls.append))
    assert time.monotonic() - started < 10
    assert f"still {MESSAGES} messages" in str(raised.value) and f"{idle}: {MESSAGES}" in str(raised.value)
    assert done not in str(raised.value)
    assert len(polls) >= 2 and set(polls) == {MESSAGES}


@embedded_only
def test_ensure_topics_creates_what_is_missing_with_configured_partitions(own_broker: EmbeddedBroker) -> None:
    settings = own_broker.settings(Settings(topic_partitions=3))
    names = [t.name for t in topics.ALL_TOPICS]
    asyncio.run(ensure_topics(settings, topics.INPUT_TOPICS))
    assert asyncio.run(partition_counts(settings, names)) == {t.name: 3 for t in topics.INPUT_TOPICS}
    asyncio.run(ensure_topics(settings.model_copy(update={"topic_partitions": 5})))  # existing ones stay as they are
    assert asyncio.run(partition_counts(settings, names)) == {
        **{t.name: 3 for t in topics.INPUT_TOPICS}, **{t.name: 5 for t in topics.OUTPUT_TOPICS}}


@embedded_only
def test_ensure_topics_refuses_schedule_and_lab_with_different_partition_counts(own_broker: EmbeddedBroker) -> None:
    settings = own_broker.settings(Settings(topic_partitions=2))
    asyncio.run(ensure_topics(settings, [topics.SCHEDULE]))
    with pytest.raises(RuntimeError, match="same partition count") as raised:
        asyncio.run(ensure_topics(settings.model_copy(update={"topic_partitions": 4}), [topics.LAB]))
    assert topics.SCHEDULE.name in str(raised.value) and topics.LAB.name in str(raised.value)


@embedded_only
def test_stop_leaves_no_process_and_frees_the_port(tmp_path: Path) -> None:
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    assert broker.proc is not None and broker.running
    pid = broker.proc.pid
    assert _listening(broker.host, broker.port)
    assert asyncio.run(partition_counts(broker.settings(Settings()), ["nothing-here"])) == {}
    broker.stop()
    assert not _alive(pid)
    assert not _listening(broker.host, broker.port)
    broker.stop()  # idempotent
    assert not broker.running


@embedded_only
def test_context_manager_stops_on_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError), EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "b.log") as broker:
        assert broker.proc is not None
        pid = broker.proc.pid
        raise KeyError("boom")
    assert not _alive(pid) and broker.proc is None
    assert (tmp_path / "b.log").stat().st_size > 0  # Tansu's output went to the log


@embedded_only
def test_start_on_a_busy_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="already in use"):
            EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker.log").start()


@embedded_only
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_broker_does_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    """atexit does not run on SIGKILL; the kernel's parent-death signal still stops the broker."""
    code = ("import sys, time\nfrom streams.broker import EmbeddedBroker\n"
            "b = EmbeddedBroker().start()\nprint(b.proc.pid, b.port, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid, port = map(int, parent.stdout.readline().split())
        assert _alive(pid)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid) and not _listening("127.0.0.1", port)
