"""The walking skeleton for real: simulated lab events → broker → Faust worker → PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, build_day
from schemas.blueprint import BlueprintRegistry
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed


@pytest.mark.broker
@pytest.mark.postgres
def test_worker_scores_tracks_attendance_and_dead_letters(
        pipeline_kafka: Settings, pg_database: str, tmp_path: Path) -> None:
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database})
    day = build_day(SimConfig(participants=90, seats=30, malformed=3, seed=11), BlueprintRegistry.from_dir())
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        send_day(settings, day)
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))
        assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
        metrics = httpx.get(f"http://127.0.0.1:{settings.worker_web_port}/metrics", timeout=10).text
    finally:
        worker.stop()

    store = ResultsStore(settings.database_url)
    summary = store.summary()
    assert summary["participants_scheduled"] == day.scheduled
    assert summary["participants_checked_in"] == day.attended
    assert summary["no_shows"] == day.scheduled - day.attended > 0
    assert summary["results_in_store"] == day.attended
    assert summary["deadletters_by_reason"] == {"bad_json": 1, "invalid_nip": 1, "unknown_event_type": 1}

    results = {(r["session_id"], r["nip"]) for r in store.current_results()}
    assert results == {k for k, t in day.truth.items() if t.attended}
    assert 'cact_deadletters_total{reason="bad_json",source_topic="cact.lab.v1"} 1.0' in metrics
    assert "cact_events_in_total" in metrics


@pytest.mark.broker
@pytest.mark.postgres
def test_sink_in_its_own_process(pipeline_kafka: Settings, pg_database: str, tmp_path: Path) -> None:
    """`cact sink` beside a worker that does not sink: the same store, and it stops cleanly on SIGTERM."""
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database, "sink_in_worker": False})
    day = build_day(SimConfig(participants=60, seats=30, malformed=1, seed=5), BlueprintRegistry.from_dir())
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    log = (tmp_path / "sink.log").open("ab")
    sink = subprocess.Popen([sys.executable, "-m", "cact.cli", "sink"], env={**os.environ, **settings_env(settings)},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        send_day(settings, day)
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))
        assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
    finally:
        worker.stop()
        sink.terminate()
        assert sink.wait(30) == 0
        log.close()
    summary = ResultsStore(pg_database).summary()
    assert (summary["participants_scheduled"], summary["results_in_store"], summary["deadletters"]) == (
        day.scheduled, day.attended, 1)


@pytest.mark.broker
def test_cact_demo_json_agrees_with_the_simulation(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACT_", "KAFKA_"))}
    proc = subprocess.run([sys.executable, "-m", "cact.cli", "demo", "--json", "--participants", "60",
                           "--workdir", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    for key in ("participants_scheduled", "participants_checked_in", "no_show_rate", "participants_scored",
                "results_in_store", "deadletters"):
        assert key in summary
    assert summary["mismatches"] == []
    assert summary["participants_scheduled"] == 60
    assert summary["participants_scored"] == summary["participants_checked_in"] == summary["results_in_store"]
    # every result went through the outbox to the SI ASN emulator, saved there exactly once
    assert summary["results_pushed_to_siasn"] == summary["siasn_records_saved"] == summary["participants_scored"]
    assert (summary["siasn_outbox"]["pending"], summary["siasn_outbox"]["rejected"]) == (0, 0)
    assert 0 < summary["no_show_rate"] < 0.3
