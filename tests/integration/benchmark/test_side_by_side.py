"""``make bench`` end to end at a small size: the project and both peers on one generated day in one run,
every peer's store row for row as the project's, every figure the goals are judged on present
(issue 18; the figures themselves are for ``make bench`` at full size, not for a timed test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.sidebyside import PEERS

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.long]  # run by `make soak`


def test_the_project_and_both_peers_store_identical_rows(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    run = subprocess.run([sys.executable, "-m", "bench.run", "--participants", "150", "--paced-rate", "40",
                          "--paced-seconds", "2", "--no-doc", "--output", str(out)],
                         capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    side = result["side_by_side"]
    assert set(side) == {"project", *PEERS}
    assert set(side["project"]["cpu_ms_per_participant"]) == {"worker", "sink"}
    for name, m in side.items():
        assert m["total_cpu_ms_per_participant"] > 0, name
        assert m["participants_per_s"] is None or m["participants_per_s"] > 0, name  # None: all in one poll
        assert m["total_idle_cpu_ms_per_s"] >= 0 and all(v > 30 for v in m["peak_rss_mb"].values()), name
    assert {n: v["identical"] for n, v in result["identical_rows"].items()} == dict.fromkeys(PEERS, True), \
        result["identical_rows"]
    assert all(v["rows"] > 150 for v in result["identical_rows"].values())
    assert result["raw_consume_cpu_ms_per_participant"] > 0
    goals = result["goals"]
    assert goals["every peer stored identical rows"] is True
    assert goals["worker peak RSS <= 300 MB for 10,000 participants"] is None  # 150 participants cannot say
    assert goals["p99 latency <= 500 ms at 200 participants/s"] is None  # paced at 40/s
    assert "beside the peers" in run.stdout
