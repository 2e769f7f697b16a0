"""A simulated CACT exam day: the schedule, what the labs emit, and the ground truth to check against.

Built from the 2024 figures in domain.md §2 (``producers/exam_network.py``): central agencies (≈77% of
participants) and regional IKN partners, the BKN head office and 14 Kanreg labs in WIB, WITA and WIT,
morning and afternoon sessions with seats, about 88% attendance, *susulan* into another agency's session,
full and Mansoskul-only blueprints, answers that follow the participant's ability, autosaves every few
minutes, check-ins spread before the window closes and a few time-outs; on request, attendees who answer
nothing and sessions run by an accredited institution instead of BKN. Everything is drawn from one seeded
RNG, so ``--seed`` reproduces a day exactly; faults and blank sheets are drawn from RNGs of their own, so a
day with them is the same day as without them, only delivered differently (or with those sheets blank).
Delivery itself is ``producers/daysender.py``.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import orjson

from producers.exam_network import (
    AGENCY_BY_ID,
    ATTENDANCE_2024,
    CENTRAL_AGENCIES,
    CENTRAL_LAB_WEIGHTS,
    CENTRAL_SHARE_2024,
    LAB_BY_ID,
    LABS,
    REGIONAL_AGENCIES,
    WIB,
    WIT,
    WITA,
)
from producers.truth import ExpectedDeadLetter, FaultPlan, GroundTruth, Outage, SessionPlan, TruthParticipant
from schemas import events as ev
from schemas import topics
from schemas.blueprint import Blueprint, BlueprintRegistry
from schemas.domain import PositionTier, Purpose, Section
from schemas.reasons import Reason

__all__ = ["SimConfig", "SimDay", "TruthParticipant", "GroundTruth", "build_day", "make_nip", "LABS", "WIB", "WITA",
           "WIT", "SECTION_MINUTES", "MALFORMED_KINDS"]

TIERS = [PositionTier.ADMINISTRATOR, PositionTier.PENGAWAS, PositionTier.PELAKSANA, PositionTier.AHLI_MUDA,
         PositionTier.AHLI_PERTAMA, PositionTier.AHLI_MADYA]
SECTION_MINUTES = {Section.MANSOSKUL: 120, Section.EMERGING_SKILLS: 90, Section.DIGITAL_LITERACY: 60}
SLOTS = (time(7, 30), time(13, 0))  # morning and afternoon sessions, the lab's local time
#: lab_id of the events BKN's scheduler sends (the schedule topic).
SCHEDULER_ID = "bkn-scheduler"
CHECKIN_OPENS_MINUTES, CHECKIN_MINUTES, WRAP_UP_MINUTES = 30, 30, 15
FIRST = ["Andi", "Budi", "Citra", "Dewi", "Eko", "Fitri", "Gita", "Hendra", "Indah", "Joko", "Kartika", "Lestari",
         "Made", "Nur", "Oktavia", "Putu", "Rahmat", "Siti", "Teguh", "Wayan", "Yohanes", "Zainal"]
LAST = ["Saputra", "Wijaya", "Siregar", "Nasution", "Pratama", "Lestari", "Hasibuan", "Tanjung", "Wibowo", "Rumbiak",
        "Lumban Gaol", "Pangaribuan", "Mandagi", "Sembiring", "Hidayat", "Suryani", "Daeng", "Manuputty"]


@dataclass
class SimConfig:
    participants: int = 120
    seats: int = 30
    attendance: float = ATTENDANCE_2024
    mansoskul_only_share: float = 0.1  # of sessions; 2024 PNBP: 23 of 11,784 (0.2%), too rare to test with
    position_filling_share: float = 0.25
    timed_out_share: float = 0.05  # of sections: the participant is still answering when time runs out
    malformed: int = 2
    reschedule_share: float = 0.0  # of no-shows moved to a later session of another agency (susulan)
    susulan_attendance: float = 0.9
    silent_sessions: int = 0  # the last N sessions' labs go silent once check-in has closed
    late_checkins: int = 0  # attendees who check in after the window closed (admitted)
    out_of_order_share: float = 0.0  # of check-ins delivered only after everything else (a lab's spool flushed late)
    day: date = field(default_factory=lambda: date(2026, 11, 3))
    seed: int = 2024
    central_share: float = CENTRAL_SHARE_2024  # of sessions (so of participants) from central agencies
    pppk_share: float = 0.1  # contract employees (PPPK NIP layout)
    autosave_minutes: float = 15.0  # a lab saves the answers given since the last autosave this often
    # ---- evidence and accreditation (what the truth expects of each result: docs/simulator.md) -----------
    blank_sheets: int = 0  # attendees who check in and answer nothing: half submit blank sheets, half walk out
    organisers: Mapping[str, str] = field(default_factory=dict)  # agency_id → organiser_id on its sessions
    # ---- delivery faults (producers/daysender.py applies them; the truth never changes) ------------------
    offline_labs: tuple[str, ...] = ()  # these labs lose their network for offline_minutes from offline_at
    offline_minutes: float = 30.0
    offline_at: time = time(7, 50)  # lab-local: covers the morning check-in deadline (08:00)
    clock_skew: Mapping[str, float] = field(default_factory=dict)  # lab_id → seconds its clock is ahead (+)
    duplicate_share: float = 0.0  # of valid events sent twice, with the same event_id

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(day=self.day.isoformat(), offline_at=self.offline_at.isoformat(),
                   offline_labs=list(self.offline_labs), clock_skew=dict(self.clock_skew),
                   organisers=dict(self.organisers))
        return out


@dataclass
class SimDay:
    schedule: list[ev.Event]
    lab: list[ev.Event]  # in the order the labs produce them (true time); occurred_at is by each lab's clock
    malformed: list[tuple[str, bytes]]
    truth: dict[tuple[str, str], TruthParticipant]
    silent_sessions: set[str] = field(default_factory=set)
    sessions: dict[str, SessionPlan] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    deadletters: list[ExpectedDeadLetter] = field(default_factory=list)  # one per malformed message, same order
    config: SimConfig | None = None

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
                "events": len(self.schedule) + len(self.lab) + len(self.malformed),
                "sessions": len(self.sessions),
                "rescheduled": sum(t.rescheduled_to is not None for t in self.truth.values()),
                "duplicates": len(self.faults.duplicates), "offline_labs": [o.lab_id for o in self.faults.outages],
                "clock_skew": dict(self.faults.clock_skew)}

    def ground_truth(self) -> GroundTruth:
        cfg = self.config or SimConfig()
        return GroundTruth(seed=cfg.seed, day=cfg.day, sessions=self.sessions, participants=self.truth,
                           silent_sessions=set(self.silent_sessions), clock_skew=dict(self.faults.clock_skew),
                           outages=list(self.faults.outages), duplicates=len(self.faults.duplicates),
                           deadletters=list(self.deadletters), config=cfg.to_json())

    def write_truth(self, path: Any) -> None:
        """The ground truth as JSON (format in docs/simulator.md); read it back with ``GroundTruth.load``."""
        self.ground_truth().write(path)


def make_nip(rng: random.Random, serial: int, *, pppk: bool = False) -> str:
    """A valid NIP: PNS (birth date, appointment year-month, gender, serial) or PPPK (birth date, TMT year,
    '2' and a digit 1-9, gender, serial), appointed at 22 to 30."""
    birth = date(rng.randint(1970, 1998), rng.randint(1, 12), rng.randint(1, 28))
    gender = rng.choice("12")
    if pppk:
        return (f"{birth:%Y%m%d}{rng.randint(max(birth.year + 22, 2019), 2024):04d}"
                f"2{rng.randint(1, 9)}{gender}{serial % 1000:03d}")
    tmt_year = min(birth.year + rng.randint(22, 30), 2024)
    return f"{birth:%Y%m%d}{tmt_year:04d}{rng.randint(1, 12):02d}{gender}{serial % 1000:03d}"


def _answer(rng: random.Random, options: dict[str, float], ability: float) -> str | None:
    if rng.random() < 0.01:
        return None  # skipped
    labels = list(options)
    top = max(options.values())
    if top == 1 and sum(options.values()) == 1:  # multiple choice: right with a probability rising with ability
        right = next(k for k, v in options.items() if v == 1)
        p = 1 / (1 + math.exp(-(ability + 0.4)))
        return right if rng.random() < p else rng.choice([k for k in labels if k != right])
    weights = [math.exp(ability * 0.9 * options[k] / top * 2) for k in labels]  # judgement: better options likelier
    return rng.choices(labels, weights=weights)[0]


def build_day(cfg: SimConfig, registry: BlueprintRegistry,
              progress: Callable[[int, int], None] | None = None) -> SimDay:
    """Build the day; ``progress(done, total)`` is called as participants' sittings are generated."""
    unknown = (set(cfg.offline_labs) | set(cfg.clock_skew)) - set(LAB_BY_ID)
    if unknown:
        raise ValueError(f"unknown lab(s) {', '.join(sorted(unknown))}; labs are {', '.join(LAB_BY_ID)}")
    strangers = set(cfg.organisers) - set(AGENCY_BY_ID)
    if strangers:
        raise ValueError(f"organisers name unknown agency(ies) {', '.join(sorted(strangers))}; agencies are in "
                         "producers/exam_network.py")
    rng = random.Random(cfg.seed)
    uid = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)  # noqa: E731 - reproducible event ids
    schedule: list[ev.Event] = []
    lab: list[ev.Event] = []
    truth: dict[tuple[str, str], TruthParticipant] = {}
    plans: dict[str, SessionPlan] = {}
    blueprints: dict[str, Blueprint] = {}
    sittings: list[tuple[TruthParticipant, SessionPlan]] = []
    nips: set[str] = set()
    serial = 0
    n_sessions = max(1, math.ceil(cfg.participants / cfg.seats))
    central_labs, central_weights = list(CENTRAL_LAB_WEIGHTS), list(CENTRAL_LAB_WEIGHTS.values())
    for s_index in range(n_sessions):
        agency = rng.choice(CENTRAL_AGENCIES if rng.random() < cfg.central_share else REGIONAL_AGENCIES)
        site = LAB_BY_ID[rng.choices(central_labs, central_weights)[0] if agency.central else agency.home_lab]
        session_id = f"S{cfg.day:%Y%m%d}-{s_index + 1:03d}"
        activity_id = f"ACT-{cfg.day:%Y%m}-{agency.agency_id}"
        blueprint_id = "mansoskul-only" if rng.random() < cfg.mansoskul_only_share else "cact-full"
        blueprint = registry.get(blueprint_id)
        assert blueprint is not None, f"blueprint {blueprint_id} is not loaded"
        blueprints[blueprint_id] = blueprint
        purpose = Purpose.POSITION_FILLING if rng.random() < cfg.position_filling_share else Purpose.MAPPING
        start = datetime.combine(cfg.day, SLOTS[rng.random() < 0.5], site.tz)
        closes = start + timedelta(minutes=CHECKIN_MINUTES)
        minutes = sum(SECTION_MINUTES[s] for s in blueprint.section_names)
        ends = closes + timedelta(minutes=minutes + WRAP_UP_MINUTES)
        organiser = cfg.organisers.get(agency.agency_id)
        plan = plans[session_id] = SessionPlan(session_id, site.lab_id, agency.agency_id, agency.name, agency.central,
                                               activity_id, blueprint_id, purpose, start, closes, ends, cfg.seats,
                                               organiser)
        eve = start - timedelta(days=1)
        # Sent by BKN's scheduler, naming the lab that hosts the session (only that lab may speak for it).
        schedule.append(ev.new_event(
            ev.SessionScheduled, lab_id=SCHEDULER_ID, occurred_at=eve, event_id=uid(), payload={
                "session_id": session_id, "lab_id": site.lab_id, "activity_id": activity_id,
                "agency_id": agency.agency_id, "agency_name": agency.name, "starts_at": start,
                "checkin_closes_at": closes, "ends_at": ends, "blueprint_id": blueprint_id, "purpose": purpose,
                "seats": cfg.seats, "organiser_id": organiser}))
        for _ in range(min(cfg.seats, cfg.participants - s_index * cfg.seats)):
            serial += 1
            nip = make_nip(rng, serial, pppk=rng.random() < cfg.pppk_share)
            while nip in nips:  # a NIP is a person: never two in one day
                nip = make_nip(rng, serial, pppk=nip[12] == "2")
            nips.add(nip)
            tier = rng.choice(TIERS)
            schedule.append(ev.new_event(
                ev.ParticipantScheduled, lab_id=site.lab_id, occurred_at=eve, event_id=uid(), payload={
                    "session_id": session_id, "nip": nip, "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    "position_tier": tier}))
            attended = rng.random() < cfg.attendance
            tp = TruthParticipant(session_id, nip, attended, blueprint_id, tier, purpose, activity_id, agency.agency_id)
            truth[(session_id, nip)] = tp
            if attended:
                sittings.append((tp, plan))
        lab.append(ev.new_event(ev.SessionClosed, lab_id=site.lab_id, occurred_at=ends, event_id=uid(),
                                payload={"session_id": session_id}))

    # Susulan: some no-shows are moved into a seat a no-show left free in a later session of another agency
    # (decided 20 minutes after their own window closed), and most of them attend there.
    ordered = sorted(plans.values(), key=lambda p: p.starts_at)
    present = Counter(t.session_id for t in truth.values() if t.attended)
    free = {sid: cfg.seats - present[sid] for sid in plans}
    for tp in list(truth.values()):
        if tp.attended or rng.random() >= cfg.reschedule_share:
            continue
        decided = plans[tp.session_id].checkin_closes_at + timedelta(minutes=20)
        target = next((p for p in ordered if p.starts_at > decided and p.agency_id != tp.agency_id
                       and free[p.session_id] > 0), None)
        if target is None:
            continue
        free[target.session_id] -= 1
        tp.rescheduled_to = target.session_id
        schedule.append(ev.new_event(ev.ParticipantRescheduled, lab_id=SCHEDULER_ID, occurred_at=decided,
                                     event_id=uid(), payload={"nip": tp.nip, "from_session_id": tp.session_id,
                                                              "to_session_id": tp.rescheduled_to, "reason": "susulan"}))
        if rng.random() < cfg.susulan_attendance:
            tp.attended_susulan = True
            sittings.append((tp, target))

    silent = ({p.session_id for p in list(plans.values())[len(plans) - cfg.silent_sessions:]}
              if cfg.silent_sessions else set())
    late = set(rng.sample(range(len(sittings)), min(cfg.late_checkins, len(sittings))))
    blank = _blank_sittings(cfg, sittings, silent)
    for n, (tp, plan) in enumerate(sittings):
        if n in late and plan.session_id not in silent:
            tp.late = True
        events = _sitting(rng, uid, cfg, tp, plan, blueprints[plan.blueprint_id])
        if n in blank:
            events = _blanked(tp, events, walk_out=blank[n])
        lab.extend(events)
        if progress is not None and (n % 200 == 0 or n == len(sittings) - 1):
            progress(n + 1, len(sittings))
    lab = [e for e in lab
           if e.payload.session_id not in silent or e.occurred_at < plans[e.payload.session_id].checkin_closes_at]
    lab.sort(key=lambda e: e.occurred_at)
    if cfg.out_of_order_share:
        checkins = [e for e in lab if isinstance(e, ev.ParticipantCheckedIn)]
        delayed = set(id(e) for e in rng.sample(checkins, int(len(checkins) * cfg.out_of_order_share)))
        lab = [e for e in lab if id(e) not in delayed] + [e for e in lab if id(e) in delayed]

    faults, lab = _faults(cfg, schedule, lab)
    malformed, expected = _malformed(cfg, random.Random(f"{cfg.seed}/malformed"), schedule, lab)
    faults.malformed_at = [random.Random(f"{cfg.seed}/malformed-at/{i}").random() for i in range(len(malformed))]
    return SimDay(schedule=schedule, lab=lab, malformed=malformed, truth=truth, silent_sessions=silent,
                  sessions=plans, faults=faults, deadletters=expected, config=cfg)


def _faults(cfg: SimConfig, schedule: list[ev.Event], lab: list[ev.Event]) -> tuple[FaultPlan, list[ev.Event]]:
    """Clock skew rewrites the lab's occurred_at (its clock is wrong, not its order); outages and duplicates
    are recorded for the sender. Their own RNG: the day is the same day whatever faults are injected."""
    frng = random.Random(f"{cfg.seed}/faults")
    skew = {lab_id: float(s) for lab_id, s in cfg.clock_skew.items() if s}
    if skew:
        lab = [e.model_copy(update={"occurred_at": e.occurred_at + timedelta(seconds=skew[e.lab_id])})
               if e.lab_id in skew else e for e in lab]
    outages = []
    for lab_id in cfg.offline_labs:
        start = datetime.combine(cfg.day, cfg.offline_at, LAB_BY_ID[lab_id].tz)
        outages.append(Outage(lab_id, start, start + timedelta(minutes=cfg.offline_minutes)))
    duplicates: dict[uuid.UUID, int] = {}
    if cfg.duplicate_share:
        for e in schedule + lab:
            if frng.random() < cfg.duplicate_share:
                duplicates[e.event_id] = frng.randint(1, 200)  # resent after a lost acknowledgement, soon after
    return FaultPlan(outages=outages, clock_skew=skew, duplicates=duplicates), lab


def _sitting(rng: random.Random, uid: Any, cfg: SimConfig, tp: TruthParticipant, plan: SessionPlan,
             blueprint: Blueprint) -> list[ev.Event]:
    """What a lab emits for one participant sitting one session: check-in, then per section its start,
    autosaves every ``autosave_minutes`` with the answers given since the last one, and the final sheet."""
    out: list[ev.Event] = []
    session_id, lab_id, nip = plan.session_id, plan.lab_id, tp.nip
    # A susulan sits the host session's test, run by its organiser; the result stays theirs, filed at home
    # and categorised by their home purpose (tp.purpose is left alone).
    tp.blueprint_id, tp.organiser_id = plan.blueprint_id, plan.organiser_id
    if plan.activity_id != tp.activity_id:
        tp.host_activity_id, tp.host_agency_id = plan.activity_id, plan.agency_id
    ability = rng.gauss(0, 1)
    opens = plan.starts_at - timedelta(minutes=CHECKIN_OPENS_MINUTES)
    window = (plan.checkin_closes_at - opens).total_seconds()
    if tp.late:
        t = plan.checkin_closes_at + timedelta(minutes=rng.uniform(5, 20))
    else:  # most arrive around the start, a tail until just before the window closes
        t = opens + timedelta(seconds=rng.triangular(0, window - 30, window * 0.45))
    tp.checked_in_at = t
    out.append(ev.new_event(ev.ParticipantCheckedIn, lab_id=lab_id, occurred_at=t, event_id=uid(),
                            payload={"session_id": session_id, "nip": nip,
                                     "seat": f"{rng.randint(1, plan.seats):03d}"}))
    t = max(t, plan.checkin_closes_at) + timedelta(seconds=rng.uniform(10, 120))
    hard_stop = plan.ends_at - timedelta(minutes=5)  # the session's end stops a late starter too
    for section in blueprint.section_names:
        spec = blueprint.section(section)
        assert spec is not None
        deadline = min(t + timedelta(minutes=SECTION_MINUTES[section]), hard_stop)
        slow = rng.random() < cfg.timed_out_share
        planned = SECTION_MINUTES[section] * 60 * (rng.uniform(1.05, 1.35) if slow else rng.uniform(0.55, 0.97))
        gaps = [rng.expovariate(1.0) + 0.2 for _ in spec.items]
        scale = planned / sum(gaps)
        times, elapsed = [], 0.0
        for g in gaps:
            elapsed += g * scale
            times.append(t + timedelta(seconds=elapsed))
        sheet = {it.item_id: (_answer(rng, it.options, ability) if at <= deadline else None)
                 for it, at in zip(spec.items, times)}
        timed_out = times[-1] > deadline
        done = deadline if timed_out else times[-1] + timedelta(seconds=rng.uniform(5, 60))
        done = min(done, deadline)
        tp.sheets[section] = sheet
        tp.completion[section] = "timed_out" if timed_out else "submitted"
        out.append(ev.new_event(ev.SectionStarted, lab_id=lab_id, occurred_at=t, event_id=uid(),
                                payload={"session_id": session_id, "nip": nip, "section": section}))
        step = timedelta(minutes=cfg.autosave_minutes)
        mark, i, items = t + step, 0, list(sheet.items())
        while mark < done:
            batch = []
            while i < len(items) and times[i] <= mark:
                if items[i][1] is not None:
                    batch.append({"item_id": items[i][0], "option": items[i][1]})
                i += 1
            if batch:
                out.append(ev.new_event(ev.AnswersSaved, lab_id=lab_id, occurred_at=mark, event_id=uid(), payload={
                    "session_id": session_id, "nip": nip, "section": section, "answers": batch}))
            mark += step
        out.append(ev.new_event(ev.SectionSubmitted, lab_id=lab_id, occurred_at=done, event_id=uid(), payload={
            "session_id": session_id, "nip": nip, "section": section, "completion": tp.completion[section],
            "answers": [{"item_id": k, "option": v} for k, v in items]}))
        t = done + timedelta(seconds=rng.uniform(20, 90))
    return out


def _blank_sittings(cfg: SimConfig, sittings: list[tuple[TruthParticipant, SessionPlan]],
                    silent: set[str]) -> dict[int, bool]:
    """Which sittings answer nothing (index → walks out), from an RNG of their own, so the rest of the day is
    the same day: among sessions whose lab is heard to the end, alternately a blank sheet and a walk-out."""
    if cfg.blank_sheets <= 0:
        return {}
    heard = [n for n, (_, plan) in enumerate(sittings) if plan.session_id not in silent]
    chosen = sorted(random.Random(f"{cfg.seed}/blank").sample(heard, min(cfg.blank_sheets, len(heard))))
    return {n: bool(i % 2) for i, n in enumerate(chosen)}


def _blanked(tp: TruthParticipant, events: list[ev.Event], *, walk_out: bool) -> list[ev.Event]:
    """The same sitting with nothing answered. A blank sheet: every section started and its sheet submitted
    when it would have been, every item blank, no autosave (there was nothing to save). A walk-out: checked
    in, opened the first section and left: no sheet and no autosave anywhere (``not_started``)."""
    tp.blank = True
    tp.sheets = {sec: dict.fromkeys(sheet) for sec, sheet in tp.sheets.items()}
    if walk_out:
        tp.completion = dict.fromkeys(tp.completion, "not_started")
        first = next(e for e in events if isinstance(e, ev.SectionStarted))
        return [e for e in events if isinstance(e, ev.ParticipantCheckedIn) or e is first]
    out: list[ev.Event] = []
    for e in events:
        if isinstance(e, ev.SectionSubmitted):
            p = e.payload
            e = ev.new_event(ev.SectionSubmitted, lab_id=e.lab_id, occurred_at=e.occurred_at, event_id=e.event_id,
                             payload={"session_id": p.session_id, "nip": p.nip, "section": p.section,
                                      "completion": p.completion,
                                      "answers": [{"item_id": k, "option": None} for k in tp.sheets[p.section]]})
        if not isinstance(e, ev.AnswersSaved):
            out.append(e)
    return out


# ---- malformed input ---------------------------------------------------------------------------------

#: What a careless lab integration sends, and the reason code the worker must dead-letter it with. The first
#: three are kept in this order: older tests count on them.
MALFORMED_KINDS: tuple[tuple[str, str], ...] = (
    (Reason.BAD_JSON, "truncated JSON"),
    (Reason.INVALID_NIP, "a check-in with a 5-digit NIP"),
    (Reason.UNKNOWN_EVENT_TYPE, "an event type the contract does not have"),
    (Reason.INVALID_FIELD, "a check-in whose occurred_at has no UTC offset"),
    (Reason.WRONG_TOPIC, "a schedule event sent on the lab topic"),
    (Reason.UNKNOWN_ITEM, "an autosave naming an item the bank does not have"),
    (Reason.UNSUPPORTED_SCHEMA_VERSION, "a check-in in schema version 2"),
    (Reason.NOT_AN_OBJECT, "a JSON array instead of an event"),
)


def _malformed(cfg: SimConfig, rng: random.Random, schedule: list[ev.Event], lab: list[ev.Event]
               ) -> tuple[list[tuple[str, bytes]], list[ExpectedDeadLetter]]:
    """``cfg.malformed`` messages cycling through MALFORMED_KINDS, built from real events of the day where
    the fault is in one field only, so nothing but that field can be what the worker rejects."""
    def like(event: ev.Event | None, **changes: Any) -> tuple[dict[str, Any], str | None]:
        if event is None:
            return {}, None
        data = orjson.loads(event.to_bytes())
        data["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        for k, v in changes.items():
            data[k] = v
        return data, event.key()

    checkin = next((e for e in lab if isinstance(e, ev.ParticipantCheckedIn)), None)
    scheduled = next((e for e in schedule if isinstance(e, ev.ParticipantScheduled)), None)
    autosave = next((e for e in lab if isinstance(e, ev.AnswersSaved)), None)
    lab_topic = topics.LAB.name
    out: list[tuple[str, bytes]] = []
    expected: list[ExpectedDeadLetter] = []
    for n in range(cfg.malformed):
        reason, what = MALFORMED_KINDS[n % len(MALFORMED_KINDS)]
        key: str | None = None
        if reason == Reason.BAD_JSON:
            raw = b'{"event_type": "ParticipantCheckedIn", "payload": '
        elif reason == Reason.INVALID_NIP:
            raw = (b'{"event_id": "00000000-0000-4000-8000-000000000000", "event_type": "ParticipantCheckedIn",'
                   b' "schema_version": 1, "occurred_at": "2026-11-03T08:00:00+07:00", "lab_id": "bkn-pusat-jakarta",'
                   b' "payload": {"session_id": "S1", "nip": "12345"}}')
        elif reason == Reason.UNKNOWN_EVENT_TYPE:
            raw = b'{"event_type": "ParticipantTeleported", "payload": {}}'
        elif reason == Reason.INVALID_FIELD and checkin is not None:
            data, key = like(checkin)
            data["occurred_at"] = checkin.occurred_at.replace(tzinfo=None).isoformat()
            raw = orjson.dumps(data)
        elif reason == Reason.WRONG_TOPIC and scheduled is not None:
            data, key = like(scheduled)
            raw = orjson.dumps(data)
        elif reason == Reason.UNKNOWN_ITEM and autosave is not None:
            data, key = like(autosave)
            data["payload"]["answers"] = [{"item_id": "ZZ-NOT-IN-BANK-001", "option": "A"}]
            raw = orjson.dumps(data)
        elif reason == Reason.UNSUPPORTED_SCHEMA_VERSION and checkin is not None:
            data, key = like(checkin, schema_version=2)
            raw = orjson.dumps(data)
        else:  # NOT_AN_OBJECT, or a kind whose template event the day does not have
            reason, what = Reason.NOT_AN_OBJECT, "a JSON array instead of an event"
            raw = b'[{"event_type": "ParticipantCheckedIn"}]'
        out.append((lab_topic, raw))
        expected.append(ExpectedDeadLetter(topic=lab_topic, reason=reason, what=what, key=key))
    return out, expected
