"""The simulated exam day: reproducible, and each injected fault does what it says.

That a 3,000-participant day has the 2024 shape (attendance, agencies, time zones, answer timing) is checked in
tests/integration/producers/test_simulator_large_day.py: the shares need the size, and the day takes a while.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from producers.daysender import DUPLICATE, EVENT, MALFORMED, SPOOLED, delivery_plan
from producers.exam_network import CENTRAL_AGENCIES, LAB_BY_ID
from producers.simulator import SimConfig, SimDay, build_day
from producers.truth import GroundTruth
from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event
from schemas.domain import AttendanceStatus as St
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy

REGISTRY = BlueprintRegistry.from_dir()


def fingerprint(day: SimDay) -> list[bytes]:
    return [e.to_bytes() for e in day.schedule + day.lab] + [raw for _, raw in day.malformed]


def test_the_same_seed_gives_the_same_day_and_another_seed_another() -> None:
    cfg = SimConfig(participants=90, reschedule_share=0.5, malformed=8, duplicate_share=0.05, seed=5, blank_sheets=4,
                    organisers={a.agency_id: "kemenkeu-assessment-center" for a in CENTRAL_AGENCIES[:20]})
    a, b = build_day(cfg, REGISTRY), build_day(cfg, REGISTRY)
    assert fingerprint(a) == fingerprint(b)
    assert a.ground_truth().to_json() == b.ground_truth().to_json()
    assert delivery_plan(a) == delivery_plan(b)
    assert fingerprint(build_day(SimConfig(participants=90, seed=6), REGISTRY)) != fingerprint(a)


def test_susulan_keep_their_home_activity_and_purpose_and_record_where_they_sat() -> None:
    """A susulan sits the host session's test, run by its organiser, and their result belongs at home: the
    truth keeps the home activity, agency and purpose, and records the host's apart."""
    organisers = {a.agency_id: "bkkbn-assessment-center" for a in CENTRAL_AGENCIES[::2]}
    day = build_day(SimConfig(participants=400, seats=20, reschedule_share=0.8, position_filling_share=0.5, seed=31,
                              organisers=organisers), REGISTRY)
    sat = [t for t in day.truth.values() if t.attended_susulan]
    assert len(sat) > 20
    crossed = set()
    for t in sat:
        home, host = day.sessions[t.session_id], day.sessions[t.scored_session]
        assert t.scored_session == t.rescheduled_to and host.agency_id != home.agency_id
        assert (t.activity_id, t.agency_id, t.purpose) == (home.activity_id, home.agency_id, home.purpose)
        assert (t.host_activity_id, t.host_agency_id) == (host.activity_id, host.agency_id)
        assert (t.blueprint_id, t.organiser_id) == (host.blueprint_id, host.organiser_id)
        assert set(t.sheets) == {s.value for s in REGISTRY.get(host.blueprint_id).section_names}
        if home.purpose != host.purpose:
            crossed.add((home.purpose.value, host.purpose.value))
    assert crossed == {("mapping", "position_filling"), ("position_filling", "mapping")}
    assert any(t.organiser_id for t in sat) and any(t.organiser_id is None for t in sat)
    for t in day.truth.values():
        if t.attended:  # sat at home: nothing recorded as a host
            home = day.sessions[t.session_id]
            assert t.host_activity_id is None and t.host_agency_id is None
            assert (t.blueprint_id, t.purpose, t.organiser_id) == (home.blueprint_id, home.purpose, home.organiser_id)
    # their lab events are the host lab's, in the host session
    lab_events = {(e.payload.session_id, e.payload.nip) for e in day.lab if not isinstance(e, ev.SessionClosed)}
    assert all((t.scored_session, t.nip) in lab_events and (t.session_id, t.nip) not in lab_events for t in sat)


def _by_participant(day: SimDay) -> dict[str, list[ev.Event]]:
    out: dict[str, list[ev.Event]] = {}
    for e in day.lab:
        if not isinstance(e, ev.SessionClosed):
            out.setdefault(e.payload.nip, []).append(e)
    return out


