"""What ``cact rescore`` reads from the results store: an activity's results wherever they were sat, the
sessions still holding its participants, and the dead letters of its own requests.

A result is filed under the participant's home activity (``results.activity_id``) and names the session it
was sat in (``results.session_id``), which for a susulan belongs to another activity; so the sessions to ask
come from the results and the attendance of the activity, never from the sessions' own activity.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from schemas.domain import AttendanceStatus
from sinks import models as m


@dataclass(frozen=True)
class HeldResult:
    """One current result version as the store has it."""

    nip: str
    activity_id: str
    session_id: str
    result_version: int
    blueprint_id: str
    blueprint_version: str


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str


class RescoreQueries:
    """The reads, over one SQLAlchemy engine (the results store's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def results_of(self, activity_id: str) -> list[HeldResult]:
        """The activity's current results, wherever they were sat."""
        r = m.Result
        with Session(self.engine) as s:
            rows = s.execute(select(r.nip, r.activity_id, r.session_id, r.result_version, r.blueprint_id,
                                    r.blueprint_version).where(r.activity_id == activity_id, r.status == "current"))
            return [HeldResult(*row) for row in rows]

    def results_sat_in(self, session_ids: Collection[str]) -> list[HeldResult]:
        """Every current result sat in these sessions, of any activity."""
        if not session_ids:
            return []
        r = m.Result
        with Session(self.engine) as s:
            rows = s.execute(select(r.nip, r.activity_id, r.session_id, r.result_version, r.blueprint_id,
                                    r.blueprint_version)
                             .where(r.session_id.in_(sorted(session_ids)), r.status == "current"))
            return [HeldResult(*row) for row in rows]

    def checked_in(self, activity_id: str) -> set[tuple[str, str]]:
        """(session, nip) of the activity's participants checked in, at home or as a susulan elsewhere."""
        a = m.Attendance
        with Session(self.engine) as s:
            return {(session, nip) for session, nip in s.execute(select(a.session_id, a.nip).where(
                a.activity_id == activity_id, a.status == AttendanceStatus.CHECKED_IN.value))}

    def activities_of(self, session_ids: Collection[str]) -> dict[str, str]:
        """session → the activity it was scheduled for (its latest summary)."""
        if not session_ids:
            return {}
        x = m.SessionSummaryRow
        with Session(self.engine) as s:
            rows = s.execute(select(x.session_id, x.activity_id).where(x.session_id.in_(sorted(session_ids))))
            return {session: activity for session, activity in rows}

    def refusals(self, topic: str, positions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Refusal]:
        """Dead letters of the records at these (partition, offset) positions of ``topic``."""
        wanted = set(positions)
        if not wanted:
            return {}
        d = m.DeadLetter
        with Session(self.engine) as s:
            rows = s.execute(select(d.source_partition, d.source_offset, d.reason, d.detail).where(
                d.source_topic == topic, d.source_partition.in_(sorted({p for p, _ in wanted})),
                d.source_offset.in_(sorted({o for _, o in wanted}))))
            return {(p, o): Refusal(reason, detail) for p, o, reason, detail in rows if (p, o) in wanted}
