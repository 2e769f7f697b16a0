"""A simulated CACT exam day: the schedule, what the labs emit, and the ground truth to check against.

Built from the 2024 figures in domain.md §2: labs in WIB, WITA and WIT, central and regional agencies,
about 88% attendance, full and Mansoskul-only blueprints, mapping and position-filling purposes.
Everything is drawn from one seeded RNG, so ``--seed`` reproduces a day exactly.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from schemas import events as ev
from schemas.blueprint import Blueprint, BlueprintRegistry
from schemas.domain import PositionTier, Purpose, Section

WIB, WITA, WIT = (timezone(timedelta(hours=h), n) for h, n in ((7, "WIB"), (8, "WITA"), (9, "WIT")))

#: BKN labs: head office, some regional offices (Kanreg) across the three time zones.
LABS: list[tuple[str, timezone]] = [  # consecutive sessions rotate through the three time zones
    ("bkn-pusat-jakarta", WIB), ("kanreg-iv-makassar", WITA), ("kanreg-ix-jayapura", WIT),
    ("kanreg-ii-surabaya", WIB), ("kanreg-x-denpasar", WITA), ("kanreg-xiv-manokwari", WIT),
    ("kanreg-i-yogyakarta", WIB), ("kanreg-viii-banjarmasin", WITA),
]
AGENCIES: list[tuple[str, str]] = [
    ("kemenkeu", "Kementerian Keuangan"), ("kemendagri", "Kementerian Dalam Negeri"),
    ("kemenkes", "Kementerian Kesehatan"), ("bappenas", "Kementerian PPN/Bappenas"),
    ("pemprov-kaltim", "Pemerintah Provinsi Kalimantan Timur"), ("pemkab-ppu", "Pemerintah Kabupaten Penajam Paser Utara"),
    ("pemprov-papua", "Pemerintah Provinsi Papua"), ("pemkot-makassar", "Pemerintah Kota Makassar"),
]
TIERS = [PositionTier.ADMINISTRATOR, PositionTier.PENGAWAS, PositionTier.PELAKSANA, PositionTier.AHLI_MUDA,
         PositionTier.AHLI_PERTAMA, PositionTier.AHLI_MADYA]
SECTION_MINUTES = {Section.MANSOSKUL: 120, Section.EMERGING_SKILLS: 90, Section.DIGITAL_LITERACY: 60}
FIRST = ["Andi", "Budi", "Citra", "Dewi", "Eko", "Fitri", "Gita", "Hendra", "Indah", "Joko", "Kartika", "Lestari"]
LAST = ["Saputra", "Wijaya", "Siregar", "Nasution", "Pratama", "Lestari", "Hasibuan", "Tanjung", "Wibowo"]


@dataclass
class SimConfig:
    participants: int = 120
    seats: int = 30
    attendance: float = 0.88
    mansoskul_only_share: float = 0.1
    position_filling_share: float = 0.25
    timed_out_share: float = 0.05
    malformed: int = 2
    reschedule_share: float = 0.0  # of no-shows moved to a later session of another agency (susulan)
    susulan_attendance: float = 0.9
    silent_sessions: int = 0  # the last N sessions' labs go silent once check-in has closed
    late_checkins: int = 0  # attendees who check in after the window closed (admitted)
    out_of_order_share: float = 0.0  # of check-ins delivered only after everything else (a lab's spool flushed late)
    day: date = field(default_factory=lambda: date(2026, 11, 3))
    seed: int = 2024


@dataclass
class TruthParticipant:
    session_id: str
    nip: str
    attended: bool
    blueprint_id: str
    tier: PositionTier
    purpose: Purpose
    activity_id: str
    agency_id: str
    sheets: dict[Section, dict[str, str | None]] = field(default_factory=dict)
    completion: dict[Section, str] = field(default_factory=dict)
    rescheduled_to: str | None = None
    attended_susulan: bool = False
    late: bool = False

    @property
    def attended_anywhere(self) -> bool:
        return self.attended or self.attended_susulan

    @property
    def scored_session(self) -> str:
        return self.rescheduled_to if self.attended_susulan and self.rescheduled_to else self.session_id


@dataclass
class SimDay:
    schedule: list[ev.Event]
    lab: list[ev.Event]
    malformed: list[tuple[str, bytes]]
    truth: dict[tuple[str, str], TruthParticipant]
    silent_sessions: set[str] = field(default_factory=set)

    @property
    def scheduled(self) -> int:
        return len(self.truth)

    @property
    def attended(self) -> int:
        return sum(p.attended_anywhere for p in self.truth.values())

    @property
    def scored(self) -> int:
        return sum(p.attended_anywhere and p.scored_session not in self.silent_sessions for p in self.truth.values())

    def by_agency(self) -> dict[str, dict[str, int]]:
        """Per home agency, persons: scheduled, checked in (anywhere), no-show (nowhere), rescheduled."""
        out: dict[str, dict[str, int]] = {}
        for t in self.truth.values():
            row = out.setdefault(t.agency_id, {"scheduled": 0, "checked_in": 0, "no_show": 0, "rescheduled": 0})
            row["scheduled"] += 1
            row["checked_in"] += t.attended_anywhere
            row["no_show"] += not t.attended_anywhere
            row["rescheduled"] += t.rescheduled_to is not None
        return out

    def summary(self) -> dict[str, Any]:
        return {"participants_scheduled": self.scheduled, "participants_checked_in": self.attended,
                "no_shows": self.scheduled - self.attended, "malformed_events": len(self.malformed),
                "events": len(self.schedule) + len(self.lab) + len(self.malformed)}


def make_nip(rng: random.Random, serial: int) -> str:
    """A valid PNS NIP: birth date, appointment year-month at 22-30, gender, serial."""
    birth = date(rng.randint(1970, 1998), rng.randint(1, 12), rng.randint(1, 28))
    tmt_year = min(birth.year + rng.randint(22, 30), 2024)
    return f"{birth:%Y%m%d}{tmt_year:04d}{rng.randint(1, 12):02d}{rng.choice('12')}{serial % 1000:03d}"


def _answer(rng: random.Random, options: dict[str, float], ability: float) -> str | None:
    if rng.random() < 0.01:
        return None
    labels = list(options)
    top = max(options.values())
    if top == 1 and sum(options.values()) == 1:  # multiple choice: right with a probability rising with ability
        right = next(k for k, v in options.items() if v == 1)
        p = 1 / (1 + math.exp(-(ability + 0.4)))
        return right if rng.random() < p else rng.choice([k for k in labels if k != right])
    weights = [math.exp(ability * 0.9 * options[k] / top * 2) for k in labels]  # judgement: better options likelier
    return rng.choices(labels, weights=weights)[0]


def _sheet(rng: random.Random, blueprint: Blueprint, section: Section, ability: float, timed_out: bool) -> dict[str, str | None]:
    spec = blueprint.section(section)
    assert spec is not None
    items = spec.items
    cut = int(len(items) * rng.uniform(0.75, 0.95)) if timed_out else len(items)
    return {it.item_id: (_answer(rng, it.options, ability) if i < cut else None) for i, it in enumerate(items)}


def build_day(cfg: SimConfig, registry: BlueprintRegistry) -> SimDay:
    rng = random.Random(cfg.seed)
    uid = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)  # noqa: E731 - reproducible event ids
    schedule: list[ev.Event] = []
    lab: list[ev.Event] = []
    truth: dict[tuple[str, str], TruthParticipant] = {}
    n_sessions = max(1, math.ceil(cfg.participants / cfg.seats))
    sittings: list[tuple[TruthParticipant, int]] = []  # (participant, index of the session they sit in)
    plans: list[dict[str, Any]] = []
    serial = 0
    for s_index in range(n_sessions):
        lab_id, tz = LABS[s_index % len(LABS)]
        agency_id, agency_name = AGENCIES[s_index % len(AGENCIES)]
        session_id = f"S{cfg.day:%Y%m%d}-{s_index + 1:03d}"
        activity_id = f"ACT-{cfg.day:%Y%m}-{agency_id}"
        blueprint_id = "mansoskul-only" if rng.random() < cfg.mansoskul_only_share else "cact-full"
        blueprint = registry.get(blueprint_id)
        assert blueprint is not None, f"blueprint {blueprint_id} is not loaded"
        purpose = Purpose.POSITION_FILLING if rng.random() < cfg.position_filling_share else Purpose.MAPPING
        start = datetime.combine(cfg.day, time(8 if s_index % 2 == 0 else 13, 0), tz)
        closes = start + timedelta(minutes=30)
        minutes = sum(SECTION_MINUTES[s] for s in blueprint.section_names)
        ends = start + timedelta(minutes=30 + minutes + 15)
        eve = start - timedelta(days=1)
        plans.append({"session_id": session_id, "lab_id": lab_id, "start": start, "closes": closes, "ends": ends,
                      "blueprint": blueprint, "agency_id": agency_id, "purpose": purpose})
        schedule.append(ev.new_event(ev.SessionScheduled, lab_id=lab_id, occurred_at=eve, event_id=uid(), payload={
            "session_id": session_id, "activity_id": activity_id, "agency_id": agency_id, "agency_name": agency_name,
            "starts_at": start, "checkin_closes_at": closes, "ends_at": ends, "blueprint_id": blueprint_id,
            "purpose": purpose, "seats": cfg.seats}))
        size = min(cfg.seats, cfg.participants - s_index * cfg.seats)
        for _ in range(size):
            serial += 1
            nip = make_nip(rng, serial)
            tier = rng.choice(TIERS)
            schedule.append(ev.new_event(ev.ParticipantScheduled, lab_id=lab_id, occurred_at=eve, event_id=uid(), payload={
                "session_id": session_id, "nip": nip, "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}", "position_tier": tier}))
            attended = rng.random() < cfg.attendance
            tp = TruthParticipant(session_id, nip, attended, blueprint_id, tier, purpose, activity_id, agency_id)
            truth[(session_id, nip)] = tp
            if not attended:
                continue
            sittings.append((tp, s_index))
        lab.append(ev.new_event(ev.SessionClosed, lab_id=lab_id, occurred_at=ends, event_id=uid(),
                                payload={"session_id": session_id}))

    # Susulan: some no-shows are moved to the next later session of another agency, and most attend there.
    for tp in list(truth.values()):
        if tp.attended or rng.random() >= cfg.reschedule_share:
            continue
        origin = next(i for i, p in enumerate(plans) if p["session_id"] == tp.session_id)
        target = next((i for i, p in enumerate(plans) if p["start"] > plans[origin]["start"]
                       and p["agency_id"] != tp.agency_id), None)
        if target is None:
            continue
        tp.rescheduled_to = plans[target]["session_id"]
        schedule.append(ev.new_event(ev.ParticipantRescheduled, lab_id="bkn-scheduler",
                                     occurred_at=plans[origin]["closes"] + timedelta(minutes=20), event_id=uid(),
                                     payload={"nip": tp.nip, "from_session_id": tp.session_id,
                                              "to_session_id": tp.rescheduled_to, "reason": "susulan"}))
        if rng.random() < cfg.susulan_attendance:
            tp.attended_susulan = True
            sittings.append((tp, target))

    silent = {p["session_id"] for p in plans[len(plans) - cfg.silent_sessions:]} if cfg.silent_sessions else set()
    late = set(rng.sample(range(len(sittings)), min(cfg.late_checkins, len(sittings))))
    for n, (tp, index) in enumerate(sittings):
        plan = plans[index]
        if n in late and plan["session_id"] not in silent:
            tp.late = True
        lab.extend(_sitting(rng, uid, cfg, tp, plan))
    lab = [e for e in lab if e.payload.session_id not in silent or e.occurred_at < plans_by_id(plans)[e.payload.session_id]["closes"]]
    lab.sort(key=lambda e: e.occurred_at)
    if cfg.out_of_order_share:
        checkins = [e for e in lab if isinstance(e, ev.ParticipantCheckedIn)]
        delayed = set(id(e) for e in rng.sample(checkins, int(len(checkins) * cfg.out_of_order_share)))
        lab = [e for e in lab if id(e) not in delayed] + [e for e in lab if id(e) in delayed]
    malformed = [
        ("cact.lab.v1", b'{"event_type": "ParticipantCheckedIn", "payload": '),  # truncated JSON
        ("cact.lab.v1", b'{"event_id": "00000000-0000-4000-8000-000000000000", "event_type": "ParticipantCheckedIn",'
                        b' "schema_version": 1, "occurred_at": "2026-11-03T08:00:00+07:00", "lab_id": "bkn-pusat-jakarta",'
                        b' "payload": {"session_id": "S1", "nip": "12345"}}'),  # invalid NIP
        ("cact.lab.v1", b'{"event_type": "ParticipantTeleported", "payload": {}}'),  # unknown event type
    ]
    return SimDay(schedule=schedule, lab=lab, malformed=(malformed * cfg.malformed)[: cfg.malformed], truth=truth,
                  silent_sessions=silent)


def plans_by_id(plans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["session_id"]: p for p in plans}


def _sitting(rng: random.Random, uid: Any, cfg: SimConfig, tp: TruthParticipant, plan: dict[str, Any]) -> list[ev.Event]:
    """What a lab emits for one participant sitting one session: check-in, then each section's autosaves and sheet."""
    out: list[ev.Event] = []
    session_id, lab_id, start, closes, blueprint = (plan["session_id"], plan["lab_id"], plan["start"], plan["closes"],
                                                    plan["blueprint"])
    nip = tp.nip
    tp.blueprint_id, tp.purpose = blueprint.blueprint_id, plan["purpose"]  # a susulan sits the host session's test
    ability = rng.gauss(0, 1)
    t = start - timedelta(minutes=30) + timedelta(seconds=rng.randint(0, 55 * 60))
    if tp.late:
        t = closes + timedelta(minutes=rng.randint(5, 20))
    out.append(ev.new_event(ev.ParticipantCheckedIn, lab_id=lab_id, occurred_at=t, event_id=uid(),
                            payload={"session_id": session_id, "nip": nip}))
    t = max(t, closes)
    for section in blueprint.section_names:
        timed_out = rng.random() < cfg.timed_out_share
        sheet = _sheet(rng, blueprint, section, ability, timed_out)
        tp.sheets[section] = sheet
        tp.completion[section] = "timed_out" if timed_out else "submitted"
        out.append(ev.new_event(ev.SectionStarted, lab_id=lab_id, occurred_at=t, event_id=uid(),
                                payload={"session_id": session_id, "nip": nip, "section": section}))
        span = SECTION_MINUTES[section] * 60 * (1.0 if timed_out else rng.uniform(0.6, 0.98))
        items = list(sheet.items())
        chunk = max(1, math.ceil(len(items) / 3))  # labs batch autosaves: three per section
        for i in range(0, len(items), chunk):
            at = t + timedelta(seconds=span * (i + chunk) / len(items) * 0.95)
            out.append(ev.new_event(ev.AnswersSaved, lab_id=lab_id, occurred_at=at, event_id=uid(), payload={
                "session_id": session_id, "nip": nip, "section": section,
                "answers": [{"item_id": k, "option": v} for k, v in items[i:i + chunk]]}))
        t = t + timedelta(seconds=span)
        out.append(ev.new_event(ev.SectionSubmitted, lab_id=lab_id, occurred_at=t, event_id=uid(), payload={
            "session_id": session_id, "nip": nip, "section": section,
            "completion": tp.completion[section],
            "answers": [{"item_id": k, "option": v} for k, v in items]}))
    return out
