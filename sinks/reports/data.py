"""Reading one activity out of the results store for its reports, in one transaction (sinks/reports/model.py).

The reports show the store and nothing else: the current result versions with their nine levels and sections
as stored, the superseded versions they replaced, the attendance rows and the session summaries. Which
participants belong to an activity follows the store's own filing: a result and an attendance row carry the
participant's *home* activity, so a susulan sat in another activity's session is reported at home, marked with
where it was sat, and a guest sitting a susulan in this activity's sessions is reported by their own activity.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.domain import AttendanceStatus as St
from sinks import models as m
from sinks.engine import aware
from sinks.reports.model import (
    COMPETENCY_NAMES,
    ActivityData,
    AttendanceLine,
    CompetencyLine,
    EarlierVersion,
    HeldBackLine,
    IndividualResult,
    SectionLine,
    SessionLine,
)
from sinks.store import ResultsStore

#: The zone a session's day is read in when its summary predates the offset column: Jakarta's.
DEFAULT_OFFSET_MINUTES = 420
_ORDER = {code: i for i, code in enumerate(COMPETENCY_NAMES)}
#: Attendance statuses that make a row part of the activity's roster (unexpected arrivals and participants taken
#: off the schedule are not its participants).
_ROSTER = {St.SCHEDULED.value, St.CHECKED_IN.value, St.NO_SHOW.value, St.RESCHEDULED.value}


def local_day(starts_at: datetime, offset_minutes: int | None) -> date:
    """The lab's date of a session: what the participants call the test day."""
    zone = timezone(timedelta(minutes=DEFAULT_OFFSET_MINUTES if offset_minutes is None else offset_minutes))
    return aware(starts_at).astimezone(zone).date()


def last_test_day(session_days: list[date], assessed_days: list[date]) -> date | None:
    """The activity's last test day: its own sessions' days and the days its participants were assessed on, so
    a susulan sat after the activity's own sessions pushes the deadlines back with it."""
    days = session_days + assessed_days
    return max(days) if days else None


def activities(store: ResultsStore) -> list[str]:
    """Every activity the store knows: from sessions, attendance and results."""
    with Session(store.engine) as s:
        found = set(s.scalars(select(m.SessionSummaryRow.activity_id).distinct()))
        found |= set(s.scalars(select(m.Attendance.activity_id).distinct()))
        found |= set(s.scalars(select(m.Result.activity_id).distinct()))
    return sorted(found)


def _results(s: Session, activity_id: str,
             names: dict[str, str]) -> tuple[list[IndividualResult], list[m.Result]]:
    r, c, x = m.Result, m.CompetencyResult, m.SectionScore
    rows = list(s.scalars(select(r).where(r.activity_id == activity_id).order_by(r.nip, r.result_version.desc())))
    comps: dict[tuple[str, int], list[CompetencyLine]] = defaultdict(list)
    for comp in s.scalars(select(c).where(c.activity_id == activity_id)):
        comps[(comp.nip, comp.result_version)].append(CompetencyLine(comp.code, comp.level, comp.standard, comp.gap))
    secs: dict[tuple[str, int], list[SectionLine]] = defaultdict(list)
    for sec in s.scalars(select(x).where(x.activity_id == activity_id).order_by(x.section)):
        secs[(sec.nip, sec.result_version)].append(
            SectionLine(sec.section, sec.score, sec.level, sec.answered, sec.items, sec.completion))
    earlier: dict[str, list[EarlierVersion]] = defaultdict(list)
    current = []
    for row in rows:
        if row.status == "current":
            current.append(row)
        else:
            earlier[row.nip].append(EarlierVersion(row.result_version, row.blueprint_version, aware(row.created_at),
                                                   row.jpm, row.category))
    out = []
    for row in current:
        key = (row.nip, row.result_version)
        potential = row.payload.get("potential") if isinstance(row.payload, dict) else None
        out.append(IndividualResult(
            nip=row.nip, name=row.participant_name, activity_id=row.activity_id, agency_id=row.agency_id,
            agency_name=names.get(row.agency_id, ""), purpose=row.purpose, position_tier=row.position_tier,
            session_id=row.session_id, host_activity_id=row.host_activity_id, organiser_id=row.organiser_id,
            blueprint_id=row.blueprint_id, blueprint_version=row.blueprint_version, result_version=row.result_version,
            created_at=aware(row.created_at), assessed_on=row.assessed_on, valid_until=row.valid_until, jpm=row.jpm,
            category=row.category, standing=row.standing, standing_detail=row.standing_detail,
            flags=list(row.flags or []), competencies=sorted(comps[key], key=lambda line: _ORDER[line.code]),
            sections=secs[key], potential={k: float(v) for k, v in potential.items()} if potential else None,
            earlier=earlier[row.nip]))
    return out, current


