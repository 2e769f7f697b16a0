"""The CPU hog really loads the machine, and never outlives its bound: stopped, or on its own at the deadline."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from bench.faults.load import CpuHog


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_gone(hog: CpuHog, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while hog.running and time.monotonic() < deadline:
        time.sleep(0.05)
    return not hog.running


def test_python_busy_loops_burn_cpu_and_end_at_their_deadline_without_being_stopped() -> None:
    hog = CpuHog(workers=2, max_seconds=1.5, backend="python").start()
    try:
        time.sleep(1.0)
        burnt = [cpu_seconds(pid) for pid in hog.pids]
        assert len(burnt) == 2 and all(b > 0.3 for b in burnt), burnt  # each loop spins, it does not sleep
        assert wait_gone(hog, 5.0), "the busy loops outlived their deadline"
    finally:
        hog.stop()


def test_the_default_hog_is_stopped_as_a_whole_process_group() -> None:
    """stress-ng when installed (``make soak`` installs it), else the Python loops; either ends as one group."""
    if not shutil.which("stress-ng"):
        with pytest.raises(RuntimeError, match="apt-get install -y stress-ng"):
            CpuHog(backend="stress-ng")
    with CpuHog(workers=2, max_seconds=60) as hog:
        assert hog.backend == ("stress-ng" if shutil.which("stress-ng") else "python")
        time.sleep(1.0)
        assert hog.running
        groups = set(hog.pids)
    assert not hog.running
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) in groups]  # no stray stressor


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_hog_without_a_bound_is_refused() -> None:
    with pytest.raises(ValueError):
        CpuHog(max_seconds=0)
