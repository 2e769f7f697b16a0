"""A malformed blueprint stops the worker at start-up with a message naming the item and the field.

A process test: ``python -m cact.cli worker`` must exit 2 before it reaches a broker (the blueprint rules
themselves are unit-tested in tests/unit/schemas/test_blueprint_loading.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from schemas.blueprint import SAMPLE_DIR


def sample() -> dict:
    return json.loads((SAMPLE_DIR / "cact-full.json").read_text())


def test_worker_refuses_to_start_on_a_bad_blueprint(tmp_path: Path) -> None:
    data = sample()
    del data["sections"][0]["subtests"][0]["items"][0]["competency"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    env = {**os.environ, "CACT_BLUEPRINT_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "cact.cli", "worker"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "MSK-M1-001" in proc.stderr and "competency" in proc.stderr
