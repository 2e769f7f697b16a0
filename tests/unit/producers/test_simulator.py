"""The simulated exam day: realistic by the 2024 figures, reproducible, and each injected fault does what it says."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from producers.daysender import DUPLICATE, EVENT, MALFORMED, SPOOLED, delivery_plan
from producers.exam_network import CENTRAL_AGENCIES, LAB_BY_ID, REGIONAL_AGENCIES
from producers.simulator import SECTION_MINUTES, SimConfig, SimDay, build_day
from producers.truth import GroundTruth
from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event
from schemas.domain import AttendanceStatus as St
from schemas.nip import validate_nip
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy

REGISTRY = BlueprintRegistry.from_dir()
OFFSETS = {"bkn-pusat-jakarta": 7, "kanreg-v-jakarta": 7, "kanreg-i-yogyakarta": 7, "kanreg-vi-medan": 7,
           "kanreg-xiii-banda-aceh": 7, "kanreg-iv-makassar": 8, "kanreg-x-denpasar": 8,
           "kanreg-viii-banjarmasin": 8, "kanreg-xi-manado": 8, "kanreg-ix-jayapura": 9, "kanreg-xiv-manokwari": 9}


@pytest.fixture(scope="module")
def large() -> SimDay:
    return build_day(SimConfig(participants=3000, seats=30, reschedule_share=0.3, seed=77), REGISTRY)


def fingerprint(day: SimDay) -> list[bytes]:
    return [e.to_bytes() for e in day.schedule + day.lab] + [raw for _, raw in day.malformed]


def test_the_same_seed_gives_the_same_day_and_another_seed_another() -> None:
    cfg = SimConfig(participants=90, reschedule_share=0.5, malformed=8, duplicate_share=0.05, seed=5)
    a, b = build_day(cfg, REGISTRY), build_day(cfg, REGISTRY)
    assert fingerprint(a) == fingerprint(b)
    assert a.ground_truth().to_json() == b.ground_truth().to_json()
    assert delivery_plan(a) == delivery_plan(b)
    assert fingerprint(build_day(SimConfig(participants=90, seed=6), REGISTRY)) != fingerprint(a)


def test_a_large_day_has_the_2024_shape(large: SimDay) -> None:
    truth = large.truth.values()
    home_attendance = sum(t.attended for t in truth) / len(large.truth)
    assert 0.86 < home_attendance < 0.90  # 88% attended their slot in 2024
    central = {a.agency_id for a in CENTRAL_AGENCIES}
    central_share = sum(t.agency_id in central for t in truth) / len(large.truth)
    assert 0.70 < central_share < 0.84  # 54,440 of 70,907 assessed came from central agencies
    assert {t.agency_id for t in truth} - central <= {a.agency_id for a in REGIONAL_AGENCIES}
    assert len({t.agency_id for t in truth} & central) > 30
    # full and Mansoskul-only sessions, mapping and position filling, morning and afternoon
    plans = large.sessions.values()
    assert Counter(p.blueprint_id for p in plans).keys() == {"cact-full", "mansoskul-only"}
    assert {p.starts_at.time() for p in plans} == {time(7, 30), time(13, 0)}
    assert {p.purpose.value for p in plans} == {"mapping", "position_filling"}
    # seats are never exceeded, susulan arrivals included; susulan go to another agency's later session
    sitting = Counter(t.scored_session for t in truth if t.attended_anywhere)
    assert max(sitting.values()) <= 30
    moved = [t for t in truth if t.rescheduled_to]
    assert moved and all(not t.attended for t in moved)
    for t in moved:
        home, there = large.sessions[t.session_id], large.sessions[t.rescheduled_to or ""]
        assert there.agency_id != t.agency_id and there.starts_at > home.checkin_closes_at
    assert 0.8 < sum(t.attended_susulan for t in moved) / len(moved) <= 1.0


def test_nips_are_valid_and_unique_with_pns_and_pppk_layouts(large: SimDay) -> None:
    nips = [t.nip for t in large.truth.values()]
    assert len(set(nips)) == len(nips)
    for nip in nips:
        validate_nip(nip)
    pppk = sum(21 <= int(n[12:14]) <= 29 for n in nips)
    assert 0.05 < pppk / len(nips) < 0.15


def test_labs_keep_their_own_time_zone(large: SimDay) -> None:
    lab_of = {p.session_id: p.lab_id for p in large.sessions.values()}
    assert {LAB_BY_ID[lab].tz.utcoffset(None) for lab in lab_of.values()} == {timedelta(hours=h) for h in (7, 8, 9)}
    for e in large.lab:
        assert e.lab_id == lab_of[e.payload.session_id]
        assert e.occurred_at.utcoffset() == LAB_BY_ID[e.lab_id].tz.utcoffset(None)
        if e.lab_id in OFFSETS:
            assert e.occurred_at.utcoffset() == timedelta(hours=OFFSETS[e.lab_id])
    # the day's lab events are in true time order across zones: 07:30 WIT happens before 07:30 WIB
    assert all(a.occurred_at <= b.occurred_at for a, b in zip(large.lab, large.lab[1:]))


def test_answer_timing_is_realistic(large: SimDay) -> None:
    by_part: dict[tuple[str, str], list[ev.Event]] = {}
    for e in large.lab:
        if not isinstance(e, ev.SessionClosed):
            by_part.setdefault((e.payload.session_id, e.payload.nip), []).append(e)
    who = {t.nip: t for t in large.truth.values()}
    completions = Counter(c for t in large.truth.values() for c in t.completion.values())
    assert 0.02 < completions["timed_out"] / sum(completions.values()) < 0.09  # a few time-outs
    for (session_id, nip), events in list(by_part.items())[:400]:
        plan = large.sessions[session_id]
        checkin = events[0]
        assert isinstance(checkin, ev.ParticipantCheckedIn)
        assert plan.starts_at - timedelta(minutes=30) <= checkin.occurred_at < plan.checkin_closes_at
        assert all(e.occurred_at <= plan.ends_at for e in events)
        for section in {e.payload.section for e in events if isinstance(e, ev.SectionSubmitted)}:
            saves = [e for e in events if isinstance(e, ev.AnswersSaved) and e.payload.section == section]
            start = next(e for e in events if isinstance(e, ev.SectionStarted) and e.payload.section == section)
            sheet = next(e for e in events if isinstance(e, ev.SectionSubmitted) and e.payload.section == section)
            assert sheet.occurred_at - start.occurred_at <= timedelta(minutes=SECTION_MINUTES[section])
            # autosaves spread over the section, each a quarter hour apart, never contradicting the final sheet
            assert len(saves) >= 2
            assert all(b.occurred_at - a.occurred_at == timedelta(minutes=15) for a, b in zip(saves, saves[1:]))
            final = {a["item_id"]: a["option"] for a in sheet.payload.answers}
            assert all(final[a["item_id"]] == a["option"] for s in saves for a in s.payload.answers)
            assert final == who[nip].sheets[section]


def test_a_processed_day_equals_the_truth() -> None:
    """The pure processor, fed every fault at once in delivery order, agrees with the truth on every
    attendance row and every late flag, and rejects exactly the malformed messages, for their reasons."""
    day = build_day(SimConfig(participants=240, seats=30, reschedule_share=0.6, malformed=8, seed=8,
                              offline_labs=("bkn-pusat-jakarta", "kanreg-viii-banjarmasin"),
                              clock_skew={"bkn-pusat-jakarta": 400, "kanreg-ix-jayapura": -300},
                              duplicate_share=0.05), REGISTRY)
    p = SessionProcessor(REGISTRY, ScoringPolicy(), {}, {})
    rejected: list[str] = []
    rows: dict[tuple[str, str], tuple[str, bool]] = {}

    def feed(event: ev.Event) -> None:
        for o in p.handle(event):
            if isinstance(o, ev.AttendanceChanged):
                rows[(o.payload.session_id, o.payload.nip)] = (o.payload.status.value, o.payload.late)
            elif isinstance(o, ev.ParticipantScheduled):  # a susulan's arrival, re-keyed to the input topic
                feed(o)

    for d in [d for phase in delivery_plan(day) for d in phase]:
        try:
            feed(decode_event(d.event.to_bytes() if d.event else d.raw or b"", topic=d.topic))
        except Rejected as exc:
            rejected.append(exc.reason)
    truth = day.ground_truth()
    assert {k: status for k, (status, _) in rows.items()} == truth.attendance()
    assert {k: late for k, (status, late) in rows.items() if status == St.CHECKED_IN} == truth.late()
    assert any(truth.late().values())  # the +400 s clock makes some on-time check-ins late by its time
    assert Counter(rejected) == truth.deadletter_reasons()
    assert set(truth.attendance().values()) == {St.CHECKED_IN, St.NO_SHOW, St.RESCHEDULED}


def test_offline_lab_events_arrive_late_in_their_order_after_other_labs() -> None:
    base = build_day(SimConfig(participants=300, seats=30, seed=21, malformed=0), REGISTRY)
    lab_id = max(Counter(p.lab_id for p in base.sessions.values()).items(), key=lambda kv: kv[1])[0]
    day = build_day(SimConfig(participants=300, seats=30, seed=21, malformed=0, offline_labs=(lab_id,),
                              offline_minutes=40, offline_at=time(7, 50)), REGISTRY)
    assert fingerprint(day) == fingerprint(base)  # same day, only delivered differently
    (outage,) = day.faults.outages
    assert outage.start == datetime.combine(date(2026, 11, 3), time(7, 50), LAB_BY_ID[lab_id].tz)
    assert outage.end - outage.start == timedelta(minutes=40)
    _, lab = delivery_plan(day)
    sent = [d.event for d in lab if d.event is not None]
    assert sorted(e.event_id for e in sent) == sorted(e.event_id for e in day.lab)  # nothing lost
    held = [e for e in day.lab if e.lab_id == lab_id and outage.start <= e.occurred_at < outage.end]
    assert len(held) > 50 and [d.kind for d in lab].count(SPOOLED) == len(held)
    spooled = [d.event for d in lab if d.kind == SPOOLED]
    assert spooled == held  # in their original order
    first = sent.index(held[0])
    assert sent[first:first + len(held)] == held  # flushed together when the lab came back
    before = sent[:first]
    assert any(e.lab_id != lab_id and outage.start <= e.occurred_at < outage.end for e in before)
    assert not any(e.lab_id != lab_id and e.occurred_at >= outage.end for e in before)  # and not later than that
    assert all(e.occurred_at < outage.start for e in before if e.lab_id == lab_id)


def test_clock_skew_moves_only_that_labs_occurred_at_and_not_the_truth() -> None:
    base = build_day(SimConfig(participants=300, seats=30, seed=4), REGISTRY)
    lab_id = next(iter(base.sessions.values())).lab_id
    day = build_day(SimConfig(participants=300, seats=30, seed=4, clock_skew={lab_id: -420.5}), REGISTRY)
    assert [e.event_id for e in day.lab] == [e.event_id for e in base.lab]  # delivered in the same order
    for skewed, e in zip(day.lab, base.lab):
        shift = timedelta(seconds=-420.5) if e.lab_id == lab_id else timedelta(0)
        assert skewed.occurred_at == e.occurred_at + shift
        assert skewed.occurred_at.utcoffset() == e.occurred_at.utcoffset()
        assert skewed.payload == e.payload
    assert [e.to_bytes() for e in day.schedule] == [e.to_bytes() for e in base.schedule]
    assert day.ground_truth().participants == base.ground_truth().participants
    assert day.ground_truth().clock_skew == {lab_id: -420.5}
    with pytest.raises(ValueError, match="unknown lab"):
        build_day(SimConfig(clock_skew={"kanreg-xv-atlantis": 5}), REGISTRY)


def test_duplicates_are_resent_later_with_identical_event_ids() -> None:
    day = build_day(SimConfig(participants=120, seed=9, duplicate_share=0.04, malformed=0), REGISTRY)
    schedule, lab = delivery_plan(day)
    assert 0.02 < len(day.faults.duplicates) / (len(day.schedule) + len(day.lab)) < 0.06
    for phase in (schedule, lab):
        originals = {d.event.event_id: i for i, d in enumerate(phase) if d.kind == EVENT and d.event is not None}
        copies = [(i, d) for i, d in enumerate(phase) if d.kind == DUPLICATE]
        assert copies
        for i, d in copies:
            again = decode_event(d.raw or b"", topic=d.topic)
            assert again.event_id in day.faults.duplicates and originals[again.event_id] < i
            assert again == phase[originals[again.event_id]].event  # byte for byte the same event
            assert d.key == again.key().encode()
    assert sum(d.kind == DUPLICATE for d in schedule + lab) == len(day.faults.duplicates)


def test_malformed_events_are_rejected_for_the_reason_in_the_truth() -> None:
    day = build_day(SimConfig(participants=60, seed=2, malformed=10), REGISTRY)
    reasons = [d.reason for d in day.deadletters]
    assert reasons == ["bad_json", "invalid_nip", "unknown_event_type", "invalid_field", "wrong_topic",
                       "unknown_item", "unsupported_schema_version", "not_an_object", "bad_json", "invalid_nip"]
    processor = SessionProcessor(REGISTRY, ScoringPolicy(), {}, {})
    for e in day.schedule:  # lab events are judged against their session's schedule
        processor.handle(e)
    for (topic, raw), expected in zip(day.malformed, day.deadletters):
        with pytest.raises(Rejected) as caught:
            processor.handle(decode_event(raw, topic=topic))  # decoding or, for an unknown item, processing
        assert caught.value.reason == expected.reason, expected.what
    _, lab = delivery_plan(day)
    placed = [i for i, d in enumerate(lab) if d.kind == MALFORMED]
    assert len(placed) == 10 and placed[-1] < len(lab) - 1  # spread through the stream, not all at the end
    assert build_day(SimConfig(participants=60, seed=2, malformed=2), REGISTRY).ground_truth().deadletter_reasons() == {
        "bad_json": 1, "invalid_nip": 1}


def test_truth_round_trips_through_the_file(tmp_path: Path) -> None:
    day = build_day(SimConfig(participants=150, seats=30, reschedule_share=0.5, malformed=4, seed=13,
                              offline_labs=("kanreg-ix-jayapura",), clock_skew={"kanreg-x-denpasar": 90},
                              duplicate_share=0.01), REGISTRY)
    path = tmp_path / "truth.json"
    day.write_truth(path)
    loaded = GroundTruth.load(path)
    expected = day.ground_truth()
    assert loaded.participants == expected.participants == day.truth
    assert loaded.sessions == expected.sessions and loaded.outages == expected.outages
    assert loaded.deadletters == expected.deadletters and loaded.clock_skew == {"kanreg-x-denpasar": 90}
    assert loaded.attendance() == expected.attendance() and loaded.late() == expected.late()
    assert loaded.results().keys() == expected.results().keys()
    assert loaded.to_json() == expected.to_json()
    some = next(t for t in loaded.participants.values() if t.sheets)
    assert set(some.sheets[next(iter(some.sheets))].values()) - {None} <= {"A", "B", "C", "D"}
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not a cact-simulated-day"):
        GroundTruth.load(tmp_path / "other.json")
