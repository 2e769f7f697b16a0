"""A kill loop: kill -9 a process group at random moments, restart it, and remember every kill.

The moments come from a seeded RNG, so a failing run names its seed and the same schedule can be replayed
(the moments are the same; what the process was doing at each is up to the scheduler). A kill waits until the
incarnation has been up ``min_uptime_s``: a process killed again while it is still starting would only test
start-up, and the issue is about kills mid-work. Clock and sleep are injectable so the schedule and the
bookkeeping are tested without processes (tests/unit/benchmark/test_fault_killer.py).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class Killable(Protocol):
    role: str
    incarnation: int

    @property
    def pid(self) -> int | None: ...

    def uptime(self) -> float: ...

    def alive(self) -> bool: ...

    def kill(self) -> Any: ...

    def start(self) -> Any: ...


@dataclass(frozen=True)
class Kill:
    """One kill: when (seconds since the loop started), whom, and what was going on at that moment."""

    role: str
    at_s: float
    pid: int | None
    incarnation: int
    uptime_s: float
    context: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at_s": round(self.at_s, 2), "uptime_s": round(self.uptime_s, 2)}


def kill_schedule(rng: random.Random, kills: int, span_s: float) -> list[float]:
    """``kills`` moments, uniformly at random in [0, span_s), sorted: offsets from the loop's start."""
    if kills < 0 or span_s <= 0:
        raise ValueError("kills must be >= 0 and span_s > 0")
    return sorted(rng.uniform(0, span_s) for _ in range(kills))


class KillLoop:
    """Kills ``target`` at the moments of :func:`kill_schedule` (seeded), restarting it after each kill.

    ``context()`` is called just before each kill and its answer kept with the kill (e.g. how much of the day
    had been sent and stored), so a report says what the process was in the middle of. ``ready()``, when
    given, must also hold before a kill (e.g. "this incarnation has processed something"), for at most
    ``ready_timeout_s`` of its uptime: a kill is meant to land mid-work, and under load start-up is slow.
    Once due and ready, the incarnation works a further random ``0..work_s`` seconds (seeded) before the kill,
    so kills do not all land on the first batch after a recovery.

    ``progress()``, when given, makes the moments fractions of the work instead of seconds: kill *i* is due
    once ``progress()`` (0..1, e.g. the share of the day's input the worker group has committed) reaches its
    fraction, or at the latest ``deadline_factor`` times its moment in seconds over ``span_s``. On a loaded
    machine the worker falls behind the labs, and kills timed by the wall clock alone would all land before
    the first result, leaving the rest of the day unharmed.
    """

    def __init__(self, target: Killable, *, kills: int, span_s: float, seed: int | str, min_uptime_s: float = 4.0,
                 restart_delay_s: float = 0.0, context: Callable[[], dict[str, Any]] | None = None,
                 ready: Callable[[], bool] | None = None, ready_timeout_s: float = 30.0, work_s: float = 0.0,
                 progress: Callable[[], float] | None = None, deadline_factor: float = 4.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] | None = None) -> None:
        self.target = target
        self.seed = seed
        self.schedule = kill_schedule(random.Random(f"{seed}/{target.role}"), kills, 1.0 if progress else span_s)
        self.span_s, self.progress, self.deadline_factor = span_s, progress, deadline_factor
        self.work_s, self._work_rng = work_s, random.Random(f"{seed}/{target.role}/work")
        self.min_uptime_s, self.restart_delay_s = min_uptime_s, restart_delay_s
        self.context = context or (lambda: {})
        self.ready, self.ready_timeout_s = ready, ready_timeout_s
        self.clock = clock
        self._halt = threading.Event()
        self.sleep = sleep or self._halt.wait
        self.kills: list[Kill] = []
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def stop(self) -> None:
        """Stop before the next kill (the current one, if any, completes)."""
        self._halt.set()

    def _due(self, started: float, offset: float) -> float:
        """Seconds until kill ``offset`` is due (<= 0: due now)."""
        if self.progress is None:
            return started + offset - self.clock()
        if self.progress() >= offset:
            return 0.0
        return min(0.5, started + offset * self.span_s * self.deadline_factor - self.clock())

    def run(self) -> list[Kill]:
        started = self.clock()
        for offset in self.schedule:
            extra = self._work_rng.uniform(0, self.work_s)
            armed: tuple[int, float] | None = None  # (incarnation, when it was due and ready)
            while not self._halt.is_set():
                up = self.target.uptime()
                wait = max(self._due(started, offset), self.min_uptime_s - up)
                if wait <= 0 and self.target.alive() and (
                        self.ready is None or up >= self.ready_timeout_s or self.ready()):
                    if armed is None or armed[0] != self.target.incarnation:
                        armed = (self.target.incarnation, self.clock())
                    wait = armed[1] + extra - self.clock()
                    if wait <= 0:
                        break
                self.sleep(min(max(wait, 0.1), 0.5) if self.progress is not None or armed else max(wait, 0.1))
            if self._halt.is_set():
                break
            progress = {"progress": round(self.progress(), 3)} if self.progress is not None else {}
            kill = Kill(self.target.role, self.clock() - started, self.target.pid, self.target.incarnation,
                        self.target.uptime(), {**progress, **self.context()})
            self.target.kill()
            self.kills.append(kill)
            if self.restart_delay_s:
                self.sleep(self.restart_delay_s)
            self.target.start()
        return self.kills

    # -- in a thread ------------------------------------------------------------------------------

    def _run_recording(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # reported by join(): a broken kill loop must fail the scenario
            self.error = exc

    def start(self) -> KillLoop:
        self._thread = threading.Thread(target=self._run_recording, name=f"kill-loop-{self.target.role}",
                                        daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> list[Kill]:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the kill loop of {self.target.role} did not finish within {timeout} s")
        if self.error is not None:
            raise RuntimeError(f"the kill loop of {self.target.role} failed: {self.error}") from self.error
        return self.kills

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()
