"""A fast, contract-valid exam day for the benchmark: JSON-shaped dicts, not pydantic objects.

``producers.simulator.build_day`` builds and validates every event as a model, which takes minutes for a
national day; the benchmark needs 10,000+ participants in seconds. Events here are plain dicts of the wire
shape (a unit test decodes a sample with the worker's own decoder), answer sheets are drawn per section from
a pool of pre-drawn sheets, and every participant attends and sits the full CACT, so each one is scored.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from schemas.blueprint import Blueprint

WIB = timezone(timedelta(hours=7))
SECTION_MINUTES = {"mansoskul": 120, "emerging_skills": 90, "digital_literacy": 60}
TIERS = ("administrator", "pengawas", "pelaksana", "ahli_muda", "ahli_pertama", "ahli_madya")
AUTOSAVE_SHARE = 0.6  # one batched autosave per section, carrying the answers given by then
SHEET_POOL = 64

Event = dict[str, Any]


@dataclass
class BenchSession:
    session_id: str
    schedule: list[Event]
    #: Per participant: their lab events in time order (check-in, then per section start, autosave, sheet).
    sittings: list[list[Event]]
    closing: list[Event] = field(default_factory=list)

    def lab_events(self) -> list[Event]:
        """The session's lab events in event-time order, as the lab emits them."""
        merged = [e for s in self.sittings for e in s] + self.closing
        merged.sort(key=lambda e: e["occurred_at"])
        return merged


@dataclass
class BenchDay:
    sessions: list[BenchSession]
    participants: int
    answers: int  # answer entries in autosaves and sheets: what answers_per_s counts
    activity_id: str


class DayGenerator:
    def __init__(self, blueprint: Blueprint, *, seed: int = 7, seats: int = 30) -> None:
        self.blueprint = blueprint
        self.rng = random.Random(seed)
        self.seats = seats
        self._nips: set[str] = set()
        self._pools = {spec.section.value: [self._sheet(spec) for _ in range(SHEET_POOL)]
                       for spec in blueprint.sections}

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _sheet(self, spec: Any) -> list[dict[str, str | None]]:
        out = []
        for item in spec.items:
            labels = list(item.options)
            out.append({"item_id": item.item_id,
                        "option": None if self.rng.random() < 0.01 else self.rng.choice(labels)})
        return out

    def _nip(self) -> str:
        while True:
            r = self.rng
            birth = f"{r.randint(1970, 1998)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}"
            nip = (f"{birth}{min(int(birth[:4]) + r.randint(22, 30), 2024):04d}"
                   f"{r.randint(1, 12):02d}{r.choice('12')}{r.randint(0, 999):03d}")
            if nip not in self._nips:
                self._nips.add(nip)
                return nip

    def _event(self, event_type: str, at: datetime, lab_id: str, payload: dict[str, Any]) -> Event:
        return {"event_id": self._id(), "event_type": event_type, "schema_version": 1,
                "occurred_at": at.isoformat(), "lab_id": lab_id, "payload": payload}

    def day(self, participants: int, *, prefix: str = "B", activity_id: str = "ACT-BENCH",
            start: datetime = datetime(2026, 11, 3, 8, 0, tzinfo=WIB)) -> BenchDay:
        sessions: list[BenchSession] = []
        answers = 0
        n_sessions = -(-participants // self.seats)
        for s_index in range(n_sessions):
            session_id = f"{prefix}-{s_index + 1:05d}"
            lab_id = f"lab-{s_index % 40:02d}"
            starts = start + timedelta(minutes=(s_index % 10) * 5)
            closes = starts + timedelta(minutes=30)
            ends = closes + timedelta(minutes=sum(SECTION_MINUTES.values()) + 15)
            eve = starts - timedelta(days=1)
            schedule = [self._event("SessionScheduled", eve, lab_id, {
                "session_id": session_id, "lab_id": lab_id, "activity_id": activity_id, "agency_id": "bench-agency",
                "agency_name": "Bench agency", "starts_at": starts.isoformat(), "checkin_closes_at": closes.isoformat(),
                "ends_at": ends.isoformat(), "blueprint_id": self.blueprint.blueprint_id, "purpose": "mapping",
                "seats": self.seats})]
            sittings = []
            for _ in range(min(self.seats, participants - s_index * self.seats)):
                nip = self._nip()
                schedule.append(self._event("ParticipantScheduled", eve, lab_id, {
                    "session_id": session_id, "nip": nip, "name": "Peserta Bench",
                    "position_tier": self.rng.choice(TIERS)}))
                t = starts + timedelta(seconds=self.rng.randint(0, 29 * 60))
                sitting = [self._event("ParticipantCheckedIn", t, lab_id, {"session_id": session_id, "nip": nip})]
                t = closes + timedelta(seconds=self.rng.randint(0, 60))
                for section in self.blueprint.section_names:
                    sec = section.value
                    sheet = self.rng.choice(self._pools[sec])
                    span = timedelta(minutes=SECTION_MINUTES[sec] * self.rng.uniform(0.6, 0.98))
                    saved = sheet[: max(1, int(len(sheet) * AUTOSAVE_SHARE))]
                    sitting.append(self._event("SectionStarted", t, lab_id,
                                               {"session_id": session_id, "nip": nip, "section": sec}))
                    sitting.append(self._event("AnswersSaved", t + span * AUTOSAVE_SHARE, lab_id, {
                        "session_id": session_id, "nip": nip, "section": sec, "answers": saved}))
                    t += span
                    sitting.append(self._event("SectionSubmitted", t, lab_id, {
                        "session_id": session_id, "nip": nip, "section": sec, "completion": "submitted",
                        "answers": sheet}))
                    answers += len(saved) + len(sheet)
                sittings.append(sitting)
            closing = [self._event("SessionClosed", ends, lab_id, {"session_id": session_id})]
            sessions.append(BenchSession(session_id, schedule, sittings, closing))
        return BenchDay(sessions, participants, answers, activity_id)
