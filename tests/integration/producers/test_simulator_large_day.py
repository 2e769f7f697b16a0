"""A 3,000-participant simulated day has the 2024 shape: attendance, agencies, NIPs, time zones, answer timing.

The shares asserted here (88% attended, three quarters from central agencies, a few time-outs) need a day this
size to be stable, and building it takes tens of seconds, so it is not a unit test; the simulator's other rules
(reproducibility, each injected fault) are in tests/unit/producers/test_simulator.py. No broker, no database.
"""

from __future__ import annotations

from collections import Counter
from datetime import time, timedelta

import pytest

from producers.exam_network import CENTRAL_AGENCIES, LAB_BY_ID, REGIONAL_AGENCIES
from producers.simulator import SECTION_MINUTES, SimConfig, SimDay, build_day
from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.nip import validate_nip

REGISTRY = BlueprintRegistry.from_dir()
OFFSETS = {"bkn-pusat-jakarta": 7, "kanreg-v-jakarta": 7, "kanreg-i-yogyakarta": 7, "kanreg-vi-medan": 7,
           "kanreg-xiii-banda-aceh": 7, "kanreg-iv-makassar": 8, "kanreg-x-denpasar": 8,
           "kanreg-viii-banjarmasin": 8, "kanreg-xi-manado": 8, "kanreg-ix-jayapura": 9, "kanreg-xiv-manokwari": 9}


@pytest.fixture(scope="module")
def large() -> SimDay:
    return build_day(SimConfig(participants=3000, seats=30, reschedule_share=0.3, seed=77), REGISTRY)


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
