"""`cact rescore` on the real pipeline: a day with cross-agency susulan in and out of the rescored activity.

The worker runs with the shipped blueprints (no CACT_BLUEPRINT_DIR) and its own corrections folder; the
command installs the corrected key there, asks every session where a result of the activity was sat, and
exits 0 only once each of those results is on the new key, while results of other activities, also those
sat in the activity's own sessions, keep their version. Run from a machine whose corrections folder is not
the workers', every request is refused, and the command says so at once, naming the sessions.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, SimDay, build_day
from schemas.blueprint import SAMPLE_DIR, BlueprintRegistry
from schemas.nip import mask_nip
from schemas.settings import Settings, settings_env
from schemas.topics import CONTROL
from sinks.models import DeadLetter, Result
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed

#: A day where pemprov-aceh (two cact-full sessions of its own) has participants who sat susulan in other
#: agencies' cact-full sessions and one in a mansoskul-only session, and hosts other agencies' susulan.
DAY = SimConfig(participants=240, seats=20, malformed=0, seed=6, reschedule_share=1.0, mansoskul_only_share=0.25)
ACTIVITY = "ACT-202611-pemprov-aceh"
REFUSED_ACTIVITY = "ACT-202611-pemkab-kukar"

Current = dict[tuple[str, str], dict[str, Any]]


def current(store: ResultsStore) -> Current:
    return {(r["nip"], r["activity_id"]): r for r in store.current_results()}


def corrected(version: str, weight: float) -> dict[str, Any]:
    data = json.loads((SAMPLE_DIR / "cact-full.json").read_text())
    data["version"] = version
    item = data["sections"][0]["subtests"][0]["items"][0]
    item["options"] = {k: weight for k in item["options"]}  # every option of MSK-M1-001 earns the same
    return data


def rescore(settings: Settings, activity: str, blueprint: Path, *args: str,
            **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environ = {k: v for k, v in os.environ.items() if k != "CACT_BLUEPRINT_DIR"}
    environ.update(settings_env(settings), COLUMNS="250", **env)  # the tables' rows on one line each
    assert "CACT_BLUEPRINT_DIR" not in environ  # the shipped blueprint folder
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cact.cli", "rescore", "--activity", activity, "--blueprint",
                           str(blueprint), "--reason", "key of MSK-M1-001 corrected", "--wait-seconds", "240", *args],
                          env=environ, capture_output=True, text=True, timeout=300)
    return proc, time.monotonic() - started


@pytest.mark.broker
@pytest.mark.postgres
def test_rescore_moves_exactly_the_activitys_results_wherever_they_were_sat(
        pipeline_kafka: Settings, pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACT_BLUEPRINT_DIR", raising=False)
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database,
                                                 "blueprint_corrections_dir": tmp_path / "shared" / "corrections"})
    assert settings.blueprint_dir is None
    day: SimDay = build_day(DAY, BlueprintRegistry.from_settings(settings))
    own = {s for s, p in day.sessions.items() if p.activity_id == ACTIVITY}
    store = ResultsStore(pg_database)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        send_day(settings, day)
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=300, progress=worker.check))
        before = current(store)

        # The day is what this test is about: the activity's results sat elsewhere, others' sat in its sessions.
        mine = {k: r for k, r in before.items() if k[1] == ACTIVITY}
        on_full = {k: r for k, r in mine.items() if r["blueprint_id"] == "cact-full"}
        away = {k for k, r in on_full.items() if r["session_id"] not in own}
        guests = {k for k, r in before.items() if r["session_id"] in own and k[1] != ACTIVITY}
        other_test = {k for k, r in mine.items() if r["blueprint_id"] != "cact-full"}
        assert len(away) >= 3 and len(guests) >= 2 and len(other_test) == 1, (len(away), len(guests), other_test)
        assert all(r.get("host_activity_id") not in (None, ACTIVITY)
                   for r in mine.values() if r["session_id"] not in own)
        assert {r["result_version"] for r in before.values()} == {1}

        upload = tmp_path / "upload" / "cact-full-corrected.json"
        upload.parent.mkdir()
        upload.write_text(json.dumps(corrected("2026.2", 4)))
        sessions = sorted({r["session_id"] for r in on_full.values()})
        proc, _ = rescore(settings, ACTIVITY, upload, "--dry-run")
        assert proc.returncode == 0 and not settings.blueprint_corrections_dir.exists(), proc.stderr[-3000:]
        assert all(f"│ {s} " in proc.stdout for s in sessions) and current(store) == before

        proc, _ = rescore(settings, ACTIVITY, upload)
        assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
        assert (settings.blueprint_corrections_dir / "cact-full-2026.2.json").read_text() == upload.read_text()
        assert sorted(p.name for p in SAMPLE_DIR.glob("*.json")) == ["cact-full.json", "mansoskul-only.json"]
        assert (f"asked the workers to rescore {len(on_full)} results of {ACTIVITY} in {len(sessions)} sessions"
                in proc.stderr)
        assert f"{len(on_full)} of {len(on_full)}" in proc.stdout and "mansoskul-only: 1" in proc.stdout

        after = current(store)
        assert after.keys() == before.keys()
        for key, r in after.items():
            if key in on_full:  # moved, and still filed at home, with where it was sat kept
                assert (r["result_version"], r["blueprint_version"]) == (2, "2026.2"), key
                assert r["session_id"] == before[key]["session_id"] and r["agency_id"] == before[key]["agency_id"]
            else:  # every other result, including the guests sat in the activity's own sessions
                assert r == before[key], key
        with Session(store.engine) as s:
            kept = s.scalar(select(func.count()).select_from(Result).where(
                Result.activity_id == ACTIVITY, Result.status == "superseded", Result.blueprint_version == "2026.1"))
        assert kept == len(on_full)
        bystanders = {k for k, r in before.items() if r["session_id"] in sessions and k[1] != ACTIVITY}
        assert guests <= bystanders and f"{len(bystanders)} untouched" in proc.stdout

        # A command run where the workers' corrections folder is not: every request refused, said at once.
        other = {k: r for k, r in after.items() if k[1] == REFUSED_ACTIVITY and r["blueprint_id"] == "cact-full"}
        refused_sessions = sorted({r["session_id"] for r in other.values()})
        assert other and len(refused_sessions) >= 2
        upload3 = tmp_path / "upload" / "cact-full-2026.3.json"
        upload3.write_text(json.dumps(corrected("2026.3", 3)))
        proc, seconds = rescore(settings, REFUSED_ACTIVITY, upload3,
                                CACT_BLUEPRINT_CORRECTIONS_DIR=str(tmp_path / "laptop" / "corrections"))
        assert proc.returncode == 1, proc.stderr[-3000:] + proc.stdout[-3000:]
        assert seconds < 60  # the refusals end the wait, not --wait-seconds 240
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"rescore of {REFUSED_ACTIVITY} incomplete: {len(other)} of {len(other)} results not "
                               f"moved to 2026.3; {len(refused_sessions)} session(s) refused (unknown_blueprint): "
                               f"{', '.join(refused_sessions)}"), last
        assert "version 2026.3 is not loaded" in proc.stdout and "session refused (unknown_blueprint)" in proc.stdout
        nip = next(iter(other))[0]
        assert mask_nip(nip) in proc.stdout and nip not in proc.stdout + proc.stderr
        assert current(store) == after  # nothing moved
        with Session(store.engine) as s:
            letters = s.scalar(select(func.count()).select_from(DeadLetter).where(
                DeadLetter.source_topic == CONTROL.name, DeadLetter.reason == "unknown_blueprint"))
        assert letters == len(refused_sessions)
    finally:
        worker.stop()
