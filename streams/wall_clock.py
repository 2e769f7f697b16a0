"""The wall-clock fallback: closing the check-in window of a session whose lab went silent.

A session's check-in window closes by event time (the first lab event of the session at or after
``checkin_closes_at``), by ``SessionClosed``, or by this fallback (docs/events.md), and only then are its absent
participants declared no-shows. A lab that went silent (network, exam server or emitter down) sends no event
past the window, and its no-shows would wait for it. So the worker closes the window itself, with its own
clock, once both:

* the window ended more than ``lag`` ago (``CACT_WALL_CLOCK_LAG_SECONDS``), and
* nothing was heard from the session for ``lag`` (:class:`LabActivity`): a lab still sending closes its
  session itself by event time.

Late check-ins from the lab's spool still arrive afterwards and correct the no-shows (docs/operations.md).
The close's id is derived from the session: sent again (by a restarted worker) it is the same event, and the
processor ignores a close of a closed window.
The decision is the pure :func:`windows_to_close`; :class:`WallClockFallback` is the timer's body around it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.events import CheckinWindowClosed, Event, derived_id, new_event
from streams.deadletter import PIPELINE_ID

log = logging.getLogger("cact.worker")

#: Labs the silent-lab watch keeps (a real day has a few hundred); events from more are still processed.
LABS_TRACKED_MAX = 2000


class LabActivity:
    """Wall-clock time each lab and each scheduled session was last heard from (this worker's partitions).

    For the silent-lab marker of the operator page and for the fallback. Memory only: after a restart
    everything counts as heard at the start (``started_at``). Bounded: only scheduled sessions are kept,
    and at most ``labs_max`` labs."""

    def __init__(self, *, labs_max: int = LABS_TRACKED_MAX, clock: Callable[[], float] = time.time) -> None:
        self.labs_max = labs_max
        self._clock = clock
        self.started_at = clock()
        self.labs: dict[str, float] = {}
        self.sessions: dict[str, float] = {}

    def heard(self, session_id: str, lab_id: str) -> bool:
        """An accepted event of a scheduled session from its hosting lab; False when the lab is past the cap."""
        now = self.sessions[session_id] = self._clock()
        if lab_id in self.labs or len(self.labs) < self.labs_max:
            self.labs[lab_id] = now
            return True
        return False


def is_scheduled(state: Mapping[str, Any] | None) -> bool:
    """A session state whose schedule has arrived (before that, its lab events are held, not yet the host's)."""
    return bool(state and state.get("meta"))


def windows_to_close(sessions: Iterable[tuple[str, Mapping[str, Any] | None]], *, last_heard: Mapping[str, float],
                     heard_by_default: float, now: float, lag_s: float, closing: Container[str] = ()) -> list[str]:
    """The sessions whose check-in window the wall clock closes now (pure).

    ``sessions``: (id, state) as the sessions table holds them; ``last_heard``: when each session was last heard
    from, ``heard_by_default`` for one not heard since the worker started; ``closing``: closed already by this
    worker, waiting for the processor to see it. A session not scheduled, or whose window is closed, is left alone."""
    due: list[str] = []
    for session_id, state in sessions:
        if state is None or not is_scheduled(state) or state.get("window_closed") or session_id in closing:
            continue
        closes = datetime.fromisoformat(state["meta"]["checkin_closes_at"]).timestamp()
        quiet_since = last_heard.get(session_id, heard_by_default)
        if now > closes + lag_s and now - quiet_since > lag_s:
            due.append(session_id)
    return due


def window_closed(session_id: str, at: datetime) -> Event:
    """The close the worker sends; its id is the session's, whoever sends it and however often."""
    return new_event(CheckinWindowClosed, lab_id=PIPELINE_ID, occurred_at=at,
                     event_id=derived_id("wall-clock", session_id), payload={"session_id": session_id})


class WallClockFallback:
    """One tick of the fallback: decide, send each close, and remember it only once the broker has it."""

    def __init__(self, activity: LabActivity, *, lag_s: float, send: Callable[[Sequence[Event]], Awaitable[None]],
                 clock: Callable[[], float] = time.time) -> None:
        self.activity = activity
        self.lag_s = lag_s
        self._send = send
        self._clock = clock
        self.closing: set[str] = set()

    async def tick(self, sessions: Iterable[tuple[str, Mapping[str, Any] | None]]) -> list[str]:
        now = self._clock()
        due = windows_to_close(sessions, last_heard=self.activity.sessions, heard_by_default=self.activity.started_at,
                               now=now, lag_s=self.lag_s, closing=self.closing)
        for session_id in due:
            await self._send([window_closed(session_id, datetime.fromtimestamp(now, UTC))])
            self.closing.add(session_id)  # only once sent: a failed send is tried again at the next tick
            log.warning("check-in window of session %s closed by the wall clock: its lab is silent", session_id)
        return due
