"""Attendance, derived from the facts state keeps: each participant's status, and each session's summary.

Facts are stored as they arrive and statuses are derived from them, so the order in which the schedule and lab
topics are interleaved does not matter: a check-in that arrives before the schedule, or a sheet that arrives
after the session closed, ends in the same place. An attendance row is emitted on a new status and on a new
fact that leaves it unchanged (its ``revision`` counts the facts), with a time that depends only on the facts,
so a replay in any order stores the same rows.
"""

from __future__ import annotations

from typing import Any

from schemas import events as ev
from schemas.domain import AttendanceStatus as St
from streams import results
from streams.session_state import ParticipantState, Scheduled, SessionMeta, SessionState
from streams.turn import PIPELINE_ID, UNKNOWN_LAB, Turn, at, digest


def fact(t: Turn, part: ParticipantState) -> None:
    """Remember which attendance facts (events) are known: their count orders attendance rows."""
    facts = part.setdefault("facts", [])
    eid = str(t.trigger.event_id)
    if eid not in facts:
        facts.append(eid)


def revision(s: SessionState, part: ParticipantState) -> int:
    return len(part.get("facts", [])) + (1 if s["window_closed"] else 0)


def late(s: SessionState, part: ParticipantState) -> bool:
    meta, checkin = s["meta"], part["checkin"]
    return bool(meta and checkin and at(checkin["at"]) > at(meta["checkin_closes_at"]))


def status(t: Turn, s: SessionState, part: ParticipantState) -> St | None:
    if part["rescheduled_to"]:
        return St.RESCHEDULED
    if part["unscheduled"]:
        return St.UNEXPECTED if part["checkin"] else St.UNSCHEDULED
    if part["scheduled"] is None:
        return St.UNEXPECTED if part["checkin"] or part["sheets"] else None
    if part["checkin"] or part["sheets"]:
        if late(s, part) and not t.rules.attendance.late_admitted:
            return St.NO_SHOW
        return St.CHECKED_IN
    return St.NO_SHOW if s["window_closed"] and s["meta"] else St.SCHEDULED


def status_time(s: SessionState, part: ParticipantState, status: St) -> str | None:
    """When the fact that decided this status happened: the same whatever order the facts arrived in."""
    meta: SessionMeta | dict[str, Any] = s["meta"] or {}
    present = part["checkin"]["at"] if part["checkin"] else min(
        (x["at"] for x in part["sheets"].values()), key=at, default=None)
    if status in (St.CHECKED_IN, St.UNEXPECTED) and present:
        return present
    if status is St.NO_SHOW:
        return meta.get("checkin_closes_at") or present
    if status is St.RESCHEDULED:
        return part["rescheduled_at"]
    if status is St.UNSCHEDULED:
        return part["unscheduled_at"]
    sched = part["scheduled"]
    return (sched["at"] if sched else None) or meta.get("starts_at") or present


def refresh(t: Turn, s: SessionState, part: ParticipantState) -> None:
    """Emit the participant's row if it changed, score them if they can be, and store them."""
    new = status(t, s, part)
    # Emit on a new status, and on a new fact that leaves it unchanged: the last row stored then always
    # carries every fact, so replays in any order store the same row.
    if new is not None and (new != part["status"] or revision(s, part) != part.get("revision")):
        emit_attendance(t, s, part, new)
        if s["window_closed"]:
            t.summary_due.add(part["session_id"])
    results.maybe_score(t, s, part)
    t.state.put_participant(part)


def refresh_session(t: Turn, session_id: str, s: SessionState) -> None:
    for nip in s["nips"]:
        refresh(t, s, t.state.participant(session_id, nip))


def advance_window(t: Turn, s: SessionState, session_id: str) -> None:
    """Event time closes the check-in window: the first lab event at or after the closing time."""
    meta = s["meta"]
    if meta is None or s["window_closed"] or t.trigger.occurred_at < at(meta["checkin_closes_at"]):
        return
    s["window_closed"] = True
    t.state.put_session(session_id, s)
    refresh_session(t, session_id, s)
    t.summary_due.add(session_id)