def _attendance(s: Session, activity_id: str, names: dict[str, str | None]) -> list[AttendanceLine]:
    """One line per participant of the activity: present (at home or at a susulan), absent, or still moved."""
    a = m.Attendance
    rows: dict[str, list[Any]] = defaultdict(list)
    for row in s.scalars(select(a).where(a.activity_id == activity_id, a.status.in_(_ROSTER))):
        rows[row.nip].append(row)
    out = []
    for nip, seats in sorted(rows.items()):
        home = next((x for x in seats if x.rescheduled_from is None), seats[0])
        arrivals = [x for x in seats if x.rescheduled_from is not None]
        present = next((x for x in seats if x.status == St.CHECKED_IN.value), None)
        moved_to = home.rescheduled_to if home.status == St.RESCHEDULED.value else None
        if present is not None:
            status = "present_susulan" if present.rescheduled_from is not None else "present"
        elif home.status == St.RESCHEDULED.value:
            # Moved: absent only once the session moved to has declared them a no-show.
            status = "no_show" if any(x.status == St.NO_SHOW.value for x in arrivals) else "rescheduled"
        elif home.status == St.NO_SHOW.value:
            status = "no_show"
        else:
            status = "scheduled"
        out.append(AttendanceLine(nip=nip, name=names.get(nip), home_session_id=home.session_id, status=status,
                                  sat_session_id=present.session_id if present is not None else None,
                                  susulan_session_id=moved_to or (arrivals[0].session_id if arrivals else None),
                                  late=bool(present.late) if present is not None else False))
    return out


def read_activity(store: ResultsStore, activity_id: str) -> ActivityData:
    """The activity as the store holds it now (one snapshot: a sink writing meanwhile is not half-seen)."""
    with Session(store.engine, expire_on_commit=False) as s, s.begin():
        if store.engine.dialect.name == "postgresql":  # SQLite's one writer already gives a snapshot
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        summaries = list(s.scalars(select(m.SessionSummaryRow).where(m.SessionSummaryRow.activity_id == activity_id)
                                   .order_by(m.SessionSummaryRow.starts_at, m.SessionSummaryRow.session_id)))
        agency_names = {x.agency_id: x.agency_name for x in s.scalars(select(m.SessionSummaryRow)) if x.agency_name}
        results, rows = _results(s, activity_id, agency_names)
        names: dict[str, str | None] = {row.nip: row.participant_name for row in rows}
        attendance = _attendance(s, activity_id, names)
    sessions = [SessionLine(x.session_id, x.lab_id, local_day(x.starts_at, x.utc_offset_minutes), x.scheduled,
                            x.checked_in, x.no_show, x.rescheduled, x.final) for x in summaries]
    counted = [r for r in results if r.standing == "counted"]
    held = sorted((HeldBackLine(r.nip, r.name, r.result_version, r.standing, r.standing_detail)
                   for r in results if r.standing != "counted"), key=lambda h: (h.standing, h.nip))
    agency_id = summaries[0].agency_id if summaries else (results[0].agency_id if results else "")
    # Running while one of its sessions is in check-in, or one of its participants waits for a (susulan) session.
    running = ({x.session_id for x in sessions if not x.final}
               | {a.susulan_session_id or a.home_session_id for a in attendance
                  if a.status in ("rescheduled", "scheduled")})
    return ActivityData(
        activity_id=activity_id, agency_id=agency_id, agency_name=agency_names.get(agency_id, ""),
        purpose=results[0].purpose if results else "", sessions=sessions,
        first_test_day=min((x.test_day for x in sessions), default=None),
        last_test_day=last_test_day([x.test_day for x in sessions], [r.assessed_on for r in results]),
        results=counted, held_back=held, attendance=attendance,
        open_sessions=len(running))


def fingerprint(data: ActivityData) -> str:
    """What a build read, as one digest: the same store gives the same digest, any changed row a new one."""
    dumped = orjson.dumps(asdict(data), option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(dumped).hexdigest()
