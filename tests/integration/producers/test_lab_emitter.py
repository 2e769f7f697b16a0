"""The lab emitter against a real broker: nothing lost to a killed lab process or a stopped broker, in order.

Events are read back with aiokafka (no consumer group), per partition, so "in order" is checked the way the
worker sees it: a session's events in one partition, in the order the lab emitted them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from producers.emitter import DeliveryTimeout, LabEmitter
from producers.simulator import SimConfig, build_day
from producers.spool import spool_status
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.events import Event
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import ensure_topics

pytestmark = pytest.mark.broker
REPO = Path(__file__).resolve().parents[3]
INPUTS = [t.name for t in topics.INPUT_TOPICS]


def exam_day(participants: int = 12, seed: int = 7) -> list[Event]:
    day = build_day(SimConfig(participants=participants, seed=seed), BlueprintRegistry.from_dir(None))
    return [*day.schedule, *day.lab]


def read_back(settings: Settings, expected: int, *, timeout: float = 60) -> list[tuple[str, int, bytes]]:
    """(topic, partition, value) of every record on the input topics, in partition order."""

    async def run() -> list[tuple[str, int, bytes]]:
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in INPUTS for p in sorted(consumer.partitions_for_topic(t) or ())]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: list[tuple[str, int, bytes]] = []
            deadline = time.monotonic() + timeout
            quiet_until = None
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=300)
                for tp, records in batches.items():
                    out.extend((tp.topic, tp.partition, r.value) for r in records)
                if len(out) >= expected:  # then a moment more, to catch duplicates
                    quiet_until = quiet_until or time.monotonic() + 1.5
                    if time.monotonic() > quiet_until:
                        break
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def assert_delivered_in_order(records: list[tuple[str, int, bytes]], sent: list[Event]) -> None:
    """Every event arrived; per session (topic and key) in the emitted order; any duplicate is an identical resend."""
    by_id: dict[str, bytes] = {}
    streams: dict[tuple[str, int], list[str]] = defaultdict(list)
    for topic, partition, value in records:
        event_id = json.loads(value)["event_id"]
        assert by_id.setdefault(event_id, value) == value, "a duplicate must be the same event"
        if event_id not in streams[(topic, partition)]:
            streams[(topic, partition)].append(event_id)
    assert set(by_id) == {str(e.event_id) for e in sent}
    position = {eid: i for stream in streams.values() for i, eid in enumerate(stream)}
    per_session: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in sent:
        per_session[(e.topic.name, e.key())].append(e)
    for session, emitted in per_session.items():
        seen = [position[str(e.event_id)] for e in emitted]
        assert seen == sorted(seen), f"{session}: arrived out of order"


def test_events_spooled_by_a_killed_emitter_are_delivered_in_order_by_the_next(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet: the lab's broker is down
    spool = tmp_path / "lab-spool.db"
    day = exam_day()
    leftovers, later = day[:-40], day[-40:]
    events_file = tmp_path / "events.jsonl"
    events_file.write_bytes(b"\n".join(e.to_bytes() for e in leftovers))
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from producers.emitter import LabEmitter
        from schemas.settings import Settings
        emitter = LabEmitter(Settings(kafka_bootstrap_servers="127.0.0.1:{port}", lab_spool_path={str(spool)!r}))
        for line in Path({str(events_file)!r}).read_bytes().splitlines():
            emitter.send(line)
        print("spooled", flush=True)
        time.sleep(600)
    """)
    lab = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        assert lab.stdout is not None and lab.stdout.readline().strip() == b"spooled"
    finally:
        os.killpg(lab.pid, signal.SIGKILL)  # kill -9 of the lab process, mid-outage
        lab.wait()
    assert spool_status(spool)["pending"] == len(leftovers)

    with EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker.log") as broker:
        settings = broker.settings(Settings(kafka_bootstrap_servers=broker.bootstrap, lab_spool_path=spool))
        asyncio.run(ensure_topics(settings))
        with LabEmitter(settings) as emitter:
            assert emitter.pending() == len(leftovers)  # the dead emitter's events, adopted
            for e in later:  # new events of the same sessions must come after the leftovers
                emitter.send(e)
            emitter.flush(timeout=120)
        status = spool_status(spool)
        assert (status["pending"], status["failed"], status["sent"]) == (0, 0, len(day))
        assert_delivered_in_order(read_back(settings, len(day)), day)


