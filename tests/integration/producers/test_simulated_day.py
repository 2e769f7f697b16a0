"""Issue 6: a simulated day with every fault injected goes through the real pipeline (embedded broker, worker
process, PostgreSQL) and the store matches the ground truth read back from its file.

``make test`` runs a day of 2,000 participants, with every fault; the issue's day of 5,000 is ``long``
(``make soak``): the same checks, two minutes of a test run that has to stay well under thirty."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.orm import Session

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import DUPLICATE, MALFORMED, SPOOLED, send_day
from producers.simulator import SimConfig, build_day
from producers.truth import GroundTruth
from schemas import events as ev
from schemas import topics
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.settings import Settings
from sinks.models import Attendance, DeadLetter
from sinks.store import ResultsStore
from streams.kafka import end_offsets, wait_until_consumed


def config(participants: int) -> SimConfig:
    return SimConfig(
        participants=participants, seats=40, reschedule_share=0.3, malformed=8, seed=2024,
        offline_labs=("bkn-pusat-jakarta",), offline_minutes=45,
        clock_skew={"kanreg-iv-makassar": 240.0, "kanreg-ix-jayapura": -180.0}, duplicate_share=0.02)


@pytest.mark.parametrize("participants", [2000, pytest.param(5000, marks=pytest.mark.long)])
@pytest.mark.broker
@pytest.mark.postgres
def test_a_day_with_faults_matches_the_ground_truth(participants: int, pipeline_kafka: Settings, pg_database: str,
                                                   tmp_path: Path, scorer: Any) -> None:
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database})
    timings: dict[str, float] = {}
    started = time.monotonic()
    day = build_day(config(participants), BlueprintRegistry.from_dir())
    day.write_truth(tmp_path / "truth.json")
    truth = GroundTruth.load(tmp_path / "truth.json")  # the test reads the same file `cact simulate --truth` writes
    timings["build"] = time.monotonic() - started

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        started = time.monotonic()
        sent = send_day(settings, day)
        timings["send"] = time.monotonic() - started
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=600, progress=worker.check))
        timings["pipeline"] = time.monotonic() - started
        assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
        offsets = asyncio.run(end_offsets(settings, [TopicPartition(t.name, n) for t in (topics.SCHEDULE, topics.LAB)
                                                     for n in range(settings.topic_partitions)]))
    finally:
        worker.stop()
    print(f"\n{participants:,}-participant day: {sum(sent.values())} messages; seconds {timings}")

    # every fault really reached the broker: held-back events, resends, malformed messages
    assert sent[SPOOLED] > participants // 50 and sent[DUPLICATE] > participants // 5 and sent[MALFORMED] == 8
    # beside what was sent, the input topics hold the susulan arrivals the worker re-keyed (at least once each)
    moves = [e for e in day.schedule if isinstance(e, ev.ParticipantRescheduled)]
    assert sum(offsets.values()) - sum(sent.values()) >= len(moves) > 50

    store = ResultsStore(pg_database)
    with Session(store.engine) as s:
        attendance = {(r.session_id, r.nip): r for r in s.scalars(select(Attendance))}
        deadletters = list(s.scalars(select(DeadLetter)))

    # attendance: every row's final status, and the late flag as each lab's (skewed) clock saw it
    assert {k: r.status for k, r in attendance.items()} == truth.attendance()
    assert {k: r.late for k, r in attendance.items() if r.status == "checked_in"} == truth.late()
    assert 0.10 < sum(not t.attended for t in truth.participants.values()) / truth.scheduled < 0.14  # ~12% miss

    # results: one per attendee, equal to an independent recomputation; no-shows have none
    results = {(r["session_id"], r["nip"]): r for r in store.current_results()}
    expected = truth.results()
    assert results.keys() == expected.keys() and len(results) == truth.attended
    bps = {p.stem: json.loads(p.read_text()) for p in SAMPLE_DIR.glob("*.json")}
    for key, t in expected.items():
        assert scorer.observed(results[key]) == scorer.reference(bps[t.blueprint_id], t), key
        assert results[key]["result_version"] == 1, key  # duplicates and late spools made no second version
    assert {r["blueprint_id"] for r in results.values()} == {"cact-full", "mansoskul-only"}

    # dead letters: exactly the malformed messages, each for its reason
    assert Counter((d.source_topic, d.reason) for d in deadletters) == Counter(
        (d.topic, d.reason) for d in truth.deadletters)
    assert len(deadletters) == 8 and len({d.reason for d in deadletters}) == 8
