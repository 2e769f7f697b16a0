"""The ground truth of a simulated day, and its file format, shared by tests and ``cact simulate --truth``.

The truth is what really happened in the labs, independent of how the events travelled: who was scheduled
where, who attended (or was moved, *susulan*, and attended there), each participant's final answer sheets,
who ran each session, and which injected messages must end as dead letters, with their reason. Delivery
faults (an offline lab, clock skew, duplicate sends) never change it: the pipeline must arrive at the same
numbers anyway. It records facts, not rules: whether a result counts (evidence, accreditation) is judged
from these facts by the tests' own re-implementation of the rules (tests/support/independent_scorer.py).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from schemas.domain import AttendanceStatus as St
from schemas.domain import PositionTier, Purpose, Section

#: /2: a participant's ``purpose`` is their home activity's (a susulan's result is categorised by it, not by the
#: host's); ``host_activity_id``, ``host_agency_id``, ``organiser_id``, ``blank`` and ``SessionPlan.organiser_id``.
FORMAT = "cact-simulated-day/2"


@dataclass
class TruthParticipant:
    """One scheduled person. ``session_id``, ``activity_id``, ``agency_id`` and ``purpose`` are always their
    home session's: a susulan's result is filed there and categorised by that purpose. What they sat is
    ``scored_session``, with its ``blueprint_id``, ``organiser_id`` and, when it belongs to another activity,
    ``host_activity_id`` / ``host_agency_id``."""

    session_id: str
    nip: str
    attended: bool
    #: The blueprint of the test they sat (a susulan: the host session's; nobody sat: the home session's).
    blueprint_id: str
    tier: PositionTier
    purpose: Purpose
    activity_id: str
    agency_id: str
    sheets: dict[Section, dict[str, str | None]] = field(default_factory=dict)
    #: ``submitted`` / ``timed_out`` (a sheet), ``not_started`` (no sheet and no autosave: a walk-out).
    completion: dict[Section, str] = field(default_factory=dict)
    rescheduled_to: str | None = None
    attended_susulan: bool = False
    late: bool = False
    #: When they really checked in (the lab's true local time), in the session they sat.
    checked_in_at: datetime | None = None
    #: Set when they sat a session of another activity (a susulan): that session's activity and agency.
    host_activity_id: str | None = None
    host_agency_id: str | None = None
    #: Who ran the session they sat (accreditation registry id); None: BKN itself.
    organiser_id: str | None = None
    #: Checked in and answered nothing (``SimConfig.blank_sheets``).
    blank: bool = False

    @property
    def attended_anywhere(self) -> bool:
        return self.attended or self.attended_susulan

    @property
    def scored_session(self) -> str:
        return self.rescheduled_to if self.attended_susulan and self.rescheduled_to else self.session_id

    def answered(self, section: Section) -> int:
        """Items of the section with an option chosen on the final sheet (or the last autosave)."""
        return sum(v is not None for v in self.sheets.get(section, {}).values())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["sheets"] = {str(k): v for k, v in self.sheets.items()}
        out["completion"] = {str(k): v for k, v in self.completion.items()}
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TruthParticipant:
        return cls(**{**d, "tier": PositionTier(d["tier"]), "purpose": Purpose(d["purpose"]),
                      "sheets": {Section(k): v for k, v in d["sheets"].items()},
                      "completion": {Section(k): v for k, v in d["completion"].items()},
                      "checked_in_at": _dt(d["checked_in_at"])})


@dataclass(frozen=True)
class SessionPlan:
    session_id: str
    lab_id: str
    agency_id: str
    agency_name: str
    central: bool
    activity_id: str
    blueprint_id: str
    purpose: Purpose
    starts_at: datetime
    checkin_closes_at: datetime
    ends_at: datetime
    seats: int
    #: The institution running the session (``SessionScheduled.organiser_id``); None: BKN itself.
    organiser_id: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SessionPlan:
        return cls(**{**d, "purpose": Purpose(d["purpose"]), "starts_at": _dt(d["starts_at"]),
                      "checkin_closes_at": _dt(d["checkin_closes_at"]), "ends_at": _dt(d["ends_at"])})


@dataclass(frozen=True)
class Outage:
    """A lab without network from ``start`` to ``end`` (true time): what it emits meanwhile waits in its spool."""

    lab_id: str
    start: datetime
    end: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Outage:
        return cls(d["lab_id"], _dt(d["start"]), _dt(d["end"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ExpectedDeadLetter:
    """A message injected on purpose, and the reason code the pipeline must dead-letter it with."""

    topic: str
    reason: str
    what: str
    key: str | None = None


@dataclass
class FaultPlan:
    """Delivery faults, drawn from their own RNG so the day itself is the same with or without them."""

    outages: list[Outage] = field(default_factory=list)
    clock_skew: dict[str, float] = field(default_factory=dict)  # lab_id → seconds its clock is ahead (+)
    duplicates: dict[uuid.UUID, int] = field(default_factory=dict)  # event_id → deliveries later it is resent
    malformed_at: list[float] = field(default_factory=list)  # where in the lab stream each one goes (0..1)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class GroundTruth:
    seed: int
    day: date
    sessions: dict[str, SessionPlan]
    participants: dict[tuple[str, str], TruthParticipant]
    silent_sessions: set[str] = field(default_factory=set)
    clock_skew: dict[str, float] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)
    duplicates: int = 0
    deadletters: list[ExpectedDeadLetter] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    # ---- what the pipeline must show ------------------------------------------------------------------

    def attendance(self) -> dict[tuple[str, str], str]:
        """The final attendance status of every (session, NIP) row: home rows and susulan arrivals."""
        out: dict[tuple[str, str], str] = {}
        for (session_id, nip), t in self.participants.items():
            if t.rescheduled_to:
                out[(session_id, nip)] = St.RESCHEDULED.value
                out[(t.rescheduled_to, nip)] = (St.CHECKED_IN if t.attended_susulan else St.NO_SHOW).value
            else:
                out[(session_id, nip)] = (St.CHECKED_IN if t.attended else St.NO_SHOW).value
        return out

    def late(self) -> dict[tuple[str, str], bool]:
        """Checked in after the window by the lab's clock (skew included): what the ``late`` flag must say."""
        out = {}
        for t in self.participants.values():
            if t.attended_anywhere and t.checked_in_at is not None:
                s = self.sessions[t.scored_session]
                skew = self.clock_skew.get(s.lab_id, 0.0)
                out[(t.scored_session, t.nip)] = t.checked_in_at.timestamp() + skew > s.checkin_closes_at.timestamp()
        return out

    def results(self) -> dict[tuple[str, str], TruthParticipant]:
        """(session sat, NIP) → participant, for everyone whose sheets reached the pipeline."""
        return {(t.scored_session, t.nip): t for t in self.participants.values()
                if t.attended_anywhere and t.scored_session not in self.silent_sessions}

    def deadletter_reasons(self) -> Counter[str]:
        return Counter(d.reason for d in self.deadletters)

    @property
    def scheduled(self) -> int:
        return len(self.participants)

    @property
    def attended(self) -> int:
        return sum(t.attended_anywhere for t in self.participants.values())

    # ---- the file ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "seed": self.seed, "day": self.day, "config": self.config,
            "sessions": [asdict(s) for s in self.sessions.values()],
            "participants": [t.to_json() for t in self.participants.values()],
            "silent_sessions": sorted(self.silent_sessions), "clock_skew": self.clock_skew,
            "outages": [asdict(o) for o in self.outages], "duplicates": self.duplicates,
            "deadletters": [asdict(d) for d in self.deadletters],
            "expected": {"scheduled": self.scheduled, "attended": self.attended,
                         "no_shows": self.scheduled - self.attended, "results": len(self.results()),
                         "blank_sheets": sum(t.blank for t in self.results().values()),
                         "deadletters_by_reason": dict(sorted(self.deadletter_reasons().items()))},
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(self.to_json(), default=str))

    @classmethod
    def load(cls, path: Path) -> GroundTruth:
        d = orjson.loads(path.read_bytes())
        if d.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} ground-truth file")
        participants = [TruthParticipant.from_json(p) for p in d["participants"]]
        return cls(
            seed=d["seed"], day=date.fromisoformat(d["day"]), config=d["config"],
            sessions={s["session_id"]: SessionPlan.from_json(s) for s in d["sessions"]},
            participants={(t.session_id, t.nip): t for t in participants},
            silent_sessions=set(d["silent_sessions"]), clock_skew=d["clock_skew"],
            outages=[Outage.from_json(o) for o in d["outages"]], duplicates=d["duplicates"],
            deadletters=[ExpectedDeadLetter(**x) for x in d["deadletters"]],
        )
