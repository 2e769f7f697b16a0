"""A CPU hog beside the pipeline: the "heavily loaded machine" of issue 12, where a kill -9 lost state.

The race the fault suite hunts only shows when the worker, the sink and the broker are starved of CPU (a
fire-and-forget changelog write not yet on the broker when the offset commit goes out), so the kill scenario
runs with one busy process per core next to them. ``stress-ng`` is used when installed (``make soak`` installs
it), else plain Python busy loops: both keep every core at 100 % for their own share of the scheduler.

A hog must never outlive its purpose, even when the process that started it is killed: stress-ng gets
``--timeout``, the Python loops check a deadline and whether their parent is still there, and both run in their
own process group so :meth:`CpuHog.stop` ends all of them at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from types import TracebackType
from typing import Literal, Self

Backend = Literal["stress-ng", "python"]

#: One busy loop: spins until its deadline or until its parent (the one that started it) is gone.
_BUSY_LOOP = """
import os, sys, time
deadline, parent = time.monotonic() + float(sys.argv[1]), os.getppid()
n = 0
while True:
    n += 1
    if n % 200_000 == 0 and (time.monotonic() > deadline or os.getppid() != parent):
        break
"""


def ensure_stress_ng() -> bool:
    """Install stress-ng with apt-get when it is missing and we are root; True when it is there afterwards.

    The Makefile installs it for `make test` and `make soak`; a test must not install system packages, it uses
    what is there.
    """
    if shutil.which("stress-ng"):
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-qq", "stress-ng"], ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "stress-ng"]):
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if shutil.which("stress-ng"):
            return True
    return False


class CpuHog:
    """``with CpuHog(): ...`` keeps ``workers`` cores busy (default: all of them) for at most ``max_seconds``.

    ``backend``: "stress-ng", "python", or None for stress-ng when installed, else Python.
    """

    def __init__(self, workers: int | None = None, *, max_seconds: float = 900.0,
                 backend: Backend | None = None) -> None:
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive: a hog without an end is not allowed")
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.max_seconds = max_seconds
        self.backend: Backend = backend or ("stress-ng" if shutil.which("stress-ng") else "python")
        if self.backend == "stress-ng" and not shutil.which("stress-ng"):
            raise RuntimeError("stress-ng is not installed: `apt-get install -y stress-ng`, or use backend='python'")
        self._procs: list[subprocess.Popen[bytes]] = []
        self.started_at: float | None = None

    @property
    def running(self) -> bool:
        return any(p.poll() is None for p in self._procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self) -> Self:
        if self._procs:
            return self
        quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if self.backend == "stress-ng":
            cmd = ["stress-ng", "--cpu", str(self.workers), "--cpu-method", "matrixprod",
                   "--timeout", f"{max(1, round(self.max_seconds))}s", "--quiet"]
            self._procs = [subprocess.Popen(cmd, start_new_session=True, **quiet)]
        else:
            self._procs = [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(self.max_seconds)],
                                            start_new_session=True, **quiet) for _ in range(self.workers)]
        self.started_at = time.monotonic()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End every hog process (SIGTERM to its group, SIGKILL after ``timeout``); safe to call twice."""
        procs, self._procs = self._procs, []
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
