"""Lab events that arrive before their session's schedule: held, unapplied, and judged once it arrives.

A lab event can only be judged (``LabTrust``) against a schedule, and the schedule and lab topics are read in
no fixed order; holding the early ones makes the verdict the same whatever the order. A held event is kept
with the participant it is about (a session's early answer sheets together outgrow one state record, which
must fit in one changelog message); the session keeps their order. Held events count against
``StateLimits.held_events`` per partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas import events as ev
from schemas.decode import Rejected
from schemas.reasons import Reason
from streams import admission
from streams.deadletter import dead_letter
from streams.session_state import HeldEvent, SessionState, unscheduled_key
from streams.state_codec import held_event, held_item
from streams.turn import Turn


def held_events(sessions: Mapping[str, Any], scopes: Iterable[str]) -> int:
    """Lab events held for sessions without a schedule in these partitions (``StateLimits.held_events``)."""
    return sum((sessions.get(unscheduled_key(scope)) or {}).get("held", 0) for scope in scopes)


def hold(t: Turn, s: SessionState, event: ev.Event) -> None:
    """Keep a lab event that came before its session's schedule, unapplied, until the schedule says who
    hosts the session and when (bounded per partition: ``StateLimits.held_events``)."""
    session_id = event.key()
    stored = t.state.unscheduled(t.scope)
    held = stored.get("held", 0) if stored else 0
    if held >= t.rules.limits.held_events:  # before anything changes, as every refusal
        raise Rejected(Reason.STATE_LIMIT, f"{held} lab events of sessions without a schedule are held "
                       "already (CACT_HELD_EVENTS_MAX)")
    admission.admit_session(t, session_id)
    registry = t.state.unscheduled(t.scope)
    assert registry is not None  # admit_session stored it
    registry["held"] = held + 1
    t.state.put_unscheduled(t.scope, registry)
    seq = s.get("held_seq", 0)
    s["held_seq"] = seq + 1
    item = held_item(seq, event, t.position)
    nip = getattr(event.payload, "nip", None)
    if nip is None:
        s.setdefault("held", []).append(item)
    else:
        part = t.state.participant(session_id, nip)
        part.setdefault("held", []).append(item)
        t.state.put_participant(part)
        if nip not in s.setdefault("held_nips", []):
            s["held_nips"].append(nip)
    t.state.put_session(session_id, s)


def release(t: Turn, session_id: str, s: SessionState) -> None:
    """The schedule is known: judge and apply the held events in the order they came. One refused now is
    dead-lettered on its own, pointing at the record it came in (``Turn.late_rejections``)."""
    held: list[HeldEvent] = s.pop("held", [])
    for nip in s.pop("held_nips", []):
        part = t.state.held_participant(session_id, nip)
        held += part.pop("held", [])
        t.state.put_participant(part)
    s.pop("held_seq", None)
    if not held:
        return
    held.sort(key=lambda item: item["seq"])  # in the order they came
    registry = t.state.unscheduled(t.scope)
    if registry is not None:
        registry["held"] = max(0, registry.get("held", 0) - len(held))
        t.state.put_unscheduled(t.scope, registry)
    t.state.put_session(session_id, s)
    schedule_event = t.trigger
    for item in held:
        event = held_event(item)
        try:
            admission.lab_fact(t, t.state.session(session_id), event)
        except Rejected as exc:
            topic, partition, offset, index = item["position"]
            detail = f"held until the schedule arrived: {exc.detail}"
            if index is not None:
                detail = f"events[{index}]: {detail}"
            t.out.append(dead_letter(topic=topic, partition=partition, offset=offset, index=index,
                                     key=session_id.encode(), value=event.to_bytes(),
                                     timestamp=event.occurred_at.timestamp(),  # the same on every replay
                                     reason=exc.reason, detail=detail))
            t.late_rejections.append((exc.reason, topic))
    t.trigger = schedule_event
