"""A day sent as EventBatch messages through the real worker: the same results as event by event, and a bad
event inside a batch dead-lettered with its index while the batch's other events still count."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import create_engine, select

from cact.processes import WorkerProcess, consumer_groups
from producers.batching import batch_events, envelope
from producers.simulator import SimConfig, build_day
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from sinks import models as m
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed


async def send(settings: Settings, messages: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(acks="all", max_request_size=4 << 20, **client_kwargs(settings))
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, key=key.encode(), value=value)
    finally:
        await producer.stop()


@pytest.mark.broker
@pytest.mark.postgres
def test_a_day_in_event_batches_is_scored_and_bad_events_are_dead_lettered_with_their_index(
        pipeline_kafka: Settings, pg_database: str, tmp_path: Path, scorer: Any) -> None:
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database})
    day = build_day(SimConfig(participants=60, seats=30, malformed=0, seed=21), BlueprintRegistry.from_dir())
    events = [orjson.loads(e.to_bytes()) for e in day.schedule + day.lab]
    messages = list(batch_events(events, max_events=40))
    assert len(messages) < len(events) / 10

    # One more message for a real session: a duplicate of a check-in (harmless), a bad NIP, an unknown item.
    checkin = next(e for e in events if e["event_type"] == "ParticipantCheckedIn")
    session_id = checkin["payload"]["session_id"]
    bad_nip = {**checkin, "event_id": "00000000-0000-4000-8000-0000000000b1",
               "payload": {**checkin["payload"], "nip": "12345"}}
    sheet = next(e for e in events
                 if e["event_type"] == "SectionSubmitted" and e["payload"]["session_id"] == session_id)
    bad_item = {**sheet, "event_id": "00000000-0000-4000-8000-0000000000b2",
                "payload": {**sheet["payload"], "answers": [{"item_id": "NO-SUCH-ITEM", "option": "A"}]}}
    mixed = envelope(session_id, [checkin, bad_nip, bad_item], lab_id=checkin["lab_id"],
                     occurred_at=checkin["occurred_at"])

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        asyncio.run(send(settings, messages + [("cact.lab.v1", session_id, mixed)]))
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))
        assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
        metrics = httpx.get(f"http://127.0.0.1:{settings.worker_web_port}/metrics", timeout=10).text
    finally:
        worker.stop()

    store = ResultsStore(pg_database)
    summary = store.summary()
    assert summary["participants_scheduled"] == day.scheduled
    assert summary["participants_checked_in"] == day.attended
    raw_bps = {p.stem: json.loads(p.read_text()) for p in SAMPLE_DIR.glob("*.json")}
    results = {(r["session_id"], r["nip"]): r for r in store.current_results()}
    attended = {k: t for k, t in day.truth.items() if t.attended}
    assert results.keys() == attended.keys()
    for key, t in attended.items():
        assert scorer.observed(results[key]) == scorer.reference(raw_bps[t.blueprint_id], t), key
        assert results[key]["result_version"] == 1  # the duplicate check-in changed nothing

    assert summary["deadletters_by_reason"] == {"invalid_nip": 1}  # one per source message: the first reason
    engine = create_engine(pg_database)
    with engine.connect() as conn:
        (detail,) = conn.execute(select(m.DeadLetter.detail)).scalars().all()
    engine.dispose()
    assert detail.startswith("events[1]: ") and "; events[2]: " in detail and "NO-SUCH-ITEM" in detail
    assert 'cact_deadletters_total{reason="invalid_nip",source_topic="cact.lab.v1"} 1.0' in metrics
    assert 'cact_deadletters_total{reason="unknown_item",source_topic="cact.lab.v1"} 1.0' in metrics
