"""The processor's knobs: what operators may set (settings), and what scoring asks of the accreditation registry.

Kept apart from the rules that use them so the worker shell (``streams/app.py``) can build them from
``Settings`` without reading the rules, and tests can state a knob next to the behaviour it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from schemas.domain import PositionTier


@dataclass(frozen=True)
class AttendancePolicy:
    """Whether a participant who checks in after the window closes may still sit the test."""

    late_admitted: bool = True


@dataclass(frozen=True)
class StateLimits:
    """Caps on state that input alone can create, so a hostile or broken lab cannot grow a worker without bound.

    A lab event may arrive before its session's schedule (that is why such state is kept at all), but a stream
    of events for sessions nobody schedules, or for NIPs nobody expects, would otherwise be kept forever. Past a
    cap the event is refused as ``state_limit``: dead-lettered with its bytes, so nothing is silently dropped and
    it can be replayed once the schedule is known. Both caps count per worker partition (``scope``)."""

    unscheduled_sessions: int = 2000
    unexpected_participants: int = 200
    #: Lab events held for sessions whose schedule has not arrived, per partition (see ``LabTrust``).
    held_events: int = 20_000


@dataclass(frozen=True)
class LabTrust:
    """What a lab event must be to count for a session: from the lab hosting it, and stamped near its schedule.

    Event time closes check-in windows, so one lab clock set to 2099, or one lab writing about another lab's
    session, would otherwise decide for everyone in it (issue 13). A lab event is judged only against a known
    schedule: one that arrives first is held in the session's state, unapplied, and judged when the schedule
    arrives, so the verdict is the same whatever order the topics are read in. Refused events are dead-lettered
    (``wrong_lab``, ``implausible_time``) and change nothing."""

    before_start: timedelta = timedelta(hours=6)
    after_end: timedelta = timedelta(hours=6)


class Verdict(Protocol):
    """Whether a result counts, and why not (read only: the registry's verdicts are frozen)."""

    @property
    def recognised(self) -> bool: ...

    @property
    def detail(self) -> str | None: ...


class Accreditations(Protocol):
    """What scoring needs of the accreditation registry (schemas/accreditation.py)."""

    digest: str

    def judge(self, organiser_id: str | None, tier: PositionTier, on: date) -> Verdict: ...

    def warning(self, organiser_id: str | None, on: date) -> str | None: ...
