"""What the scheduler and the pipeline's own control topic say: sessions and who is expected in them, moves,
rescores, and the wall-clock close of a check-in window whose lab went silent.

A schedule is trusted (it comes from BKN's scheduler, not a lab), so these rules are not judged by ``LabTrust``;
they refuse only what cannot be applied (an unknown blueprint, a move of a participant nobody scheduled).
"""

from __future__ import annotations

from schemas import events as ev
from schemas.blueprint import BlueprintError
from schemas.decode import Rejected
from schemas.reasons import Reason
from streams import admission, holding
from streams.attendance import fact, refresh, refresh_session
from streams.results import home
from streams.state_codec import meta_of
from streams.turn import PIPELINE_ID, Turn, at


def session_scheduled(t: Turn, p: ev.SessionScheduledPayload) -> None:
    latest = t.registry.get(p.blueprint_id)
    if latest is None:
        raise Rejected(Reason.UNKNOWN_BLUEPRINT,
                       f"blueprint {p.blueprint_id!r} is not loaded ({', '.join(t.registry.ids())})")
    s = t.state.session(p.session_id)
    old = s["meta"]
    if old is None:
        admission.forget_unscheduled(t, p.session_id)
    version = (old.get("blueprint_version") if old else None) or latest.version
    # The host is the payload's lab, never the envelope's (that is the scheduler); a schedule without one
    # keeps the lab that first spoke for the session (LabTrust).
    s["meta"] = meta_of(p, lab_id=p.lab_id or (old.get("lab_id") if old else None), event_id=str(t.trigger.event_id),
                        blueprint_version=version)  # a session keeps the key it was scheduled with
    if s["max_at"] and at(s["max_at"]) >= p.checkin_closes_at:
        s["window_closed"] = True
    t.state.put_session(p.session_id, s)
    refresh_session(t, p.session_id, s)
    holding.release(t, p.session_id, t.state.session(p.session_id))
    t.summary_due.add(p.session_id)  # operators see the session as soon as it is planned


def participant_scheduled(t: Turn, p: ev.ParticipantScheduledPayload) -> None:
    s = t.state.session(p.session_id)
    part = t.state.participant(p.session_id, p.nip)
    fact(t, part)
    part["scheduled"] = {
        "at": t.trigger.occurred_at.isoformat(), "name": p.name, "tier": p.position_tier.value,
        "event_id": str(t.trigger.event_id),
        "standard_levels": {c.value: v for c, v in (p.standard_levels or {}).items()} or None,
        "rescheduled_from": p.rescheduled_from,
        "home_agency_id": p.home_agency_id, "home_activity_id": p.home_activity_id,
        "home_purpose": p.home_purpose.value if p.home_purpose else None,
    }
    part["unscheduled"] = False
    admission.track(t, s, p.session_id, p.nip, expected=True)
    if p.nip in s.get("unexpected_nips", ()):
        s["unexpected_nips"].remove(p.nip)
    refresh(t, s, part)


def participant_rescheduled(t: Turn, p: ev.ParticipantRescheduledPayload) -> None:
    part = t.state.participant(p.from_session_id, p.nip)
    sched = part["scheduled"]
    if sched is None:
        raise Rejected(Reason.UNKNOWN_PARTICIPANT, f"participant is not scheduled in session {p.from_session_id}")
    s = t.state.session(p.from_session_id)
    fact(t, part)
    part["rescheduled_to"] = p.to_session_id
    part["rescheduled_at"] = t.trigger.occurred_at.isoformat()
    admission.track(t, s, p.from_session_id, p.nip)
    refresh(t, s, part)
    # The move's arrival side belongs to the target session's partition: re-key it there as a schedule event.
    t.out.append(ev.new_event(
        ev.ParticipantScheduled, lab_id=PIPELINE_ID, occurred_at=t.trigger.occurred_at,
        event_id=ev.derived_id("rescheduled", t.trigger.event_id),
        payload={"session_id": p.to_session_id, "nip": p.nip, "name": sched["name"], "position_tier": sched["tier"],
                 "standard_levels": sched["standard_levels"], "rescheduled_from": p.from_session_id,
                 **home(s, part)},
    ))


def participant_unscheduled(t: Turn, p: ev.ParticipantUnscheduledPayload) -> None:
    s = t.state.session(p.session_id)
    part = t.state.participant(p.session_id, p.nip)
    fact(t, part)
    part["unscheduled"] = True
    part["unscheduled_at"] = t.trigger.occurred_at.isoformat()
    admission.track(t, s, p.session_id, p.nip)
    refresh(t, s, part)


def rescore_requested(t: Turn, p: ev.RescoreRequestedPayload) -> None:
    """Recompute, in this session, the results filed under the requested activity: the session's own
    participants when it is that activity's, and susulan arrivals from it. Others sat here keep their
    version (their activity's rescore comes with its own requests)."""
    s = t.state.session(p.session_id)
    meta = s["meta"]
    if meta is None:
        raise Rejected(Reason.UNKNOWN_SESSION, f"session {p.session_id} is not scheduled")
    if meta["blueprint_id"] != p.blueprint_id:
        raise Rejected(Reason.UNKNOWN_BLUEPRINT,
                       f"session {p.session_id} uses {meta['blueprint_id']}, not {p.blueprint_id}")
    if meta["activity_id"] != p.activity_id and not any(
            home(s, t.state.participant(p.session_id, nip))["home_activity_id"] == p.activity_id
            for nip in s["nips"]):
        raise Rejected(Reason.UNKNOWN_SESSION, f"session {p.session_id} has no participant of activity {p.activity_id}")
    reload = t.rules.reload
    if t.registry.get(p.blueprint_id, p.blueprint_version) is None and reload is not None:
        try:
            t.registry = reload()  # the corrected file was added after the worker started
        except BlueprintError as exc:  # a bad or conflicting file: this request fails, the worker goes on
            raise Rejected(Reason.UNKNOWN_BLUEPRINT, f"blueprint {p.blueprint_id} version {p.blueprint_version} "
                           f"could not be loaded: {exc}") from None
    if t.registry.get(p.blueprint_id, p.blueprint_version) is None:
        raise Rejected(Reason.UNKNOWN_BLUEPRINT,
                       f"blueprint {p.blueprint_id} version {p.blueprint_version} is not loaded")
    s.setdefault("rescores", {})[p.activity_id] = {"blueprint_version": p.blueprint_version,
                                                  "event_id": str(t.trigger.event_id)}
    t.state.put_session(p.session_id, s)
    refresh_session(t, p.session_id, s)


def checkin_window_closed(t: Turn, p: ev.CheckinWindowClosedPayload) -> None:
    """The wall-clock fallback: the lab went silent, so no event time will ever close the window."""
    s = t.state.session(p.session_id)
    if s["meta"] is None or s["window_closed"]:
        return
    s["window_closed"] = True
    s["closed_by_wall_clock"] = True
    t.state.put_session(p.session_id, s)
    refresh_session(t, p.session_id, s)
    t.summary_due.add(p.session_id)
