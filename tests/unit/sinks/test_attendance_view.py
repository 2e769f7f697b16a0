"""The operator page's rules (sinks/attendance_view.py), with an injected clock: rates over closed check-in
windows only, None (never 0%) without one, session states, where a susulan counts, lab-local times with zone;
and the store reads behind them, on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from schemas import events as ev
from sinks.attendance_view import (
    SeatCount,
    SessionFacts,
    absent,
    attendance_overview,
    build_overview,
    held_back,
    lab_local,
    session_state,
    zone_label,
)
from sinks.store import ResultsStore

WIB, WITA, WIT = (timezone(timedelta(hours=h)) for h in (7, 8, 9))
DAY = datetime(2026, 11, 3, tzinfo=UTC)
NOW = datetime(2026, 11, 3, 5, 15, tzinfo=UTC)  # 12:15 WIB, 13:15 WITA, 14:15 WIT


def session(sid: str, starts: datetime, *, agency: str = "kemenkeu", lab: str = "bkn-pusat-jakarta",
            final: bool = False, closed: bool = False, offset: int = 420, **extra: Any) -> SessionFacts:
    return SessionFacts(session_id=sid, lab_id=lab, agency_id=agency, activity_id=f"ACT-{agency}", starts_at=starts,
                        checkin_closes_at=starts + timedelta(minutes=30), ends_at=starts + timedelta(hours=5),
                        final=final, closed=closed, utc_offset_minutes=offset, **extra)


def seats(sid: str, status: str, n: int, *, agency: str = "kemenkeu", lab: str = "bkn-pusat-jakarta",
          arrival: bool = False) -> SeatCount:
    return SeatCount(sid, lab, agency, f"ACT-{agency}", status, arrival, n)


def overview(sessions: list[SessionFacts], rows: list[SeatCount], **kw: Any) -> dict[str, Any]:
    return build_overview(sessions, rows, now=kw.pop("now", NOW), threshold=kw.pop("threshold", 0.15),
                          silent_after_s=600, lab_last_seen=kw.pop("lab_last_seen", {}), **kw)


def by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in rows}


# ---- rates ----------------------------------------------------------------------------------------

def test_a_rate_counts_only_sessions_whose_check_in_window_has_closed() -> None:
    morning = session("S1", datetime(2026, 11, 3, 7, 30, tzinfo=WIB), final=True)
    afternoon = session("S2", datetime(2026, 11, 3, 12, 0, tzinfo=WIB))  # in check-in at NOW
    later = session("S3", datetime(2026, 11, 3, 15, 0, tzinfo=WIB))  # not started
    data = overview([morning, afternoon, later], [
        seats("S1", "checked_in", 8), seats("S1", "no_show", 2),
        seats("S2", "checked_in", 5), seats("S2", "scheduled", 25), seats("S3", "scheduled", 30)])

    agency = by(data["by_agency"], "agency_id")["kemenkeu"]
    # 2 of the 10 whose window closed, not 2 of the 70 scheduled (the mid-day reading the issue saw)
    assert (agency["no_show"], agency["in_closed_windows"], agency["no_show_rate"]) == (2, 10, 0.2)
    assert agency["scheduled"] == 70 and agency["checked_in"] == 13
    assert (agency["sessions_closed"], agency["sessions"]) == (1, 3)
    assert agency["above_threshold"] is True
    assert data["overall"]["no_show_rate"] == 0.2 and data["overall"]["sessions_closed"] == 1
    rates = {s["session_id"]: s["no_show_rate"] for s in data["sessions"]}
    assert rates == {"S1": 0.2, "S2": None, "S3": None}  # checked-in people of an open window are in no rate
    lab = by(data["by_lab"], "lab_id")["bkn-pusat-jakarta"]
    assert (lab["no_show_rate"], lab["sessions_closed"], lab["sessions_in_progress"]) == (0.2, 1, 2)


def test_without_a_closed_window_the_rate_is_none_and_says_what_it_waits_for() -> None:
    data = overview([session("S1", datetime(2026, 11, 3, 12, 0, tzinfo=WIB), agency="bps"),
                     session("S2", datetime(2026, 11, 3, 15, 0, tzinfo=WIB), agency="lan")],
                    [seats("S1", "checked_in", 3, agency="bps"), seats("S2", "scheduled", 30, agency="lan")],
                    threshold=0.0)
    agencies = by(data["by_agency"], "agency_id")
    assert agencies["bps"]["no_show_rate"] is None and agencies["bps"]["rate_pending"] == "in_checkin"
    assert agencies["lan"]["no_show_rate"] is None and agencies["lan"]["rate_pending"] == "not_started"
    assert not agencies["bps"]["above_threshold"] and not agencies["lan"]["above_threshold"]  # even at 0
    assert data["overall"]["no_show_rate"] is None and data["overall"]["rate_pending"] == "in_checkin"
    assert (data["overall"]["sessions_closed"], data["overall"]["sessions"]) == (0, 2)
    # a closed session nobody was left in (all moved away) has no rate either, and says so
    gone = overview([session("S9", datetime(2026, 11, 3, 7, 30, tzinfo=WIB), final=True)],
                    [seats("S9", "rescheduled", 2)])
    assert gone["overall"]["no_show_rate"] is None and gone["overall"]["rate_pending"] == "no_participants"


def test_a_susulan_counts_in_the_seat_it_was_moved_to_once_that_window_closes() -> None:
    home = session("H", datetime(2026, 11, 3, 7, 30, tzinfo=WIB), agency="kemenkeu", final=True)
    host = session("X", datetime(2026, 11, 3, 12, 0, tzinfo=WIB), agency="bps")  # in check-in at NOW
    rows = [seats("H", "checked_in", 7), seats("H", "no_show", 1), seats("H", "rescheduled", 2),
            seats("X", "scheduled", 2, arrival=True), seats("X", "checked_in", 10, agency="bps")]
    mid = overview([home, host], rows)
    kemenkeu = by(mid["by_agency"], "agency_id")["kemenkeu"]
    # scheduled once (10 persons); the 2 moved wait for their new window: 1 of 8, not 1 of 10 nor 3 of 10
    assert (kemenkeu["scheduled"], kemenkeu["rescheduled"], kemenkeu["in_closed_windows"]) == (10, 2, 8)
    assert kemenkeu["no_show_rate"] == 0.125
    assert by(mid["sessions"], "session_id")["H"]["no_show_rate"] == 0.125  # the seats left in H

    # the host's window closes: one of the two attended there, one missed it again
    closed_host = session("X", host.starts_at, agency="bps", final=True)
    rows_after = rows[:3] + [seats("X", "checked_in", 1, arrival=True), seats("X", "no_show", 1, arrival=True),
                             seats("X", "checked_in", 10, agency="bps")]
    after = overview([home, closed_host], rows_after)
    kemenkeu = by(after["by_agency"], "agency_id")["kemenkeu"]
    assert (kemenkeu["scheduled"], kemenkeu["in_closed_windows"], kemenkeu["no_show"]) == (10, 10, 2)
    assert kemenkeu["no_show_rate"] == 0.2
    assert by(after["by_agency"], "agency_id")["bps"]["no_show_rate"] == 0.0  # the host agency's own people
    x = by(after["sessions"], "session_id")["X"]
    assert (x["scheduled"], x["in_closed_windows"], x["no_show_rate"]) == (12, 12, round(1 / 12, 4))
    assert after["overall"]["scheduled"] == 20 and after["overall"]["no_show_rate"] == round(2 / 20, 4)


# ---- states ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "checked_in", "final", "closed", "state"), [
    (datetime(2026, 11, 3, 6, 59, tzinfo=WIB), 0, False, False, "not_started"),
    (datetime(2026, 11, 3, 7, 0, tzinfo=WIB), 0, False, False, "in_checkin"),  # check-in opens 30 min before
    (datetime(2026, 11, 3, 6, 40, tzinfo=WIB), 1, False, False, "in_checkin"),  # a lab checked someone in already
    (datetime(2026, 11, 3, 9, 0, tzinfo=WIB), 0, False, False, "in_checkin"),  # past closing, no event yet
    (datetime(2026, 11, 3, 6, 0, tzinfo=WIB), 0, True, False, "window_closed"),  # event time closed it
    (datetime(2026, 11, 3, 6, 0, tzinfo=WIB), 0, True, True, "closed"),
])
def test_session_states(now: datetime, checked_in: int, final: bool, closed: bool, state: str) -> None:
    s = session("S1", datetime(2026, 11, 3, 7, 30, tzinfo=WIB), final=final, closed=closed)
    assert session_state(s, now, checked_in=checked_in) == state


def test_the_silent_lab_watch_looks_only_at_sessions_under_way() -> None:
    data = overview([session("S1", datetime(2026, 11, 3, 12, 0, tzinfo=WIB), lab="kanreg-ii-surabaya"),
                     session("S2", datetime(2026, 11, 3, 15, 0, tzinfo=WIB), lab="kanreg-iii-bandung")], [],
                    lab_last_seen={"kanreg-iii-bandung": NOW.timestamp() - 3600})
    labs = by(data["by_lab"], "lab_id")
    assert labs["kanreg-ii-surabaya"]["silent"] is True  # in check-in, never heard
    assert labs["kanreg-iii-bandung"]["silent"] is False  # not started: nothing to hear yet


# ---- times and names ------------------------------------------------------------------------------

@pytest.mark.parametrize(("offset", "label"), [(420, "WIB"), (480, "WITA"), (540, "WIT"), (0, "UTC"), (None, "UTC"),
                                               (330, "UTC+05:30"), (-180, "UTC-03:00")])
def test_zone_labels(offset: int | None, label: str) -> None:
    assert zone_label(offset) == label


def test_times_are_the_labs_own_with_date_and_zone() -> None:
    # 07:30 WIT is 22:30 UTC the day before: the page must say 07:30 WIT on the 3rd, not 22:30 anywhere
    starts = datetime(2026, 11, 3, 7, 30, tzinfo=WIT).astimezone(UTC)
    assert lab_local(starts, starts + timedelta(hours=4, minutes=15), 540) == {
        "date": "2026-11-03", "starts": "07:30", "ends": "11:45", "ends_date": "2026-11-03", "zone": "WIT",
        "utc_offset_minutes": 540}
    late = datetime(2026, 11, 3, 22, 0, tzinfo=WITA)
    assert lab_local(late, late + timedelta(hours=3), 480)["ends_date"] == "2026-11-04"
    data = overview([session("S1", starts, offset=540, agency_name="Kementerian Keuangan")], [])
    row = data["sessions"][0]
    assert (row["local"]["date"], row["local"]["starts"], row["local"]["zone"]) == ("2026-11-03", "07:30", "WIT")
    assert data["by_agency"][0]["agency_name"] == "Kementerian Keuangan"


def test_accreditation_warnings_are_listed_per_session() -> None:
    warned = session("S1", datetime(2026, 11, 3, 7, 30, tzinfo=WIB), organiser_id="univ-x",
                     accreditation_warning="accreditation of univ-x expires on 2026-12-01")
    data = overview([warned, session("S2", datetime(2026, 11, 3, 8, 0, tzinfo=WIB))], [])
    assert data["accreditation_warnings"] == [{"session_id": "S1", "agency_id": "kemenkeu", "organiser_id": "univ-x",
                                               "warning": "accreditation of univ-x expires on 2026-12-01"}]


# ---- the store ------------------------------------------------------------------------------------

def _summary(sid: str, starts: datetime, *, final: bool, scheduled: int, no_show: int, **extra: Any) -> ev.Event:
    return ev.new_event(ev.SessionSummary, lab_id="cact-pipeline", occurred_at=starts, payload={
        "session_id": sid, "activity_id": "ACT-202611-kemenkeu", "agency_id": "kemenkeu",
        "lab_id": "kanreg-ix-jayapura", "starts_at": starts, "checkin_closes_at": starts + timedelta(minutes=30),
        "ends_at": starts + timedelta(hours=4),
        "closed": False, "closed_by_wall_clock": False, "scheduled": scheduled, "checked_in": scheduled - no_show,
        "no_show": no_show, "rescheduled": 0, "unexpected": 0, "no_show_rate": 0.0, "final": final,
        "agency_name": "Kementerian Keuangan", **extra})


def _attendance(sid: str, nip: str, status: str, **extra: Any) -> ev.Event:
    return ev.new_event(ev.AttendanceChanged, lab_id="cact-pipeline", occurred_at=datetime(2026, 11, 3, 1, tzinfo=UTC),
                        payload={"session_id": sid, "activity_id": "ACT-202611-kemenkeu", "agency_id": "kemenkeu",
                                 "lab_id": "kanreg-ix-jayapura", "nip": nip, "status": status, "previous": None,
                                 **extra})


def test_the_overview_and_the_lists_from_the_store(tmp_path: Path, store_cases: Any) -> None:
    store = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    store.create_schema()
    starts = datetime(2026, 11, 3, 7, 30, tzinfo=WIT)
    nips = [f"19900101201503100{i}" for i in range(4)]
    scored = store_cases.scored(nips[0], session="S1", activity="ACT-202611-kemenkeu")
    incomplete = store_cases.scored(nips[1], session="S1", activity="ACT-202611-kemenkeu")
    incomplete = incomplete.model_copy(update={"payload": incomplete.payload.model_copy(update={
        "standing": "incomplete", "standing_detail": "no answered items"})})
    store.write_batch([
        _summary("S1", starts, final=True, scheduled=4, no_show=1, organiser_id="univ-x",
                 accreditation_warning="expires in 30 days"),
        _summary("S2", starts + timedelta(hours=6), final=False, scheduled=0, no_show=0),
        _attendance("S1", nips[0], "checked_in"), _attendance("S1", nips[1], "checked_in"),
        _attendance("S1", nips[2], "no_show"), _attendance("S1", nips[3], "rescheduled", rescheduled_to="S2"),
        _attendance("S2", nips[3], "scheduled", rescheduled_from="S1"), scored, incomplete])
    data = attendance_overview(store, threshold=0.15, silent_after_s=600, lab_last_seen={},
                               now=datetime(2026, 11, 3, 2, tzinfo=UTC))
    s1 = by(data["sessions"], "session_id")["S1"]
    assert (s1["state"], s1["in_closed_windows"], s1["no_show_rate"]) == ("window_closed", 3, 0.3333)
    assert (s1["local"]["starts"], s1["local"]["zone"], s1["agency_name"]) == ("07:30", "WIT", "Kementerian Keuangan")
    assert by(data["sessions"], "session_id")["S2"]["state"] == "not_started"
    assert data["overall"]["scheduled"] == 4 and data["overall"]["no_show_rate"] == 0.3333
    assert data["results"] == {"counted": 1, "incomplete": 1, "not_recognised": 0}
    assert [w["session_id"] for w in data["accreditation_warnings"]] == ["S1"]
    assert not [n for n in nips if n in repr(data)]  # counts and ids only: no NIP in the overview

    away = absent(store, "S1")
    assert away is not None and away["session"]["local"]["zone"] == "WIT"
    assert [(r["nip"], r["status"], r["rescheduled_to"]) for r in away["absent"]] == [
        (nips[2], "no_show", None), (nips[3], "rescheduled", "S2")]
    assert absent(store, "S-UNKNOWN") is None
    held = held_back(store)
    assert held["total"] == 1
    assert [(r["nip"], r["standing"], r["standing_detail"], r["push_status"]) for r in held["results"]] == [
        (nips[1], "incomplete", "no answered items", "held")]  # held back from SI ASN until an operator decides
    store.dispose()