def test_blank_sheets_answer_nothing_and_leave_the_rest_of_the_day_as_it_was() -> None:
    cfg = SimConfig(participants=300, seats=30, seed=12, silent_sessions=2, reschedule_share=0.5, malformed=0)
    base = build_day(cfg, REGISTRY)
    day = build_day(replace(cfg, blank_sheets=8), REGISTRY)
    blank = [t for t in day.truth.values() if t.blank]
    assert len(blank) == 8 and all(t.attended_anywhere and t.scored_session not in day.silent_sessions for t in blank)
    assert [e.to_bytes() for e in day.schedule] == [e.to_bytes() for e in base.schedule]
    before, after = _by_participant(base), _by_participant(day)
    assert before.keys() == after.keys()
    walk_outs = sheets = 0
    for nip, events in after.items():
        t = next(t for t in day.truth.values() if t.nip == nip)
        if not t.blank:  # everyone else: the same events, byte for byte
            assert [e.to_bytes() for e in events] == [e.to_bytes() for e in before[nip]]
            continue
        assert not any(isinstance(e, ev.AnswersSaved) for e in events)  # nothing to autosave
        assert all(t.answered(sec) == 0 for sec in t.sheets) and t.sheets.keys() == base.truth[
            (t.session_id, nip)].sheets.keys()
        assert isinstance(events[0], ev.ParticipantCheckedIn) and events[0] == before[nip][0]
        submitted = [e for e in events if isinstance(e, ev.SectionSubmitted)]
        if set(t.completion.values()) == {"not_started"}:  # checked in, opened the first section, left
            walk_outs += 1
            assert [type(e) for e in events] == [ev.ParticipantCheckedIn, ev.SectionStarted] and not submitted
        else:  # sat it out: every sheet submitted when it would have been, every item blank
            sheets += 1
            assert [e.payload.section for e in submitted] == list(t.sheets)
            assert [e.event_id for e in submitted] == [
                e.event_id for e in before[nip] if isinstance(e, ev.SectionSubmitted)]
            for e in submitted:
                assert {a["item_id"] for a in e.payload.answers} == set(t.sheets[e.payload.section])
                assert {a["option"] for a in e.payload.answers} == {None}
                assert e.payload.completion == t.completion[e.payload.section]
    assert (walk_outs, sheets) == (4, 4)
    assert day.ground_truth().to_json()["expected"]["blank_sheets"] == 8


def test_organisers_run_their_agencys_sessions_and_nothing_else_changes() -> None:
    cfg = SimConfig(participants=240, seats=20, seed=44, reschedule_share=0.6, malformed=0)
    base = build_day(cfg, REGISTRY)
    agencies = sorted({p.agency_id for p in base.sessions.values()})
    organisers = {agencies[0]: "kemenkeu-assessment-center", agencies[1]: "bkn-kanreg-ii"}
    day = build_day(replace(cfg, organisers=organisers), REGISTRY)
    assert [e.to_bytes() for e in day.lab] == [e.to_bytes() for e in base.lab]
    scheduled = {e.payload.session_id: e for e in day.schedule if isinstance(e, ev.SessionScheduled)}
    for session_id, plan in day.sessions.items():
        assert plan.organiser_id == organisers.get(plan.agency_id)
        assert scheduled[session_id].payload.organiser_id == plan.organiser_id
        assert scheduled[session_id].payload.agency_name == plan.agency_name != ""
    assert {p.organiser_id for p in day.sessions.values()} == {*organisers.values(), None}
    # only those sessions' schedules differ, and only by their organiser
    strip = [e.model_copy(update={"payload": e.payload.model_copy(update={"organiser_id": None})})
             if isinstance(e, ev.SessionScheduled) else e for e in day.schedule]
    assert [e.to_bytes() for e in strip] == [e.to_bytes() for e in base.schedule]
    for t in day.truth.values():
        if t.attended_anywhere:
            assert t.organiser_id == day.sessions[t.scored_session].organiser_id
    assert day.ground_truth().config["organisers"] == organisers
    with pytest.raises(ValueError, match="unknown agency"):
        build_day(SimConfig(organisers={"kemenkeuu": "x"}), REGISTRY)


def test_the_pure_processor_files_results_where_the_truth_says() -> None:
    """Results filed at home with the home purpose, the host recorded, blank sheets incomplete and their
    sections not started or blank, everyone else counted: the processor over a day against its truth."""
    day = build_day(SimConfig(participants=400, seats=20, reschedule_share=0.8, position_filling_share=0.5,
                              blank_sheets=6, malformed=0, seed=31), REGISTRY)
    p = SessionProcessor(REGISTRY, ScoringPolicy(), {}, {})
    results: dict[tuple[str, str], ev.ParticipantScoredPayload] = {}

    def feed(event: ev.Event) -> None:
        for o in p.handle(event):
            if isinstance(o, ev.ParticipantScored):
                results[(o.payload.session_id, o.payload.nip)] = o.payload
            elif isinstance(o, ev.ParticipantScheduled):
                feed(o)

    for e in day.schedule + day.lab:
        feed(e)
    truth = day.ground_truth().results()
    assert results.keys() == truth.keys()
    for key, t in truth.items():
        r = results[key]
        assert (r.activity_id, r.agency_id, r.purpose.value, r.session_id) == (
            t.activity_id, t.agency_id, t.purpose.value, t.scored_session), key
        assert (r.host_activity_id, r.host_agency_id, r.blueprint_id) == (t.host_activity_id, t.host_agency_id,
                                                                          t.blueprint_id), key
        assert r.standing == ("incomplete" if t.blank else "counted"), key
        assert {x.section.value: x.completion for x in r.sections} == {str(k): v for k, v in t.completion.items()}
    assert sum(r.host_activity_id is not None for r in results.values()) > 20


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
