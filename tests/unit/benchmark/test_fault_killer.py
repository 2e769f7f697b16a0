"""The kill loop's schedule and bookkeeping, on a fake clock and a fake process: no process is killed here.

What matters for the fault suite: a seed gives the same moments every time (a failing soak can be replayed),
a kill never lands on an incarnation younger than ``min_uptime_s`` or one that is not working yet, every kill
is followed by a restart, and each kill records what was going on at that moment.
"""

from __future__ import annotations

import random

import pytest

from bench.faults.killer import KillLoop, kill_schedule
from support.clock import FakeClock


class FakeProcess:
    role = "worker"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.incarnation = 1
        self.started_at = clock.now
        self.running = True
        self.events: list[tuple[str, float, int]] = []

    @property
    def pid(self) -> int:
        return 1000 + self.incarnation

    def uptime(self) -> float:
        return self.clock.now - self.started_at if self.running else 0.0

    def alive(self) -> bool:
        return self.running

    def kill(self) -> None:
        self.events.append(("kill", self.clock.now, self.incarnation))
        self.running = False

    def start(self) -> None:
        self.incarnation += 1
        self.started_at = self.clock.now
        self.running = True
        self.events.append(("start", self.clock.now, self.incarnation))


def test_the_schedule_is_a_function_of_the_seed() -> None:
    a = kill_schedule(random.Random("7/worker"), 20, 150.0)
    assert a == kill_schedule(random.Random("7/worker"), 20, 150.0)
    assert a != kill_schedule(random.Random("8/worker"), 20, 150.0)
    assert a == sorted(a) and len(a) == 20 and all(0 <= t < 150.0 for t in a)
    with pytest.raises(ValueError):
        kill_schedule(random.Random(1), 3, 0)


def test_each_kill_waits_for_its_moment_and_the_minimum_uptime_then_restarts() -> None:
    clock = FakeClock(100.0)
    proc = FakeProcess(clock)
    seen = iter(range(100))
    loop = KillLoop(proc, kills=5, span_s=20.0, seed=3, min_uptime_s=4.0, clock=clock, sleep=clock.sleep,
                    context=lambda: {"results": next(seen)})
    kills = loop.run()
    assert len(kills) == 5
    assert [k.incarnation for k in kills] == [1, 2, 3, 4, 5]
    assert [e[0] for e in proc.events] == ["kill", "start"] * 5
    for kill, planned in zip(kills, loop.schedule):
        assert kill.at_s >= planned - 1e-9  # never before its moment
        assert kill.uptime_s >= 4.0 - 1e-9  # never an incarnation still starting
    assert [k.context["results"] for k in kills] == [0, 1, 2, 3, 4]
    assert [k.pid for k in kills] == [1001, 1002, 1003, 1004, 1005]
    assert proc.alive()  # the last kill was followed by a restart


def test_a_kill_waits_until_the_process_is_working_but_not_forever() -> None:
    clock = FakeClock(100.0)
    proc = FakeProcess(clock)
    working_after = {1: 9.0, 2: float("inf")}  # the second incarnation never reports work
    loop = KillLoop(proc, kills=2, span_s=1.0, seed=1, min_uptime_s=1.0, ready_timeout_s=15.0, clock=clock,
                    sleep=clock.sleep, ready=lambda: proc.uptime() >= working_after.get(proc.incarnation, 0))
    kills = loop.run()
    assert kills[0].uptime_s == pytest.approx(9.0, abs=0.2)
    assert kills[1].uptime_s == pytest.approx(15.0, abs=0.2)


def test_stop_ends_the_loop_before_its_next_kill() -> None:
    clock = FakeClock(100.0)
    proc = FakeProcess(clock)
    loop = KillLoop(proc, kills=3, span_s=30.0, seed=5, clock=clock, sleep=clock.sleep)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(proc.events) >= 2:
            loop.stop()

    loop.sleep = sleep
    assert len(loop.run()) == 1
    assert proc.alive()


def test_kills_follow_the_progress_of_the_work_and_let_each_incarnation_work_a_while() -> None:
    """On a loaded machine the worker lags the labs: kill moments are shares of the work done, not seconds."""
    clock = FakeClock(100.0)
    proc = FakeProcess(clock)
    t0 = clock.now
    progress = lambda: min(1.0, (clock.now - t0) / 200.0)  # noqa: E731 - the day takes 200 s of work
    loop = KillLoop(proc, kills=4, span_s=100.0, seed=9, min_uptime_s=1.0, work_s=5.0, clock=clock,
                    sleep=clock.sleep, progress=progress)
    kills = loop.run()
    assert all(0 <= f < 1 for f in loop.schedule)
    for kill, share in zip(kills, loop.schedule):
        assert kill.context["progress"] >= round(share, 3)  # due by the work done, not by the clock
    works = [k.uptime_s for k in kills]
    assert any(w > 1.5 for w in works) and all(w <= 200 for w in works)


def test_without_progress_a_kill_still_comes_by_its_deadline() -> None:
    clock = FakeClock(100.0)
    proc = FakeProcess(clock)
    loop = KillLoop(proc, kills=2, span_s=10.0, seed=2, min_uptime_s=0.5, clock=clock, sleep=clock.sleep,
                    progress=lambda: 0.0, deadline_factor=3.0)
    kills = loop.run()
    assert len(kills) == 2
    for kill, share in zip(kills, loop.schedule):
        assert kill.at_s <= share * 10.0 * 3.0 + 1.0
