"""What the worker does with each schedule, lab or control event, apart from Kafka and Faust.

:class:`SessionProcessor` applies one input event at a time to the state (``streams/session_state.py``
declares it) and returns the events to emit. Each input event type of the contract has its rule in
``HANDLERS``; the table is checked against the contract when this module is imported, so an event type
without a rule stops the worker at start-up instead of dead-lettering every such event as it comes.

Where each concern lives: ``schedule.py`` (schedule and control events), ``lab.py`` (lab events),
``admission.py`` (who may say what, and the caps on state input alone creates), ``holding.py`` (lab events that
came before their schedule), ``attendance.py`` (statuses and summaries), ``results.py`` (when and what to
score), ``sheets.py`` (how a sheet is stored), ``turn.py`` (what one event's handling may touch).

Facts are stored as they arrive and everything else is derived from them, so the processor does not care in
which order the schedule and lab topics are interleaved. Emitted events carry deterministic ids, so
reprocessing after a crash re-emits duplicates the sinks ignore, never different results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from schemas import events as ev
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from streams import admission, attendance, holding, lab, schedule, scoring
from streams.holding import held_events
from streams.policies import Accreditations, AttendancePolicy, LabTrust, StateLimits, Verdict
from streams.session_state import StateViews, participant_key
from streams.turn import PIPELINE_ID, UNKNOWN_LAB, Handler, Position, Turn

__all__ = [
    "HANDLERS", "LAB_FACTS", "PIPELINE_ID", "UNKNOWN_LAB", "WORKER_INPUTS", "Accreditations", "AttendancePolicy",
    "LabTrust", "Position", "SessionProcessor", "StateLimits", "Verdict", "held_events", "participant_key",
]

#: Events a lab sends about its own session: judged against the session's schedule (LabTrust) before they count.
LAB_FACTS = (ev.ParticipantCheckedIn, ev.SectionStarted, ev.AnswersSaved, ev.SectionSubmitted, ev.SessionClosed)

#: The contract's events the worker reads: those of its input topics. An EventBatch is not one of them: the
#: intake unpacks it (schemas/decode.py ``unpack``) and hands over the events inside.
WORKER_INPUTS: tuple[type[ev.Event], ...] = tuple(
    cls for cls in ev.ALL_EVENTS if cls.topic in topics.INPUT_TOPICS and cls is not ev.EventBatch)

#: The rule for each input event type, called with the event's payload.
HANDLERS: Mapping[type[ev.Event], Handler] = {
    ev.SessionScheduled: schedule.session_scheduled,
    ev.ParticipantScheduled: schedule.participant_scheduled,
    ev.ParticipantRescheduled: schedule.participant_rescheduled,
    ev.ParticipantUnscheduled: schedule.participant_unscheduled,
    ev.RescoreRequested: schedule.rescore_requested,
    ev.CheckinWindowClosed: schedule.checkin_window_closed,
    ev.ParticipantCheckedIn: lab.checked_in,
    ev.SectionStarted: lab.section_started,
    ev.AnswersSaved: lab.answers_saved,
    ev.SectionSubmitted: lab.section_submitted,
    ev.SessionClosed: lab.session_closed,
}


def check_handlers(handlers: Mapping[type[ev.Event], Handler], inputs: Iterable[type[ev.Event]]) -> None:
    """Raise unless every input event type has a rule and every rule is for an input event type."""
    inputs = set(inputs)
    missing = sorted(cls.__name__ for cls in inputs - handlers.keys())
    extra = sorted(cls.__name__ for cls in handlers.keys() - inputs)
    if missing or extra:
        raise TypeError(f"SessionProcessor.HANDLERS does not match the contract's input events: "
                        f"no rule for {missing or 'none'}; a rule for a type the worker never reads: {extra or 'none'}")


check_handlers(HANDLERS, WORKER_INPUTS)

_DEFAULT_ATTENDANCE, _DEFAULT_LIMITS, _DEFAULT_TRUST = AttendancePolicy(), StateLimits(), LabTrust()


class SessionProcessor:
    def __init__(
        self,
        registry: BlueprintRegistry,
        policy: scoring.ScoringPolicy,
        sessions: MutableMapping[str, Any],
        participants: MutableMapping[str, Any],
        attendance: AttendancePolicy = _DEFAULT_ATTENDANCE,
        reload: Callable[[], BlueprintRegistry] | None = None,
        limits: StateLimits = _DEFAULT_LIMITS,
        trust: LabTrust = _DEFAULT_TRUST,
        accreditation: Accreditations | None = None,
    ) -> None:
        # The configuration the rules read (``turn.Rules``); tests change it between events.
        self.policy = policy
        self.attendance = attendance
        self.limits = limits
        self.trust = trust
        #: Who may run a recognised test (schemas/accreditation.py); None: BKN's own sessions only.
        self.accreditation = accreditation
        #: A fresh registry from the blueprint folders, for a rescore naming a version installed later.
        self.reload = reload
        #: The blueprints; replaced by a reloaded registry when a rescore names a version installed later.
        self.registry = registry
        #: The two key-value views of state (Faust tables behind ``TableOverlay`` in the worker, dicts in tests).
        self.sessions = sessions
        self.participants = participants
        #: The partition being processed (set by the intake): the caps count per partition, as state is.
        self.scope = "0"
        #: Where the event being handled was read (set by the intake): a held event's dead letter points there.
        self.position: Position = ("", 0, 0, None)
        #: (reason, source topic) of the dead letters the last ``handle`` emitted for held events.
        self.late_rejections: list[tuple[str, str]] = []

    def handle(self, event: ev.Event) -> list[ev.Event]:
        """Apply one input event; return the events to emit. Raises Rejected for input to dead-letter."""
        t = Turn(self, self.registry, StateViews(self.sessions, self.participants), self.scope, self.position,
                 HANDLERS, event)
        try:
            if isinstance(event, LAB_FACTS):
                s = t.state.session(event.key())
                if s["meta"] is None:
                    holding.hold(t, s, event)
                else:
                    admission.lab_fact(t, s, event)
            else:
                t.apply(event)
            for session_id in sorted(t.summary_due):
                attendance.emit_summary(t, session_id)
        finally:
            self.registry = t.registry  # a registry reloaded for a rescore stays loaded, even if it was refused
            self.late_rejections = t.late_rejections
        return t.out
