"""The pipeline's processes as the fault suite runs them: restartable, killable with -9, and watched.

A :class:`PipelineProcess` is one role (a ``cact worker`` or ``cact sink``) that may run as several
incarnations: each kill -9 ends one and :meth:`PipelineProcess.restart` starts the next, with its own log file,
so a failure can be traced to the incarnation that had it. Every exit is recorded; an exit we did not cause is
what the suite calls *unexpected* (the issue's "no process exits"), and the :class:`Supervisor` restarts such a
process as an operator's supervisor would, so the run still ends and its rows can still be compared.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from schemas.settings import Settings, settings_env


def fresh_dir(path: Path) -> Path:
    """A run's own folder, emptied: broker marks or a lab spool left there by an earlier run would meet the
    run's fresh broker as a broker that lost their records (and a worker halts on that, as it must)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


@dataclass(frozen=True)
class Exit:
    """One incarnation's end: ``killed`` when we sent the SIGKILL, else an unexpected exit."""

    role: str
    incarnation: int
    pid: int
    returncode: int | None
    killed: bool
    uptime_s: float
    log: str
    log_tail: str = ""

    def describe(self) -> str:
        how = "killed by the suite" if self.killed else f"exited by itself with status {self.returncode}"
        return f"{self.role} #{self.incarnation} (pid {self.pid}) {how} after {self.uptime_s:.1f} s; log {self.log}"


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


class PipelineProcess:
    """``python -m cact.cli <command>`` in its own process group, restartable; thread-safe."""

    def __init__(self, role: str, command: str, settings: Settings, log_dir: Path,
                 extra_env: Mapping[str, str] | None = None) -> None:
        self.role, self.command = role, command
        self.env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self.log_dir = log_dir
        self.incarnation = 0
        self.exits: list[Exit] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.retired = False  # stopped for good (by a scenario or at the end): the supervisor leaves it alone
        self._started_at = 0.0
        self._log_path = log_dir / f"{role}-0.log"
        self._lock = threading.RLock()

    # -- state ------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        return self._log_path

    def alive(self) -> bool:
        with self._lock:
            return self.proc is not None and self.proc.poll() is None

    def uptime(self) -> float:
        with self._lock:
            return time.monotonic() - self._started_at if self.alive() else 0.0

    @property
    def unexpected_exits(self) -> list[Exit]:
        return [e for e in self.exits if not e.killed]

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        with self._lock:
            if self.alive():
                return self
            self.incarnation += 1
            self.retired = False
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._log_path = self.log_dir / f"{self.role}-{self.incarnation}.log"
            with self._log_path.open("ab") as log:
                self.proc = subprocess.Popen([sys.executable, "-m", "cact.cli", self.command], env=self.env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            self._started_at = time.monotonic()
            return self

    def _record(self, killed: bool) -> Exit | None:
        """Record the exit of the current incarnation once (called with the lock held, after it ended)."""
        proc = self.proc
        if proc is None or proc.returncode is None:
            return None
        self.proc = None
        ended = Exit(self.role, self.incarnation, proc.pid, proc.returncode, killed,
                     time.monotonic() - self._started_at, str(self._log_path),
                     "" if killed else _tail(self._log_path))
        self.exits.append(ended)
        return ended

    def poll_exit(self) -> Exit | None:
        """The incarnation's unexpected exit, recorded, if it has ended by itself since the last look."""
        with self._lock:
            if self.proc is None or self.proc.poll() is None:
                return None
            return self._record(killed=False)

    def kill(self) -> Exit | None:
        """kill -9 the whole process group (what a crashed machine does) and wait for it."""
        with self._lock:
            if self.proc is None:
                return None
            if self.proc.poll() is not None:  # it had already ended by itself: that is not our kill
                return self._record(killed=False)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            return self._record(killed=True)

    def restart(self) -> Self:
        with self._lock:
            self.kill()
            return self.start()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``: the orderly end of a run, not a fault."""
        with self._lock:
            self.retired = True
            proc = self.proc
            if proc is None:
                return
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                self.proc = None
                return
            self._record(killed=False)

    def retire(self) -> Exit | None:
        """kill -9 for good: the machine is gone and nobody restarts it (the two-worker scenario)."""
        with self._lock:
            self.retired = True
            return self.kill()


class Supervisor:
    """Restarts a process that exited by itself, after recording it: the pipeline must not need this.

    It exists so a run with an unexpected exit still finishes and can be compared; the exit itself is a
    failure of the scenario (see ``PipelineProcess.unexpected_exits``).
    """

    def __init__(self, processes: list[PipelineProcess], interval: float = 0.5, restart_after: float = 1.0) -> None:
        self.processes = processes
        self.interval, self.restart_after = interval, restart_after
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-supervisor", daemon=True)

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            for p in list(self.processes):
                if p.retired:
                    continue
                if p.poll_exit() is not None and not self._halt.wait(self.restart_after) and not p.retired:
                    p.start()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._halt.set()
        self._thread.join(10)
