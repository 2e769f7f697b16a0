"""Attendance on the real pipeline: no-shows, susulan, a silent lab, late and out-of-order check-ins."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, build_day
from schemas.blueprint import BlueprintRegistry
from schemas.settings import Settings, settings_env
from sinks.attendance_view import attendance_overview
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed

OPERATOR_TOKEN = "attendance-day-operator-token-3c7d"


@pytest.mark.broker
@pytest.mark.postgres
def test_attendance_day_matches_ground_truth(pipeline_kafka: Settings, pg_database: str, tmp_path: Path) -> None:
    settings = pipeline_kafka.model_copy(update={
        "database_url": pg_database, "wall_clock_lag_seconds": 3, "window_check_seconds": 1,
        "lab_silent_after_seconds": 2, "operator_token": SecretStr(OPERATOR_TOKEN)})
    day = build_day(SimConfig(participants=300, seats=30, reschedule_share=0.4, silent_sessions=1, late_checkins=4,
                              out_of_order_share=0.1, malformed=0, seed=12), BlueprintRegistry.from_dir())
    truth = day.by_agency()
    assert 0.08 < sum(t.attended is False for t in day.truth.values()) / day.scheduled < 0.16  # ~12% miss their slot
    assert sum(r["rescheduled"] for r in truth.values()) > 0 and day.silent_sessions
    store = ResultsStore(pg_database)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    base = f"http://127.0.0.1:{settings.worker_web_port}"
    try:
        send_day(settings, day)
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=240, progress=worker.check))
        # the silent lab's window is closed by the wall clock, a few seconds after its lab fell quiet
        silent_session = next(iter(day.silent_sessions))
        deadline = time.monotonic() + 60
        while True:
            overview = attendance_overview(store, threshold=0.15, silent_after_s=2, lab_last_seen={})
            row = next((s for s in overview["sessions"] if s["session_id"] == silent_session), None)
            if row and row["closed_by_wall_clock"]:
                break
            assert time.monotonic() < deadline, "the wall-clock fallback never closed the silent session's window"
            time.sleep(1)
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=60, progress=worker.check))
        time.sleep(2.5)  # longer than lab_silent_after_seconds
        served = httpx.get(f"{base}/attendance.json", timeout=10,
                           headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}).json()
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        worker.stop()

    overview = attendance_overview(store, threshold=0.15, silent_after_s=2, lab_last_seen={})
    got = {r["agency_id"]: {k: r[k] for k in ("scheduled", "checked_in", "no_show", "rescheduled")}
           for r in overview["by_agency"]}
    assert got == truth
    for r in overview["by_agency"]:
        t = truth[r["agency_id"]]
        assert r["no_show_rate"] == round(t["no_show"] / t["scheduled"], 4)
    assert overview["overall"]["no_show"] == day.scheduled - day.attended
    assert served["by_agency"] == overview["by_agency"] and served["overall"] == overview["overall"]

    # the silent session's lab is marked silent, and only it
    silent_lab = next(s["lab_id"] for s in overview["sessions"] if s["session_id"] == silent_session)
    assert [lab["lab_id"] for lab in served["by_lab"] if lab["silent"]] == [silent_lab]

    # every participant who sat a full session was scored; the silent session's were not (no sheets arrived)
    assert store.summary()["results_in_store"] == day.scored

    # /metrics shows the rates, one family per dimension, and nothing per session
    for r in overview["by_agency"]:
        agency = r["agency_id"]
        assert f'cact_agency_no_show_ratio{{agency_id="{agency}"}} {float(r["no_show_rate"])}' in metrics
        assert f'cact_agency_participants{{agency_id="{agency}",state="no_show"}} {float(r["no_show"])}' in metrics
    assert f'cact_no_show_ratio {float(overview["overall"]["no_show_rate"])}' in metrics
    assert f'cact_lab_silent{{lab_id="{silent_lab}"}} 1.0' in metrics
    assert "session_id=" not in metrics

    # the no-show list for rescheduling, as CSV
    agency = max(truth, key=lambda a: truth[a]["no_show"])
    env = {**os.environ, **settings_env(settings)}
    proc = subprocess.run([sys.executable, "-m", "cact.cli", "attendance", "no-shows", "--agency", agency], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = {r["nip"] for r in csv.DictReader(io.StringIO(proc.stdout))}
    assert listed == {t.nip for t in day.truth.values() if t.agency_id == agency and not t.attended_anywhere}
