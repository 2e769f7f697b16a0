"""Live attendance for operators: counts and no-show rates per session, lab, agency, activity and overall.

Read from the results store, so every worker (and the page, the JSON endpoint and /metrics) shows the same
numbers whichever partitions it owns. The rules (docs/operations.md, "What the rates mean"):

- **A rate counts only participants whose check-in window has closed** (sessions with ``final``): no-shows ÷
  (checked in + no-shows) there. A session still before or in check-in is in no rate's numerator or
  denominator, and a rate with no closed window is ``None`` (the page says *not started* / *in check-in*,
  never 0%): mid-day, dividing by everyone scheduled made the rate read a third of the truth.
- **Where a participant counts.** Everyone counts once, in the seat they hold now: a participant moved to
  another slot (*susulan*) leaves the rate of the session they missed (they show there as rescheduled) and
  enters the rate of the session they were moved to once its window closes, so a no-show who attends the
  later slot is attended. Per **session** and **lab** the counts are seats as they are; per **agency**,
  **activity** and **overall** they are persons of that home agency and activity (a susulan arrival is not
  scheduled twice).
- **Session state**, from the summary and the clock: ``not_started`` before check-in opens (taken as
  ``CHECKIN_OPENS_BEFORE_START`` before ``starts_at``, unless a lab already checked someone in: the labs'
  own clocks beat ours), ``in_checkin`` until the window closes, then ``window_closed`` (no-shows declared)
  and ``closed`` (the lab closed the session).

Pure functions over plain rows (:func:`build_overview`) so the rules are unit-tested with an injected ``now``;
:func:`attendance_overview` only reads the store. The lists with NIPs (:func:`absent`, :func:`held_back`)
are separate functions, served only behind the operator token.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schemas.domain import AttendanceStatus as St
from sinks import models as m
from sinks.siasn.push import results_by_standing
from sinks.store import SCHEDULED_STATUSES, ResultsStore

COUNTS = ("scheduled", "checked_in", "no_show", "rescheduled", "unexpected")
#: BKN's labs open check-in 30 minutes before a session starts (the simulator does the same): before that a
#: session is *not started*. Only the page's label depends on it, never a count or a rate.
CHECKIN_OPENS_BEFORE_START = timedelta(minutes=30)
#: Indonesia's three zones by UTC offset in minutes; any other offset is shown as UTC±hh:mm.
ZONES = {420: "WIB", 480: "WITA", 540: "WIT"}
#: Session states, in the order a session goes through them.
STATES = ("not_started", "in_checkin", "window_closed", "closed")
#: States of a session that is under way for its lab: the silent-lab watch looks at these.
UNDER_WAY = ("in_checkin", "window_closed")
#: Held-back results listed at most (the counts are always whole).
HELD_BACK_LISTED = 500

_STATUS_FIELD = {St.CHECKED_IN.value: "checked_in", St.NO_SHOW.value: "no_show", St.RESCHEDULED.value: "rescheduled",
                 St.UNEXPECTED.value: "unexpected"}
_SCHEDULED = {s.value for s in SCHEDULED_STATUSES}
#: Statuses of the seat a participant holds in a session whose window has closed: the rates' denominator.
_DECIDED = {St.CHECKED_IN.value, St.NO_SHOW.value}


@dataclass(frozen=True)
class SessionFacts:
    """What the view needs of one ``session_summaries`` row."""

    session_id: str
    lab_id: str
    agency_id: str
    activity_id: str
    starts_at: datetime
    checkin_closes_at: datetime
    ends_at: datetime
    final: bool
    closed: bool
    closed_by_wall_clock: bool = False
    agency_name: str = ""
    utc_offset_minutes: int | None = None
    organiser_id: str | None = None
    accreditation_warning: str | None = None


@dataclass(frozen=True)
class SeatCount:
    """How many attendance rows of one session share a status (``arrival``: rows of susulan arrivals)."""

    session_id: str
    lab_id: str
    agency_id: str
    activity_id: str
    status: str
    arrival: bool
    n: int


# ---- times ----------------------------------------------------------------------------------------

def _aware(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at  # SQLite drops the zone


def zone_label(offset_minutes: int | None) -> str:
    """WIB, WITA or WIT; another offset as ``UTC+05:30``; unknown (rows older than the column) as UTC."""
    if not offset_minutes:
        return "UTC"
    if offset_minutes in ZONES:
        return ZONES[offset_minutes]
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def lab_local(starts_at: datetime, ends_at: datetime, offset_minutes: int | None) -> dict[str, Any]:
    """A session's times on the lab's wall clock, with its date and zone: what its operators and labs say."""
    tz = timezone(timedelta(minutes=offset_minutes or 0))
    start, end = _aware(starts_at).astimezone(tz), _aware(ends_at).astimezone(tz)
    return {"date": start.date().isoformat(), "starts": start.strftime("%H:%M"), "ends": end.strftime("%H:%M"),
            "ends_date": end.date().isoformat(), "zone": zone_label(offset_minutes),
            "utc_offset_minutes": offset_minutes or 0}


# ---- rules ----------------------------------------------------------------------------------------

def session_state(s: SessionFacts, now: datetime, *, checked_in: int = 0,
                  opens_before: timedelta = CHECKIN_OPENS_BEFORE_START) -> str:
    if s.closed:
        return "closed"
    if s.final:
        return "window_closed"
    if checked_in > 0 or now >= _aware(s.starts_at) - opens_before:
        return "in_checkin"
    return "not_started"


def _zero() -> dict[str, int]:
    return dict.fromkeys((*COUNTS, "in_closed_windows", "closed_no_show"), 0)


def _tally_sessions() -> dict[str, int]:
    return dict.fromkeys(("sessions", *(f"sessions_{state}" for state in STATES)), 0)


def _rate(counts: Mapping[str, int], threshold: float, sessions: Mapping[str, int] | None) -> dict[str, Any]:
    """The row as served: counts, the rate over closed windows (None without one), and what it waits for."""
    base = counts["in_closed_windows"]
    rate = round(counts["closed_no_show"] / base, 4) if base else None
    out: dict[str, Any] = {k: counts[k] for k in COUNTS}
    out.update(in_closed_windows=base, no_show_rate=rate, above_threshold=rate is not None and rate > threshold)
    if sessions is not None:
        closed = sessions["sessions_window_closed"] + sessions["sessions_closed"]
        out.update(sessions=sessions["sessions"], sessions_closed=closed,
                   sessions_in_checkin=sessions["sessions_in_checkin"],
                   sessions_not_started=sessions["sessions_not_started"])
        out["rate_pending"] = None if rate is not None else (
            "in_checkin" if sessions["sessions_in_checkin"] else
            "not_started" if sessions["sessions_not_started"] else "no_participants")
    return out


def build_overview(sessions: Iterable[SessionFacts], seats: Iterable[SeatCount], *, now: datetime,
                   threshold: float, silent_after_s: float, lab_last_seen: Mapping[str, float],
                   opens_before: timedelta = CHECKIN_OPENS_BEFORE_START) -> dict[str, Any]:
    """The page's numbers from the stored rows (the module docstring gives the rules)."""
    facts = {s.session_id: s for s in sessions}
    seats = list(seats)
    checked_in_at: dict[str, int] = defaultdict(int)
    for c in seats:
        if c.status == St.CHECKED_IN.value:
            checked_in_at[c.session_id] += c.n
    states = {sid: session_state(s, now, checked_in=checked_in_at[sid], opens_before=opens_before)
              for sid, s in facts.items()}

    by: dict[str, dict[str, dict[str, int]]] = {d: defaultdict(_zero) for d in ("session", "lab", "agency", "activity")}
    overall = _zero()
    for c in seats:
        field = _STATUS_FIELD.get(c.status)
        decided = c.status in _DECIDED and states.get(c.session_id) in ("window_closed", "closed")
        seat_rows = (by["session"][c.session_id], by["lab"][c.lab_id])
        person_rows = (by["agency"][c.agency_id], by["activity"][c.activity_id], overall)
        for row in (*seat_rows, *person_rows):
            if field:
                row[field] += c.n
            if decided:
                row["in_closed_windows"] += c.n
                row["closed_no_show"] += c.n if c.status == St.NO_SHOW.value else 0
        if c.status in _SCHEDULED:
            for row in seat_rows:
                row["scheduled"] += c.n
            if not c.arrival:  # a person is scheduled once, in their home session
                for row in person_rows:
                    row["scheduled"] += c.n

    tallies: dict[str, dict[str, dict[str, int]]] = {
        d: defaultdict(_tally_sessions) for d in ("lab", "agency", "activity")}
    tally_all = _tally_sessions()
    names: dict[str, str] = {}
    for sid, s in facts.items():
        for t in (tallies["lab"][s.lab_id], tallies["agency"][s.agency_id], tallies["activity"][s.activity_id],
                  tally_all):
            t["sessions"] += 1
            t[f"sessions_{states[sid]}"] += 1
        if s.agency_name and s.agency_id not in names:
            names[s.agency_id] = s.agency_name

    session_rows = []
    for sid, s in sorted(facts.items(), key=lambda kv: (_aware(kv[1].starts_at), kv[0])):
        session_rows.append({
            "session_id": sid, "lab_id": s.lab_id, "agency_id": s.agency_id,
            "agency_name": s.agency_name or names.get(s.agency_id, ""), "activity_id": s.activity_id,
            "starts_at": _aware(s.starts_at).isoformat(), "checkin_closes_at": _aware(s.checkin_closes_at).isoformat(),
            "ends_at": _aware(s.ends_at).isoformat(), "local": lab_local(s.starts_at, s.ends_at, s.utc_offset_minutes),
            "state": states[sid], "closed_by_wall_clock": s.closed_by_wall_clock, "organiser_id": s.organiser_id,
            "accreditation_warning": s.accreditation_warning, **_rate(by["session"][sid], threshold, None)})

    labs = []
    for lab_id in sorted(set(by["lab"]) | set(tallies["lab"])):
        t = tallies["lab"][lab_id]
        under_way = sum(t[f"sessions_{state}"] for state in UNDER_WAY)
        seen = lab_last_seen.get(lab_id)
        silent = under_way > 0 and (seen is None or now.timestamp() - seen > silent_after_s)
        labs.append({"lab_id": lab_id, **_rate(by["lab"][lab_id], threshold, t), "silent": silent,
                     "sessions_in_progress": under_way,
                     "last_event_at": datetime.fromtimestamp(seen, UTC).isoformat() if seen else None})
    agencies = [{"agency_id": k, "agency_name": names.get(k, ""),
                 **_rate(by["agency"][k], threshold, tallies["agency"][k])}
                for k in sorted(set(by["agency"]) | set(tallies["agency"]))]
    activities = [{"activity_id": k, **_rate(by["activity"][k], threshold, tallies["activity"][k])}
                  for k in sorted(set(by["activity"]) | set(tallies["activity"]))]
    warnings = [{"session_id": r["session_id"], "agency_id": r["agency_id"], "organiser_id": r["organiser_id"],
                 "warning": r["accreditation_warning"]} for r in session_rows if r["accreditation_warning"]]
    return {
        "generated_at": now.isoformat(), "threshold": threshold,
        "checkin_opens_before_minutes": opens_before.total_seconds() / 60,
        "overall": _rate(overall, threshold, tally_all),
        "by_agency": agencies, "by_lab": labs, "by_activity": activities, "sessions": session_rows,
        "accreditation_warnings": warnings,
    }


