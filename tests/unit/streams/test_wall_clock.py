"""The wall-clock fallback (streams/wall_clock.py): which check-in windows the worker closes by its own clock, when,
and that a close is sent once, tried again when the broker refused it, and the same event whoever sends it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas import events as ev
from streams.wall_clock import LabActivity, WallClockFallback, is_scheduled, window_closed, windows_to_close

CLOSES = datetime(2026, 11, 3, 8, 30, tzinfo=UTC)
T0 = CLOSES.timestamp()
LAG = 900.0


def state(closes: datetime = CLOSES, **extra: Any) -> dict[str, Any]:
    return {"meta": {"checkin_closes_at": closes.isoformat(), "lab_id": "lab-1"}, "window_closed": False, **extra}


def due(sessions: dict[str, Any], now: float, *, last_heard: dict[str, float] | None = None,
        started_at: float = T0 - 3600, closing: set[str] | None = None) -> list[str]:
    return windows_to_close(sessions.items(), last_heard=last_heard or {}, heard_by_default=started_at, now=now,
                            lag_s=LAG, closing=closing or set())


def test_a_window_is_closed_only_once_it_ended_more_than_the_lag_ago() -> None:
    sessions = {"S1": state()}
    assert due(sessions, T0 + LAG) == []  # not more than the lag yet
    assert due(sessions, T0 + LAG + 1) == ["S1"]


def test_a_session_heard_from_recently_is_left_to_its_lab() -> None:
    sessions = {"S1": state()}
    now = T0 + 2 * LAG
    assert due(sessions, now, last_heard={"S1": now - LAG + 1}) == []
    assert due(sessions, now, last_heard={"S1": now - LAG - 1}) == ["S1"]


def test_after_a_restart_every_session_counts_as_heard_at_the_start() -> None:
    sessions = {"S1": state()}
    now = T0 + 2 * LAG
    assert due(sessions, now, started_at=now - 10) == []  # the worker has not been up for the lag
    assert due(sessions, now, started_at=now - LAG - 1) == ["S1"]


@pytest.mark.parametrize("value", [None, {}, {"meta": None, "window_closed": False}, {"held": 3},
                                   state(window_closed=True)])
def test_unscheduled_held_or_closed_sessions_are_never_closed(value: Any) -> None:
    assert due({"S1": value, "#unscheduled/0": {"held": 2}}, T0 + 10 * LAG) == []


def test_a_close_already_sent_is_not_decided_again() -> None:
    assert due({"S1": state(), "S2": state()}, T0 + 10 * LAG, closing={"S1"}) == ["S2"]


def test_scheduled_means_the_schedule_arrived() -> None:
    assert is_scheduled(state()) and not is_scheduled(None) and not is_scheduled({"meta": None})


def test_the_close_is_the_same_event_whoever_sends_it() -> None:
    a, b = window_closed("S1", CLOSES), window_closed("S1", CLOSES + timedelta(hours=1))
    assert isinstance(a, ev.CheckinWindowClosed) and a.payload.session_id == "S1"
    assert a.event_id == b.event_id != window_closed("S2", CLOSES).event_id
    assert a.lab_id == "cact-pipeline"


def test_the_silent_lab_watch_keeps_at_most_its_cap_of_labs() -> None:
    clock = iter([100.0, 101.0, 102.0, 103.0, 104.0]).__next__
    activity = LabActivity(labs_max=2, clock=clock)
    assert activity.started_at == 100.0
    assert activity.heard("S1", "lab-1") and activity.heard("S2", "lab-2")
    assert not activity.heard("S3", "lab-3")  # past the cap: not tracked, still counted as heard for its session
    assert activity.heard("S4", "lab-1")  # a lab already kept is kept up to date
    assert activity.labs == {"lab-1": 104.0, "lab-2": 102.0}
    assert activity.sessions == {"S1": 101.0, "S2": 102.0, "S3": 103.0, "S4": 104.0}


class Broker:
    def __init__(self, fail: int = 0) -> None:
        self.fail, self.sent = fail, []  # type: ignore[var-annotated]

    async def __call__(self, events: Sequence[ev.Event]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("not acknowledged")
        self.sent.extend(events)


def test_a_close_is_sent_once_and_again_only_after_a_refusal() -> None:
    now = [T0 + 2 * LAG]
    activity = LabActivity(clock=lambda: T0 - 3600)
    broker = Broker(fail=1)
    fallback = WallClockFallback(activity, lag_s=LAG, send=broker, clock=lambda: now[0])
    sessions = {"S1": state(), "S2": state(closes=CLOSES + timedelta(hours=2))}
    with pytest.raises(ConnectionError):
        asyncio.run(fallback.tick(list(sessions.items())))
    assert fallback.closing == set()  # refused: the next tick tries again
    assert asyncio.run(fallback.tick(list(sessions.items()))) == ["S1"]
    assert asyncio.run(fallback.tick(list(sessions.items()))) == []  # sent: the processor will see it
    assert [e.payload.session_id for e in broker.sent] == ["S1"]
    assert broker.sent[0].occurred_at == datetime.fromtimestamp(now[0], UTC)
