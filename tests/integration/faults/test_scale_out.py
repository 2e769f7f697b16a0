"""Three workers, twelve input partitions (four per topic): one killed for good mid-day, the others take over,
the store ends row by row as a one-worker run of the same day; the worker comes back and the group gives it
partitions again (issue 17, "Scale-out proven here"). The takeover is timed per phase
and printed; ``python -m bench.faults.scaleout`` runs it at any size (docs/deploy.md, "Scale-out and takeover")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from bench.faults.harness import SMALL, with_size
from bench.faults.reference import References
from bench.faults.scaleout import figures_table, scale_out

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.long]  # run by `make soak`
SEED = int(os.environ.get("CACT_FAULT_SEED", "7"))


def test_three_workers_one_lost_for_good_then_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    size = with_size(SMALL, send_seconds=45.0, drain_timeout_s=300.0)
    s = scale_out(References(tmp_path / "references"), size, SEED, tmp_path)
    (tmp_path / "scale-out.json").write_text(json.dumps(s.figures, indent=2, default=str))
    with capsys.disabled():
        Console(width=160).print(figures_table([(f"3 workers, seed {SEED}", s)]))
    assert s.problems == [], "\n".join(s.problems)
    assert s.takeover is not None and s.back is not None
    assert 0 < s.takeover.partitions < 12 and s.figures["partitions"] == 12
    assert s.takeover.assigned_s is not None and s.takeover.processing_s is not None
    assert s.takeover.assigned_s <= s.takeover.processing_s
    # sticky: only what the returning worker needs moves (streams/sticky_assignor.py)
    assert s.back.to_returning > 0 and s.back.between_survivors == 0, s.back