# ---- reading the store ----------------------------------------------------------------------------

def _session_facts(s: Session) -> list[SessionFacts]:
    r = m.SessionSummaryRow
    return [SessionFacts(session_id=x.session_id, lab_id=x.lab_id, agency_id=x.agency_id, activity_id=x.activity_id,
                         starts_at=x.starts_at, checkin_closes_at=x.checkin_closes_at, ends_at=x.ends_at,
                         final=x.final, closed=x.closed, closed_by_wall_clock=x.closed_by_wall_clock,
                         agency_name=x.agency_name or "", utc_offset_minutes=x.utc_offset_minutes,
                         organiser_id=x.organiser_id, accreditation_warning=x.accreditation_warning)
            for x in s.scalars(select(r))]


def _seat_counts(s: Session) -> list[SeatCount]:
    a = m.Attendance
    arrival = a.rescheduled_from.is_not(None)
    rows = s.execute(select(a.session_id, a.lab_id, a.agency_id, a.activity_id, a.status, arrival, func.count())
                     .group_by(a.session_id, a.lab_id, a.agency_id, a.activity_id, a.status, arrival)).all()
    return [SeatCount(*row[:5], bool(row[5]), int(row[6])) for row in rows]


def attendance_overview(store: ResultsStore, *, threshold: float, silent_after_s: float,
                        lab_last_seen: Mapping[str, float], now: datetime | None = None,
                        opens_before: timedelta = CHECKIN_OPENS_BEFORE_START) -> dict[str, Any]:
    """Counts and rates for the page, ``/attendance.json`` and ``/metrics``: ids and counts, never a NIP."""
    with Session(store.engine) as s:
        sessions, seats = _session_facts(s), _seat_counts(s)
    out = build_overview(sessions, seats, now=now or datetime.now(UTC), threshold=threshold,
                         silent_after_s=silent_after_s, lab_last_seen=lab_last_seen, opens_before=opens_before)
    out["results"] = results_by_standing(store)
    return out