def emit_attendance(t: Turn, s: SessionState, part: ParticipantState, new: St) -> None:
    previous = part["status"]
    meta: SessionMeta | dict[str, Any] = s["meta"] or {}
    sched: Scheduled | dict[str, Any] = part["scheduled"] or {}
    is_late = late(s, part)
    rev = revision(s, part)
    when = status_time(s, part, new)
    assert when is not None  # a status is only derived from a fact with a time
    t.out.append(ev.new_event(
        ev.AttendanceChanged, lab_id=PIPELINE_ID, occurred_at=at(when),
        event_id=ev.derived_id("attendance", part["session_id"], part["nip"], new, rev),
        payload={
            "session_id": part["session_id"],
            "activity_id": sched.get("home_activity_id") or meta.get("activity_id", "unknown"),
            "agency_id": sched.get("home_agency_id") or meta.get("agency_id", "unknown"),
            "lab_id": meta.get("lab_id") or UNKNOWN_LAB, "nip": part["nip"], "status": new,
            "previous": previous, "late": is_late, "correction": previous == St.NO_SHOW and new == St.CHECKED_IN,
            "rescheduled_to": part["rescheduled_to"],
            "rescheduled_from": sched.get("rescheduled_from"),
            "revision": rev,
        },
    ))
    part["status"] = new.value
    part["late"] = is_late
    part["revision"] = rev


def accreditation_warning(t: Turn, meta: SessionMeta) -> str | None:
    """Told when the session is planned: an organiser whose accreditation ends before or soon after the
    session, or that no registry knows, makes results that will not be recognised."""
    organiser = meta.get("organiser_id")
    on = at(meta["starts_at"]).date()
    if t.rules.accreditation is None:
        return f"organiser {organiser}: no accreditation registry is loaded" if organiser else None
    return t.rules.accreditation.warning(organiser, on)


def emit_summary(t: Turn, session_id: str) -> None:
    s = t.state.session(session_id)
    meta = s["meta"]
    if meta is None:
        return
    counts = {st: 0 for st in St}
    rev = int(bool(s["closed"])) + int(bool(s.get("closed_by_wall_clock")))
    for nip in s["nips"]:
        part = t.state.participant(session_id, nip)
        rev += revision(s, part)
        if part["status"] is not None:
            counts[St(part["status"])] += 1
    scheduled = counts[St.SCHEDULED] + counts[St.CHECKED_IN] + counts[St.NO_SHOW] + counts[St.RESCHEDULED]
    summary: dict[str, Any] = {
        "session_id": session_id, "activity_id": meta["activity_id"], "agency_id": meta["agency_id"],
        "lab_id": meta.get("lab_id") or UNKNOWN_LAB, "starts_at": meta["starts_at"],
        "checkin_closes_at": meta["checkin_closes_at"], "ends_at": meta["ends_at"], "closed": bool(s["closed"]),
        "closed_by_wall_clock": bool(s.get("closed_by_wall_clock")),
        "scheduled": scheduled, "checked_in": counts[St.CHECKED_IN], "no_show": counts[St.NO_SHOW],
        "rescheduled": counts[St.RESCHEDULED], "unexpected": counts[St.UNEXPECTED],
        "no_show_rate": round(counts[St.NO_SHOW] / scheduled, 4) if scheduled else 0.0,
        "final": bool(s["window_closed"]), "revision": rev,
    }
    # Absent when they say nothing, so the summaries of sessions planned before them keep their ids.
    if meta.get("agency_name"):
        summary["agency_name"] = meta["agency_name"]
    if meta.get("organiser_id"):
        summary["organiser_id"] = meta["organiser_id"]
    warning = accreditation_warning(t, meta)
    if warning:
        summary["accreditation_warning"] = warning
    # A time that only depends on where the session is, so a replay in any order stores the same row.
    when = meta["ends_at"] if s["closed"] else meta["checkin_closes_at"] if s["window_closed"] else meta["starts_at"]
    t.out.append(ev.new_event(
        ev.SessionSummary, lab_id=PIPELINE_ID, occurred_at=at(when),
        event_id=ev.derived_id("summary", session_id, digest(summary)), payload=summary,
    ))
