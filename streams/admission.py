"""Who may say what about a session (``LabTrust``), and how much state input alone may create (``StateLimits``).

Every refusal here happens before the event changes anything, so a refused event is dead-lettered with nothing
to undo; the one exception, a host pinned by the event being judged, is undone by ``lab_fact`` itself.
"""

from __future__ import annotations

from schemas import events as ev
from schemas.decode import Rejected
from schemas.reasons import Reason
from streams.session_state import SessionState
from streams.turn import Turn, at


def lab_fact(t: Turn, s: SessionState, event: ev.Event) -> None:
    """Judge a lab event, then apply it. The first lab to speak for a session whose schedule names no lab
    (an older scheduler) becomes its host, before the event is applied so its rows name it, and only if
    the event is accepted: handlers refuse before they change anything, so undoing the pin is enough."""
    pinned = judge(t, s, event)
    try:
        t.apply(event)
    except Rejected:
        if pinned:
            meta = s["meta"]
            assert meta is not None  # judged against it
            meta["lab_id"] = None
        raise
    if pinned:
        t.summary_due.add(event.key())


def judge(t: Turn, s: SessionState, event: ev.Event) -> bool:
    """Refuse a lab event from another lab than the session's, or stamped far from its schedule; returns
    whether the event's lab was made the host of a session that had none."""
    meta = s["meta"]
    assert meta is not None  # a lab event is judged once the schedule is known (holding.py holds it until then)
    host = meta.get("lab_id")
    if host is not None and event.lab_id != host:
        raise Rejected(Reason.WRONG_LAB, f"session {event.key()} is hosted by lab {host}, not {event.lab_id}")
    occurred = event.occurred_at
    earliest = at(meta["starts_at"]) - t.rules.trust.before_start
    latest = at(meta["ends_at"]) + t.rules.trust.after_end
    if not earliest <= occurred <= latest:
        raise Rejected(Reason.IMPLAUSIBLE_TIME, f"occurred_at {occurred.isoformat()} is outside "
                       f"{earliest.isoformat()} .. {latest.isoformat()} around session {event.key()}'s schedule "
                       "(CACT_LAB_TIME_*_HOURS)")
    if host is not None:
        return False
    meta["lab_id"] = event.lab_id
    t.state.put_session(event.key(), s)
    return True


# --------------------------------------------------------------------------------------------------
# Caps on state that input alone creates; each check runs before anything changes
# --------------------------------------------------------------------------------------------------


def admit_session(t: Turn, session_id: str) -> None:
    """A session first heard of before its schedule: kept, unless the partition holds too many already."""
    registry = t.state.unscheduled(t.scope) or {"ids": []}
    if session_id in registry["ids"]:
        return
    if len(registry["ids"]) >= t.rules.limits.unscheduled_sessions:
        raise Rejected(Reason.STATE_LIMIT, f"session {session_id} is not scheduled and "
                       f"{len(registry['ids'])} unscheduled sessions are kept already "
                       "(CACT_UNSCHEDULED_SESSIONS_MAX)")
    registry["ids"].append(session_id)
    t.state.put_unscheduled(t.scope, registry)


def forget_unscheduled(t: Turn, session_id: str) -> None:
    """The session's schedule arrived: it no longer counts against the partition's cap."""
    registry = t.state.unscheduled(t.scope)
    if registry and session_id in registry["ids"]:
        registry["ids"].remove(session_id)
        t.state.put_unscheduled(t.scope, registry)


def admit(t: Turn, s: SessionState, session_id: str, nip: str) -> None:
    """A NIP first seen in a lab event: kept when scheduled here, or while the session's unexpected
    participants are under their cap."""
    if nip in s["nips"]:
        return
    stored = t.state.stored_participant(session_id, nip)
    if stored is not None and stored.get("scheduled") is not None:
        return
    if not t.state.has_session(session_id):
        admit_session(t, session_id)
    unexpected = s.setdefault("unexpected_nips", [])
    if nip in unexpected:
        return
    if len(unexpected) >= t.rules.limits.unexpected_participants:
        raise Rejected(Reason.STATE_LIMIT, f"{len(unexpected)} participants nobody scheduled are kept for "
                       f"session {session_id} already (CACT_UNEXPECTED_PARTICIPANTS_MAX)")
    unexpected.append(nip)


def track(t: Turn, s: SessionState, session_id: str, nip: str, expected: bool = False) -> None:
    """Add a NIP to the session's participants (within the caps unless the schedule expects it); store ``s``."""
    if nip not in s["nips"]:
        if not expected:
            admit(t, s, session_id, nip)
        elif not t.state.has_session(session_id):
            admit_session(t, session_id)
        s["nips"].append(nip)
    t.state.put_session(session_id, s)