def test_events_sent_while_the_broker_is_down_follow_in_order_when_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    spool = tmp_path / "lab-spool.db"
    day = exam_day(seed=11)
    before, during = day[: len(day) // 2], day[len(day) // 2:]
    first = EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker-1.log").start()
    settings = first.settings(Settings(kafka_bootstrap_servers=first.bootstrap, lab_spool_path=spool))
    emitter = LabEmitter(settings)
    try:
        asyncio.run(ensure_topics(settings))
        emitter.send_all(before)
        emitter.flush(timeout=120)
        assert_delivered_in_order(read_back(settings, len(before)), before)

        first.stop()  # memory storage: what it held is gone; the second broker starts empty
        started = time.monotonic()
        for e in during:
            emitter.send(e)
        assert time.monotonic() - started < 10, "send() must not wait for the broker"
        with pytest.raises(DeliveryTimeout):
            emitter.flush(timeout=1)
        assert spool_status(spool)["pending"] > 0

        with EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker-2.log") as second:
            asyncio.run(ensure_topics(settings))
            emitter.flush(timeout=120)
            assert emitter.pending() == 0
            records = read_back(settings, len(during))
            # Only what was not acknowledged before the stop reaches the new broker, all of it, in order.
            arrived = {json.loads(v)["event_id"] for _, _, v in records}
            assert {str(e.event_id) for e in during} <= arrived <= {str(e.event_id) for e in day}
            assert_delivered_in_order(records, [e for e in day if str(e.event_id) in arrived])
            assert second.running
    finally:
        emitter.close(timeout=5)
        first.stop()


def test_lab_send_reports_bad_lines_and_sends_the_rest(pipeline_kafka: Settings, tmp_path: Path) -> None:
    spool = tmp_path / "lab-spool.db"
    day = exam_day(participants=4, seed=3)
    good = day[:30]
    lines = [e.to_bytes() for e in good]
    bad_nip = json.loads(good[5].to_bytes())
    bad_nip["payload"]["nip"] = "199013012015031001"
    lines.insert(3, json.dumps(bad_nip).encode())  # line 4
    lines.insert(10, b'{"event_type": "SessionClosed", ')  # line 11
    lines.insert(12, b"")  # blank lines are skipped, not errors
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {**os.environ, "CACT_KAFKA_BOOTSTRAP_SERVERS": pipeline_kafka.bootstrap_servers,
           "CACT_LAB_SPOOL_PATH": str(spool), "COLUMNS": "160"}
    sent = subprocess.run([sys.executable, "-m", "cact.cli", "lab", "send", str(path), "--timeout", "120"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert sent.returncode == 1, sent.stderr
    assert "line 4: invalid_nip" in sent.stderr and "line 11: bad_json" in sent.stderr
    assert "30 events spooled" in sent.stderr and "2 invalid lines not sent" in sent.stderr
    assert_delivered_in_order(read_back(pipeline_kafka, len(good)), good)

    status = subprocess.run([sys.executable, "-m", "cact.cli", "lab", "status", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["pending"], report["sent"], report["failed"]) == (0, 30, 0)
    assert sum(g["sent"] for g in report["groups"] if g["topic"] == topics.SCHEDULE.name) == sum(
        1 for e in good if e.topic is topics.SCHEDULE)
    table = subprocess.run([sys.executable, "-m", "cact.cli", "lab", "status"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "ParticipantScheduled" in table.stdout and "total" in table.stdout
