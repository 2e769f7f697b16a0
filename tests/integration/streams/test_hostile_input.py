"""Hostile input interleaved with a real exam day (issue 12): every hostile record the broker took ends as the
dead letter it must be (0 vanished), the day still equals its ground truth, nothing exits, memory stays
bounded. The same run at 100,000 records is part of ``make soak``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faults.hostile import DAY_SAFE_KINDS
from bench.faults.hostile_day import run_hostile_day

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
#: Stated bound for this size; the worker reads up to 256 messages ahead and some records are ~1 MB.
WORKER_PEAK_RSS_MB = 600


def test_hostile_records_interleaved_with_a_day(tmp_path: Path, pg_database: str) -> None:
    report = run_hostile_day(tmp_path / "day", pg_database, participants=150, hostile=400, seed=5,
                             settings_overrides={"unscheduled_sessions_max": 2, "broker_check_seconds": 1.0})
    assert report.ok, report.explain()
    assert report.kinds == len(DAY_SAFE_KINDS) >= 20
    assert report.broker_refused < 40, "most hostile records must reach the worker to prove anything"
    assert report.outcomes["dead_lettered"] > 300
    assert report.outcomes["state_limit"] > 0, "the cap on unscheduled sessions was reached and held"
    # the day's sessions, at most 2 unscheduled ones per partition, and each partition's list of them
    sessions = report.state_keys.get("sessions")
    assert sessions is not None and report.sessions < sessions <= report.sessions + 2 * 4 + 4, report.state_keys
    assert report.worker_peak_rss_mb < WORKER_PEAK_RSS_MB, report.worker_peak_rss_mb
