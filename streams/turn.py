"""One turn of the processor: what handling one input event may read, change and emit.

A :class:`Turn` is made for each ``SessionProcessor.handle`` call and dropped after it, so nothing of one
event's handling (its outputs, the summaries it makes due, the event that triggered it) stays on the processor
for the next. The rules (``streams/schedule.py``, ``lab.py``, ``attendance.py``, ``results.py``,
``admission.py``, ``holding.py``) are functions of a turn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson

from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from streams.policies import Accreditations, AttendancePolicy, LabTrust, StateLimits
from streams.scoring import ScoringPolicy
from streams.session_state import StateViews

#: The lab_id of every event the pipeline derives.
PIPELINE_ID = "cact-pipeline"
#: The lab of a session whose schedule names none and for which no lab has spoken yet.
UNKNOWN_LAB = "unknown"
#: Where the record being processed was read: (topic, partition, offset, index in its EventBatch or None).
Position = tuple[str, int, int, int | None]


def at(value: str) -> datetime:
    """A time as state keeps it (ISO 8601 with its offset)."""
    return datetime.fromisoformat(value)


def digest(payload: dict[str, Any]) -> str:
    """What derived ids and change detection hash: the payload's sorted JSON."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:32]


class Rules(Protocol):
    """The processor's configuration, read by the rules on every event (``SessionProcessor`` holds it)."""

    policy: ScoringPolicy
    attendance: AttendancePolicy
    limits: StateLimits
    trust: LabTrust
    #: Who may run a recognised test (schemas/accreditation.py); None: BKN's own sessions only.
    accreditation: Accreditations | None
    #: A fresh registry from the blueprint folders, for a rescore naming a version installed after start-up.
    reload: Callable[[], BlueprintRegistry] | None


#: A rule applying one event type's payload.
Handler = Callable[["Turn", Any], None]


class Turn:
    __slots__ = ("rules", "registry", "state", "scope", "position", "handlers", "trigger", "out", "summary_due",
                 "late_rejections")

    def __init__(self, rules: Rules, registry: BlueprintRegistry, state: StateViews, scope: str, position: Position,
                 handlers: Mapping[type[ev.Event], Handler], trigger: ev.Event) -> None:
        self.rules = rules
        #: The blueprints; a rescore may replace it with a reloaded one, which the processor keeps.
        self.registry = registry
        self.state = state
        #: The partition being processed: the caps count per partition, as state is kept per partition.
        self.scope = scope
        #: Where the event was read: a held event's dead letter points there.
        self.position = position
        self.handlers = handlers
        #: The event being applied: the event handled, or a held event released by it.
        self.trigger = trigger
        self.out: list[ev.Event] = []
        #: Sessions whose summary is emitted once the event is applied.
        self.summary_due: set[str] = set()
        #: (reason, source topic) of the dead letters emitted for held events refused when released.
        self.late_rejections: list[tuple[str, str]] = []

    def apply(self, event: ev.Event) -> None:
        """Apply an event with its type's rule (``streams/processor.py`` holds the table)."""
        self.trigger = event
        self.handlers[type(event)](self, event.payload)