def absent(store: ResultsStore, session_id: str) -> dict[str, Any] | None:
    """Who is not in the seat: the session's no-shows and those moved away (NIPs: behind the operator token).

    None when the store knows nothing of the session."""
    a = m.Attendance
    with Session(store.engine) as s:
        summary = s.get(m.SessionSummaryRow, session_id)
        rows = s.execute(select(a.nip, a.agency_id, a.activity_id, a.status, a.rescheduled_to, a.rescheduled_from,
                                a.late).where(a.session_id == session_id,
                                              a.status.in_([St.NO_SHOW.value, St.RESCHEDULED.value]))
                         .order_by(a.status, a.agency_id, a.nip)).all()
        if summary is None and not rows:
            return None
    session: dict[str, Any] = {"session_id": session_id}
    if summary is not None:
        session.update(lab_id=summary.lab_id, agency_id=summary.agency_id, agency_name=summary.agency_name or "",
                       activity_id=summary.activity_id, final=summary.final, closed=summary.closed,
                       local=lab_local(summary.starts_at, summary.ends_at, summary.utc_offset_minutes))
    return {"session": session, "absent": [dict(r._mapping) for r in rows]}


def held_back(store: ResultsStore, limit: int = HELD_BACK_LISTED) -> dict[str, Any]:
    """Current results that do not count (incomplete, not recognised), with the status of their SI ASN pushes
    (``held`` until an operator releases or voids one; none for a result that is never sent).

    NIPs: behind the operator token only. At most ``limit`` rows, incomplete first; ``total`` says how many."""
    r, o = m.Result, m.SiasnOutbox
    where = (r.status == "current", r.standing != "counted")
    with Session(store.engine) as s:
        total = s.scalar(select(func.count()).select_from(r).where(*where)) or 0
        rows = [dict(x._mapping) for x in s.execute(
            select(r.nip, r.activity_id, r.result_version, r.session_id, r.agency_id, r.standing, r.standing_detail,
                   r.organiser_id).where(*where).order_by(r.standing, r.activity_id, r.nip).limit(limit))]
        pushes: dict[tuple[str, str, int], set[str]] = defaultdict(set)
        for nip, activity, version, status in s.execute(
                select(o.nip, o.activity_id, o.result_version, o.status).join(
                    r, (o.nip == r.nip) & (o.activity_id == r.activity_id) & (o.result_version == r.result_version))
                .where(*where)):
            pushes[(nip, activity, version)].add(status)
    for row in rows:
        row["push_status"] = ",".join(sorted(pushes.get((row["nip"], row["activity_id"], row["result_version"]), ())))
    return {"total": int(total), "results": rows}


def no_shows(store: ResultsStore, agency_id: str) -> list[dict[str, Any]]:
    """Who to reschedule: the agency's participants whose latest status in a session is no-show."""
    a = m.Attendance
    with Session(store.engine) as s:
        rows = s.execute(select(a.session_id, a.lab_id, a.activity_id, a.nip, a.status, a.rescheduled_to)
                         .where(a.agency_id == agency_id, a.status == St.NO_SHOW.value)
                         .order_by(a.session_id, a.nip)).all()
    return [dict(r._mapping) for r in rows]
