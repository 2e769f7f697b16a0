"""The spool across a killed lab process: a real ``kill -9`` loses neither spooled events nor buffered answers.

Process tests (a child Python is killed with SIGKILL), so they live here; the spool's other rules are unit
tests (tests/unit/producers/test_spool.py). No broker: the emitter points at a port nothing listens on.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from producers.emitter import LabEmitter
from producers.spool import Spool, spool_status
from schemas.settings import Settings
from streams.broker import free_port

NIP_A = "199001012015031001"
REPO = Path(__file__).resolve().parents[3]


def events(path: Path) -> list[dict[str, Any]]:
    """Every spooled event, oldest first, decoded."""
    with sqlite3.connect(path) as db:
        return [{"seq": s, "status": st, **json.loads(v)}
                for s, st, v in db.execute("SELECT seq, status, value FROM events ORDER BY seq")]


def test_rows_of_a_killed_process_are_adopted(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    script = textwrap.dedent(f"""
        import os, signal
        from producers.spool import NewRow, Spool
        spool = Spool({str(path)!r}, "k:9092")
        spool.append([NewRow("cact.lab.v1", b"S-1", b'{{"n": %d}}' % i, None, "x") for i in range(3)])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    survivor = Spool(path, "k:9092")  # the dead owner's heartbeat is fresh, but its pid is gone
    assert survivor.adopt() == 3
    assert [r.value for r in survivor.pending()] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    survivor.close()


def test_buffered_autosaves_survive_a_killed_lab_process(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    port = free_port()
    script = textwrap.dedent(f"""
        import os, signal
        from datetime import datetime, timezone, timedelta
        from producers.emitter import LabEmitter
        from schemas.settings import Settings
        s = Settings(kafka_bootstrap_servers="127.0.0.1:{port}", lab_spool_path={str(path)!r}, lab_id="kanreg-v",
                     lab_autosave_seconds=600)
        e = LabEmitter(s, bootstrap_timeout_ms=200)
        at = datetime(2026, 11, 3, 9, 0, tzinfo=timezone(timedelta(hours=7)))
        e.autosave("S-1", "{NIP_A}", "mansoskul", "MSK-1", "A", at)
        e.autosave("S-1", "{NIP_A}", "mansoskul", "MSK-2", "B", at)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert events(path) == [] and spool_status(path)["autosave_buffered"] == 2
    e = LabEmitter(Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", lab_spool_path=path),
                   bootstrap_timeout_ms=200)
    try:
        [saved] = events(path)
        assert saved["payload"]["answers"] == [{"item_id": "MSK-1", "option": "A"}, {"item_id": "MSK-2", "option": "B"}]
        assert saved["status"] == "pending" and spool_status(path)["autosave_buffered"] == 0
    finally:
        e.close(timeout=0)
