"""Live attendance for operators: counts and no-show rates per session, lab, agency, activity and overall.

Read from the results store, so every worker (and the page, the JSON endpoint and /metrics) shows the same
numbers whichever partitions it owns. Two ways of counting, on purpose:
- per **session** and **lab**: rows as they are (a participant moved away counts as `rescheduled` in the old
  session and as scheduled in the new one);
- per **agency**, **activity** and **overall**: persons. A susulan arrival is counted in the participant's
  home agency and activity, and not scheduled twice, so a no-show who attends a later slot is attended.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from schemas.domain import AttendanceStatus as St
from sinks import models as m
from sinks.store import SCHEDULED_STATUSES, ResultsStore

COUNTS = ("scheduled", "checked_in", "no_show", "rescheduled", "unexpected")
_STATUS_FIELD = {St.CHECKED_IN.value: "checked_in", St.NO_SHOW.value: "no_show", St.RESCHEDULED.value: "rescheduled",
                 St.UNEXPECTED.value: "unexpected"}
_SCHEDULED = {s.value for s in SCHEDULED_STATUSES}


def _finish(counts: dict[str, int], threshold: float) -> dict[str, Any]:
    rate = round(counts["no_show"] / counts["scheduled"], 4) if counts["scheduled"] else 0.0
    return {**counts, "no_show_rate": rate, "above_threshold": rate > threshold}


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at  # SQLite drops the zone


def session_state(row: m.SessionSummaryRow, now: datetime) -> str:
    if row.closed:
        return "closed"
    if row.final:
        return "window_closed"
    return "in_progress" if now >= _aware(row.starts_at) else "scheduled"  # type: ignore[operator]


def attendance_overview(store: ResultsStore, *, threshold: float, silent_after_s: float,
                        lab_last_seen: dict[str, float], now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    a = m.Attendance
    with Session(store.engine) as s:
        grouped = s.execute(
            select(a.session_id, a.lab_id, a.agency_id, a.activity_id, a.status, a.rescheduled_from.is_not(None),
                   func.count()).group_by(a.session_id, a.lab_id, a.agency_id, a.activity_id, a.status,
                                          a.rescheduled_from.is_not(None))).all()
        sessions = list(s.scalars(select(m.SessionSummaryRow).order_by(m.SessionSummaryRow.starts_at)))

    def zero() -> dict[str, int]:
        return dict.fromkeys(COUNTS, 0)

    by: dict[str, dict[str, dict[str, int]]] = {d: defaultdict(zero) for d in ("session", "lab", "agency", "activity")}
    overall = zero()
    for session_id, lab_id, agency_id, activity_id, status, arrival, n in grouped:
        field = _STATUS_FIELD.get(status)
        for dim, key in (("session", session_id), ("lab", lab_id)):
            if status in _SCHEDULED:
                by[dim][key]["scheduled"] += n
            if field:
                by[dim][key][field] += n
        for target in (by["agency"][agency_id], by["activity"][activity_id], overall):
            if status in _SCHEDULED and not arrival:
                target["scheduled"] += n
            if field:
                target[field] += n

    session_rows = []
    active_labs: dict[str, int] = defaultdict(int)
    for row in sessions:
        state = session_state(row, now)
        if state in ("in_progress", "window_closed"):
            active_labs[row.lab_id] += 1
        session_rows.append({"session_id": row.session_id, "lab_id": row.lab_id, "agency_id": row.agency_id,
                             "activity_id": row.activity_id, "starts_at": _aware(row.starts_at).isoformat(),  # type: ignore[union-attr]
                             "ends_at": _aware(row.ends_at).isoformat(), "state": state,  # type: ignore[union-attr]
                             "closed_by_wall_clock": row.closed_by_wall_clock,
                             **_finish(by["session"][row.session_id], threshold)})
    labs = []
    for lab_id in sorted(set(by["lab"]) | set(active_labs)):
        seen = lab_last_seen.get(lab_id)
        silent = active_labs.get(lab_id, 0) > 0 and (seen is None or now.timestamp() - seen > silent_after_s)
        labs.append({"lab_id": lab_id, **_finish(by["lab"][lab_id], threshold), "silent": silent,
                     "sessions_in_progress": active_labs.get(lab_id, 0),
                     "last_event_at": datetime.fromtimestamp(seen, UTC).isoformat() if seen else None})
    return {
        "generated_at": now.isoformat(), "threshold": threshold,
        "overall": _finish(overall, threshold),
        "by_agency": [{"agency_id": k, **_finish(v, threshold)} for k, v in sorted(by["agency"].items())],
        "by_lab": labs,
        "by_activity": [{"activity_id": k, **_finish(v, threshold)} for k, v in sorted(by["activity"].items())],
        "sessions": session_rows,
    }


def no_shows(store: ResultsStore, agency_id: str) -> list[dict[str, Any]]:
    """Who to reschedule: the agency's participants whose latest status in a session is no-show."""
    a = m.Attendance
    with Session(store.engine) as s:
        rows = s.execute(select(a.session_id, a.lab_id, a.activity_id, a.nip, a.status, a.rescheduled_to)
                         .where(a.agency_id == agency_id, a.status == St.NO_SHOW.value)
                         .order_by(a.session_id, a.nip)).all()
    return [dict(r._mapping) for r in rows]
