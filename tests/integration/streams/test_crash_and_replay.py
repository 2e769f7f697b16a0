"""A killed worker loses nothing, and replaying the topics from the start changes no row (issue 5 a, b)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, build_day
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.settings import Settings
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed


@pytest.mark.broker
@pytest.mark.postgres
def test_kill_9_then_replay(pipeline_kafka: Settings, pg_database: str, tmp_path: Path, scorer: Any,
                            store_cases: Any) -> None:
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database})
    day = build_day(SimConfig(participants=400, seats=40, malformed=2, seed=99), BlueprintRegistry.from_dir())
    bps = {p.stem: json.loads(p.read_text()) for p in SAMPLE_DIR.glob("*.json")}
    store = ResultsStore(pg_database)

    worker = WorkerProcess(settings, tmp_path / "worker-1.log")
    # the day spread over ~20 s, as labs send it, so that the kill below lands mid-run
    rate = (len(day.schedule) + len(day.lab) + len(day.malformed)) / 20.0
    sender = threading.Thread(target=send_day, args=(settings, day), kwargs={"rate": rate})
    sender.start()
    # kill -9 as soon as the first results are committed, while the lab events are still arriving: the lab
    # events are in time order, so results appear session by session and the worker is part-way through the day
    deadline = time.monotonic() + 120
    while store_has_no_results(store):
        assert time.monotonic() < deadline, "the worker never got going"
        time.sleep(0.02)
    worker.kill()
    assert sender.is_alive(), "the day was sent completely before the kill: not mid-run"
    sender.join()
    partial = store.summary()["results_in_store"]
    assert 0 < partial < day.attended, "killed mid-run"

    worker = WorkerProcess(settings, tmp_path / "worker-2.log")
    try:
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=240, progress=worker.check))
    finally:
        worker.stop()

    # (a) every participant has exactly one current result, equal to an independent recomputation
    results = store.current_results()
    assert len(results) == len({(r["nip"], r["activity_id"]) for r in results}) == day.attended
    for r in results:
        t = day.truth[(r["session_id"], r["nip"])]
        assert scorer.observed(r) == scorer.reference(bps[t.blueprint_id], t)
        assert r["result_version"] == 1  # the crash made no spurious second version
    assert store.summary()["deadletters"] == 2
    before = store_cases.snapshot(store)

    # (b) a new worker with empty state and a new sink group replays every topic from the start
    replay = settings.model_copy(update={"app_id": "cact-replay", "data_dir": tmp_path / "replay"})
    worker = WorkerProcess(replay, tmp_path / "replay.log")
    try:
        asyncio.run(wait_until_consumed(replay, consumer_groups(replay), timeout=240, progress=worker.check))
    finally:
        worker.stop()
    after = store_cases.snapshot(store)
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert after == before


def store_has_no_results(store: ResultsStore) -> bool:
    try:
        return store.summary()["results_in_store"] == 0
    except Exception:  # the worker has not created the schema yet
        return True
