"""Scoring on the real pipeline: 500 participants, an independent recomputation, replays and a rescore."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, SimDay, build_day
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed

# ---- the pipeline ---------------------------------------------------------------------------------------

def run_until_done(settings: Settings, worker: WorkerProcess) -> None:
    asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=300, progress=worker.check))


@pytest.fixture
def blueprint_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "blueprints"
    shutil.copytree(SAMPLE_DIR, folder)
    return folder


@pytest.mark.broker
@pytest.mark.postgres
def test_500_participants_scored_replayed_and_rescored(pipeline_kafka: Settings, pg_database: str, tmp_path: Path,
                                                       blueprint_dir: Path, scorer: Any) -> None:
    reference, observed = scorer.reference, scorer.observed
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database, "blueprint_dir": blueprint_dir,
                                                 "blueprint_corrections_dir": tmp_path / "corrections"})
    day: SimDay = build_day(SimConfig(participants=500, seats=40, malformed=0, seed=500, mansoskul_only_share=0.3),
                            BlueprintRegistry.from_dir(blueprint_dir))
    raw_bps = {p.stem: json.loads(p.read_text()) for p in blueprint_dir.glob("*.json")}
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    store = ResultsStore(pg_database)
    try:
        send_day(settings, day)
        run_until_done(settings, worker)

        # 1. every result equals the independent recomputation from the submitted sheets
        results = {(r["session_id"], r["nip"]): r for r in store.current_results()}
        attended = {k: t for k, t in day.truth.items() if t.attended}
        assert results.keys() == attended.keys()
        for key, t in attended.items():
            assert observed(results[key]) == reference(raw_bps[t.blueprint_id], t), key
            assert results[key]["result_version"] == 1
        assert any(r["flags"] == ["timed_out"] for r in results.values())
        assert {r["blueprint_id"] for r in results.values()} == {"cact-full", "mansoskul-only"}

        # 2. replaying the same events (same event ids) changes nothing
        send_day(settings, day)
        run_until_done(settings, worker)
        assert {(r["session_id"], r["nip"]): r for r in store.current_results()} == results
    finally:
        worker.stop()

    # 3. a worker with empty state replaying the topics from the start produces identical results
    fresh_db = pg_database + "_replay"
    from sqlalchemy import create_engine, text
    admin = create_engine(pg_database.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{fresh_db.rsplit("/", 1)[1]}"'))
    try:
        replay = settings.model_copy(update={"app_id": "cact-replay", "database_url": fresh_db,
                                             "data_dir": tmp_path / "replay"})
        worker2 = WorkerProcess(replay, tmp_path / "replay.log")
        try:
            run_until_done(replay, worker2)
        finally:
            worker2.stop()
        replayed = {(r["session_id"], r["nip"]): r for r in ResultsStore(fresh_db).current_results()}
        assert replayed == results
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{fresh_db.rsplit("/", 1)[1]}" WITH (FORCE)'))

    # 4. a corrected key: `cact rescore` gives every result of one activity a new version, keeps the old one
    activity = sorted({t.activity_id for t in attended.values() if t.blueprint_id == "cact-full"})[0]
    fixed = raw_bps["cact-full"] | {"version": "2026.2"}
    item = fixed["sections"][0]["subtests"][0]["items"][0]
    item["options"] = {k: 4 for k in item["options"]}  # every option of MSK-M1-001 now earns full marks
    corrected = tmp_path / "cact-full-2026.2.json"
    corrected.write_text(json.dumps(fixed))
    worker = WorkerProcess(settings, tmp_path / "worker-rescore.log")
    try:
        env = {**os.environ, **settings_env(settings)}
        proc = subprocess.run([sys.executable, "-m", "cact.cli", "rescore", "--activity", activity, "--blueprint",
                               str(corrected), "--wait-seconds", "240"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:] + (tmp_path / "worker-rescore.log").read_text()[-2000:]
    finally:
        worker.stop()
    rescored = {(r["session_id"], r["nip"]): r for r in store.current_results() if r["activity_id"] == activity}
    assert rescored and all(r["result_version"] == 2 and r["blueprint_version"] == "2026.2" for r in rescored.values())
    for key, r in rescored.items():
        t = attended[key]
        assert observed(r) == reference(fixed, t)
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from sinks.models import Result
    with Session(store.engine) as s:
        old = s.scalar(select(func.count()).select_from(Result).where(Result.activity_id == activity,
                                                                   Result.status == "superseded"))
    assert old == len(rescored)
