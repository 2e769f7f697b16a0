"""A broker that lost everything it had acknowledged gets it all back from the lab spools: ``cact lab resend
--since`` replays the acknowledged events, and the fresh broker then holds exactly the records the first one
held (keys, values, and their order in each partition).

The first broker is the embedded memory broker; stopping it loses its data, as a restart does mid-day.
Delivery is at least once: on a loaded machine a produce request that timed out is retried and its records
may be in a log twice, identical. So records are compared with such repeats collapsed (first occurrence
kept, in place), and what the first broker held is checked against the events the lab sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from producers.emitter import LabEmitter
from producers.simulator import SimConfig, build_day
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
Records = dict[tuple[str, int], list[tuple[bytes | None, bytes]]]


def exam_day(participants: int, seed: int) -> list[Event]:
    day = build_day(SimConfig(participants=participants, seats=4, seed=seed), BlueprintRegistry.from_dir(None))
    return [*day.schedule, *day.lab]


def records(settings: Settings, expected: int, *, timeout: float = 60) -> Records:
    """Every record on the input topics, (key, value) per partition in offset order; waits for ``expected``,
    then a moment more, so a duplicate or a stray record would be seen too."""

    async def run() -> Records:
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(settings))
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in INPUTS for p in sorted(consumer.partitions_for_topic(t) or ())]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: Records = defaultdict(list)
            deadline = time.monotonic() + timeout
            quiet_until = None
            while time.monotonic() < deadline:
                for tp, batch in (await consumer.getmany(timeout_ms=300)).items():
                    out[(tp.topic, tp.partition)].extend((r.key, r.value) for r in batch)
                if sum(map(len, out.values())) >= expected:
                    quiet_until = quiet_until or time.monotonic() + 1.5
                    if time.monotonic() > quiet_until:
                        break
            return dict(out)
        finally:
            await consumer.stop()

    return asyncio.run(run())


def unique(held: Records) -> Records:
    """Each partition's records with identical repeats (a retried request) dropped: the first one stays in place."""
    out: Records = {}
    for tp, recs in held.items():
        seen: set[tuple[bytes | None, bytes]] = set()
        out[tp] = [r for r in recs if not (r in seen or seen.add(r))]
    return out


def resend(settings: Settings, spool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CACT_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "CACT_LAB_SPOOL_PATH": str(spool), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cact.cli", "lab", "resend", *args, "--timeout", "120"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def send_day(settings: Settings, day: list[Event]) -> Records:
    asyncio.run(ensure_topics(settings))
    with LabEmitter(settings) as emitter:
        emitter.send_all(day)
        emitter.flush(timeout=120)
    held = unique(records(settings, len(day)))
    assert sorted(v for recs in held.values() for _, v in recs) == sorted(e.to_bytes() for e in day)
    position = {e.to_bytes(): i for i, e in enumerate(day)}
    for recs in held.values():  # each partition in the order the lab sent its events
        assert [position[v] for _, v in recs] == sorted(position[v] for _, v in recs)
        assert all(k == json.loads(v)["payload"].get("session_id",
                                                     json.loads(v)["payload"].get("from_session_id")).encode()
                   for k, v in recs)
    return held


def test_resend_since_restores_a_restarted_memory_broker_exactly(tmp_path: Path) -> None:
    spool = tmp_path / "lab-spool.db"
    port = free_port()
    day = exam_day(participants=10, seed=21)
    started = datetime.now(UTC).astimezone().replace(microsecond=0)
    with EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker-1.log") as first:
        settings = first.settings(Settings(kafka_bootstrap_servers=first.bootstrap, lab_spool_path=spool))
        held = send_day(settings, day)
    assert len(held) > 2  # several partitions, so "order per partition" means something

    with EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker-2.log"):  # same address, nothing in it
        asyncio.run(ensure_topics(settings))
        assert records(settings, 0, timeout=3) == {}
        done = resend(settings, spool, "--since", started.isoformat())
        assert done.returncode == 0, done.stderr
        flat = " ".join(done.stderr.split())
        assert (f"{len(day)} acknowledged events sent from" in flat
                and f"all {len(day)} resent events acknowledged" in flat)
        assert unique(records(settings, len(day))) == held

        status = subprocess.run([sys.executable, "-m", "cact.cli", "lab", "status", "--json", "--spool", str(spool)],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
        report = json.loads(status.stdout)
        assert (report["pending"], report["sent"], report["resendable"]) == (0, len(day), len(day))


def test_resend_from_a_lost_cluster_to_a_new_address_moves_the_same_records(tmp_path: Path) -> None:
    spool = tmp_path / "lab-spool.db"
    day = exam_day(participants=4, seed=5)
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker-old.log") as old:
        old_settings = old.settings(Settings(kafka_bootstrap_servers=old.bootstrap, lab_spool_path=spool))
        held = send_day(old_settings, day)
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker-new.log") as new:
        settings = new.settings(Settings(kafka_bootstrap_servers=new.bootstrap, lab_spool_path=spool))
        asyncio.run(ensure_topics(settings))
        refused = resend(settings, spool, "--since", "-1h")  # another cluster's events never move on their own
        assert refused.returncode == 0 and f"--from-destination {old.bootstrap}" in " ".join(refused.stderr.split())
        assert records(settings, 0, timeout=3) == {}
        moved = resend(settings, spool, "--since", "-1h", "--from-destination", old.bootstrap)
        assert moved.returncode == 0, moved.stderr
        assert unique(records(settings, len(day))) == held
