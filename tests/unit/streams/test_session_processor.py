"""The processor as a test driver: events in, events out, state in plain dicts (no broker)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from producers.simulator import SimConfig, build_day
from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event
from schemas.domain import AttendanceStatus as St
from schemas.reasons import Reason
from streams.processor import AttendancePolicy, SessionProcessor, held_events
from streams.scoring import ScoringPolicy

WITA = timezone(timedelta(hours=8))
START = datetime(2026, 11, 3, 8, 0, tzinfo=WITA)
NIP_A, NIP_B = "199001012015031001", "198505122010012002"


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


def make(registry: BlueprintRegistry, **kw: Any) -> SessionProcessor:
    return SessionProcessor(registry, ScoringPolicy(), {}, {}, **kw)


def run(p: SessionProcessor, events: list[ev.Event]) -> list[ev.Event]:
    out: list[ev.Event] = []
    for e in events:
        out += p.handle(decode_event(e.to_bytes()))  # through the wire format, as in the worker
    return out


def session(blueprint: str = "mansoskul-only") -> ev.Event:
    return ev.new_event(
        ev.SessionScheduled, lab_id="kanreg-iv-makassar", occurred_at=START - timedelta(days=1), payload={
        "session_id": "S1", "lab_id": "kanreg-iv-makassar", "activity_id": "A1", "agency_id": "pemkot-makassar",
        "starts_at": START,
        "checkin_closes_at": START + timedelta(minutes=30), "ends_at": START + timedelta(hours=3),
        "blueprint_id": blueprint, "purpose": "mapping"})


def scheduled(nip: str, session_id: str = "S1") -> ev.Event:
    return ev.new_event(ev.ParticipantScheduled, lab_id="kanreg-iv-makassar", occurred_at=START - timedelta(days=1),
                        payload={"session_id": session_id, "nip": nip, "name": "Dewi",
                                 "position_tier": "administrator"})


def lab(cls: type[ev.Event], minutes: float, **payload: Any) -> ev.Event:
    return ev.new_event(cls, lab_id="kanreg-iv-makassar", occurred_at=START + timedelta(minutes=minutes),
                        payload={"session_id": "S1", **payload})


def sheet(registry: BlueprintRegistry, option: str = "A", section: str = "mansoskul") -> list[dict[str, Any]]:
    bp = registry.get("cact-full")
    assert bp is not None
    spec = next(s for s in bp.sections if s.section.value == section)
    return [{"item_id": i.item_id, "option": option} for i in spec.items]


def statuses(out: list[ev.Event]) -> dict[str, str]:
    return {o.payload.nip: o.payload.status for o in out if isinstance(o, ev.AttendanceChanged)}


def results(out: list[ev.Event]) -> list[ev.ParticipantScored]:
    return [o for o in out if isinstance(o, ev.ParticipantScored)]


def test_simulated_day_matches_ground_truth(registry: BlueprintRegistry) -> None:
    day = build_day(SimConfig(participants=90, seed=7), registry)
    out = run(make(registry), day.schedule + day.lab)
    final = {(o.payload.session_id, o.payload.nip): o.payload.status
             for o in out if isinstance(o, ev.AttendanceChanged)}
    assert final == {k: (St.CHECKED_IN if t.attended else St.NO_SHOW) for k, t in day.truth.items()}
    scored = {(r.payload.session_id, r.payload.nip) for r in results(out)}
    assert scored == {k for k, t in day.truth.items() if t.attended}
    assert len(results(out)) == len(scored)  # one version each: nothing was resubmitted


def test_lab_events_before_the_schedule_end_in_the_same_place(registry: BlueprintRegistry) -> None:
    day = build_day(SimConfig(participants=40, seed=3), registry)
    in_order = run(make(registry), day.schedule + day.lab)
    shuffled = day.schedule + day.lab
    random.Random(1).shuffle(shuffled)
    out_of_order = run(make(registry), shuffled)
    key = lambda r: (r.payload.session_id, r.payload.nip)  # noqa: E731
    assert {key(r): r.payload.jpm for r in results(in_order)} == {key(r): r.payload.jpm for r in results(out_of_order)}
    assert statuses(in_order) == statuses(out_of_order)


def test_replay_with_state_emits_nothing_new_and_fresh_replay_is_identical(registry: BlueprintRegistry) -> None:
    day = build_day(SimConfig(participants=30, seed=5), registry)
    p = make(registry)
    first = run(p, day.schedule + day.lab)
    assert [o for o in run(p, day.schedule + day.lab) if not isinstance(o, ev.SessionSummary)] == []
    again = run(make(registry), day.schedule + day.lab)
    assert [o.to_bytes() for o in first] == [o.to_bytes() for o in again]  # same ids, same content


def test_no_show_declared_when_window_closes_by_event_time_and_corrected_later(registry: BlueprintRegistry) -> None:
    p = make(registry)
    out = run(p, [session(), scheduled(NIP_A), scheduled(NIP_B), lab(ev.ParticipantCheckedIn, -10, nip=NIP_A)])
    assert statuses(out) == {NIP_A: St.CHECKED_IN, NIP_B: St.SCHEDULED}
    out = run(p, [lab(ev.SectionStarted, 31, nip=NIP_A, section="mansoskul")])  # lab clock passes the close
    assert statuses(out) == {NIP_A: St.CHECKED_IN, NIP_B: St.NO_SHOW}  # A: same status, one more fact
    summary = [o for o in out if isinstance(o, ev.SessionSummary)][-1].payload
    assert (summary.scheduled, summary.checked_in, summary.no_show, summary.no_show_rate, summary.final) == (
        2, 1, 1, 0.5, True)
    # B's check-in at 08:20 arrives late (lab spool flushed): the no-show is corrected
    out = run(p, [lab(ev.ParticipantCheckedIn, 20, nip=NIP_B)])
    change = [o for o in out if isinstance(o, ev.AttendanceChanged)][0].payload
    assert (change.status, change.previous, change.correction, change.late) == (St.CHECKED_IN, St.NO_SHOW, True, False)


def test_late_checkin_admitted_or_refused(registry: BlueprintRegistry) -> None:
    events = [session(), scheduled(NIP_A), lab(ev.ParticipantCheckedIn, 45, nip=NIP_A)]
    admitted = statuses(run(make(registry), events))
    refused = statuses(run(make(registry, attendance=AttendancePolicy(late_admitted=False)), events))
    assert admitted == {NIP_A: St.CHECKED_IN} and refused == {NIP_A: St.NO_SHOW}


def test_unscheduled_checkin_is_flagged_not_dropped(registry: BlueprintRegistry) -> None:
    out = run(make(registry), [session(), lab(ev.ParticipantCheckedIn, 0, nip=NIP_A)])
    assert statuses(out) == {NIP_A: St.UNEXPECTED}


def test_resubmission_later_occurred_at_wins_in_any_arrival_order(registry: BlueprintRegistry) -> None:
    early = lab(ev.SectionSubmitted, 100, nip=NIP_A, section="mansoskul", completion="submitted",
                answers=sheet(registry, "A"))
    late = lab(ev.SectionSubmitted, 110, nip=NIP_A, section="mansoskul", completion="submitted",
               answers=sheet(registry, "D"))
    base = [session(), scheduled(NIP_A), lab(ev.ParticipantCheckedIn, 0, nip=NIP_A)]
    a = results(run(make(registry), base + [early, late]))
    b = results(run(make(registry), base + [late, early]))
    assert a[-1].payload.model_dump(exclude={"result_version"}) == b[-1].payload.model_dump(exclude={"result_version"})
    assert [r.payload.result_version for r in a] == [1, 2] and [r.payload.result_version for r in b] == [1]
    assert str(late.event_id) in map(str, a[-1].payload.provenance)


def test_section_never_submitted_is_scored_from_autosave_at_close(registry: BlueprintRegistry) -> None:
    items = sheet(registry, "B")
    p = make(registry)
    out = run(p, [session(), scheduled(NIP_A), lab(ev.ParticipantCheckedIn, 0, nip=NIP_A),
                  lab(ev.AnswersSaved, 60, nip=NIP_A, section="mansoskul", answers=items[:100]),
                  lab(ev.AnswersSaved, 90, nip=NIP_A, section="mansoskul", answers=items[100:150])])
    assert results(out) == []
    out = run(p, [lab(ev.SessionClosed, 180)])
    (res,) = results(out)
    assert res.payload.flags == ["scored_from_autosave"]
    assert res.payload.sections[0].answered == 150 and res.payload.sections[0].completion == "autosave"


def test_unknown_item_and_unknown_blueprint_are_rejected(registry: BlueprintRegistry) -> None:
    p = make(registry)
    run(p, [session(), scheduled(NIP_A)])
    with pytest.raises(Rejected) as exc:
        p.handle(lab(ev.SectionSubmitted, 10, nip=NIP_A, section="mansoskul", completion="submitted",
                     answers=[{"item_id": "NOT-AN-ITEM", "option": "A"}]))
    assert exc.value.reason == Reason.UNKNOWN_ITEM
    with pytest.raises(Rejected) as exc:
        p.handle(session("no-such-blueprint"))
    assert exc.value.reason == Reason.UNKNOWN_BLUEPRINT


def test_rescheduled_participant_moves_to_the_target_session(registry: BlueprintRegistry) -> None:
    p = make(registry)
    run(p, [session(), scheduled(NIP_A)])
    move = ev.new_event(ev.ParticipantRescheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(hours=2),
                        payload={"nip": NIP_A, "from_session_id": "S1", "to_session_id": "S9"})
    out = run(p, [move])
    assert statuses(out) == {NIP_A: St.RESCHEDULED}
    (forward,) = [o for o in out if isinstance(o, ev.ParticipantScheduled)]
    assert forward.key() == "S9" and forward.payload.rescheduled_from == "S1"
    assert forward.event_id == ev.derived_id("rescheduled", move.event_id)


def test_no_state_write_per_answer(registry: BlueprintRegistry) -> None:
    """An autosave batch writes the participant's key the same number of times whether it holds 1 or 225 answers."""

    def writes_for(answers: list[dict[str, Any]]) -> int:
        writes: Counter[str] = Counter()

        class Counting(dict):  # type: ignore[type-arg]
            def __setitem__(self, k: str, v: Any) -> None:
                writes[k] += 1
                super().__setitem__(k, v)

        p = SessionProcessor(registry, ScoringPolicy(), {}, Counting())
        run(p, [session(), scheduled(NIP_A), lab(ev.AnswersSaved, 10, nip=NIP_A, section="mansoskul", answers=answers)])
        return writes["S1/" + NIP_A]

    full = sheet(registry)
    assert len(full) == 225
    assert writes_for(full) == writes_for(full[:1]) == 2  # once when scheduled, once for the autosave


def corrected(registry: BlueprintRegistry, version: str = "2026.2") -> BlueprintRegistry:
    """The sample bank with the key of item MSK-M1-001 corrected: option A now weighs 4."""
    bp = registry.get("mansoskul-only")
    assert bp is not None
    data = bp.model_dump(mode="json")
    data["version"] = version
    item = data["sections"][0]["subtests"][0]["items"][0]
    assert item["item_id"] == "MSK-M1-001" and item["options"]["A"] != 4
    item["options"] = {k: (4 if k == "A" else min(v, 3)) for k, v in item["options"].items()}
    fixed = type(bp).model_validate(data)
    return BlueprintRegistry([registry.get("cact-full"), registry.get("mansoskul-only"), fixed])  # type: ignore[list-item]


def rescore(version: str) -> ev.Event:
    return ev.new_event(ev.RescoreRequested, lab_id="bkn-operator", occurred_at=START + timedelta(days=2),
                        payload={"session_id": "S1", "activity_id": "A1", "blueprint_id": "mansoskul-only",
                                 "blueprint_version": version, "reason": "key of MSK-M1-001 corrected"})


def test_rescore_with_a_corrected_key_emits_a_new_version(registry: BlueprintRegistry) -> None:
    sheet_a = sheet(registry, "A")
    p = make(registry)
    first = results(run(p, [session(), scheduled(NIP_A), lab(ev.ParticipantCheckedIn, 0, nip=NIP_A),
                            lab(ev.SectionSubmitted, 100, nip=NIP_A, section="mansoskul", completion="submitted",
                                answers=sheet_a)]))
    assert [r.payload.result_version for r in first] == [1]
    with pytest.raises(Rejected) as exc:  # the worker has not got the corrected file yet
        p.handle(rescore("2026.2"))
    assert exc.value.reason == Reason.UNKNOWN_BLUEPRINT

    p.reload = lambda: corrected(registry)
    req = rescore("2026.2")
    (again,) = results(run(p, [req]))
    m1 = lambda r: next(c for c in r.payload.competencies if c.code.value == "M1")  # noqa: E731
    assert again.payload.result_version == 2 and again.payload.blueprint_version == "2026.2"
    assert m1(again).raw > m1(first[0]).raw  # A now carries the full weight on the corrected item
    assert req.event_id in again.payload.provenance
    assert again.payload.result_id == first[0].payload.result_id
    assert results(run(p, [req])) == []  # the same request again changes nothing


def test_sessions_keep_the_key_they_were_scheduled_with(registry: BlueprintRegistry) -> None:
    p = make(corrected(registry))  # 2026.2 is the latest: new sessions take it
    out = results(run(p, [session(), scheduled(NIP_A), lab(ev.ParticipantCheckedIn, 0, nip=NIP_A),
                          lab(ev.SectionSubmitted, 100, nip=NIP_A, section="mansoskul", completion="submitted",
                              answers=sheet(registry))]))
    assert out[0].payload.blueprint_version == "2026.2"


def test_wall_clock_closes_the_window_of_a_silent_lab(registry: BlueprintRegistry) -> None:
    p = make(registry)
    run(p, [session(), scheduled(NIP_A), scheduled(NIP_B), lab(ev.ParticipantCheckedIn, -5, nip=NIP_A)])
    close = ev.new_event(ev.CheckinWindowClosed, lab_id="cact-pipeline", occurred_at=START + timedelta(hours=1),
                         payload={"session_id": "S1"})
    out = run(p, [close])
    assert statuses(out) == {NIP_A: St.CHECKED_IN, NIP_B: St.NO_SHOW}
    summary = [o for o in out if isinstance(o, ev.SessionSummary)][-1].payload
    assert summary.final and summary.closed_by_wall_clock and not summary.closed
    assert run(p, [close]) == []  # closing twice does nothing
    # the lab comes back and flushes B's check-in from 08:10: corrected
    out = run(p, [lab(ev.ParticipantCheckedIn, 10, nip=NIP_B)])
    assert statuses(out) == {NIP_B: St.CHECKED_IN}


def test_unscheduled_participant_is_not_a_no_show(registry: BlueprintRegistry) -> None:
    p = make(registry)
    unscheduled = ev.new_event(ev.ParticipantUnscheduled, lab_id="bkn-scheduler",
                               occurred_at=START - timedelta(hours=3),
                               payload={"session_id": "S1", "nip": NIP_B, "reason": "dinas luar"})
    out = run(p, [session(), scheduled(NIP_A), scheduled(NIP_B), unscheduled, lab(ev.SectionStarted, 40, nip=NIP_A,
                                                                                section="mansoskul")])
    assert statuses(out)[NIP_B] == St.UNSCHEDULED and statuses(out)[NIP_A] == St.NO_SHOW
    summary = [o for o in out if isinstance(o, ev.SessionSummary)][-1].payload
    assert (summary.scheduled, summary.no_show) == (1, 1)


def test_susulan_arrival_counts_for_the_home_agency(registry: BlueprintRegistry) -> None:
    p = make(registry)
    other = ev.new_event(
        ev.SessionScheduled, lab_id="kanreg-ix-jayapura", occurred_at=START - timedelta(days=1), payload={
        "session_id": "S9", "activity_id": "A9", "agency_id": "pemprov-papua", "starts_at": START + timedelta(hours=5),
        "checkin_closes_at": START + timedelta(hours=5, minutes=30), "ends_at": START + timedelta(hours=8),
        "blueprint_id": "mansoskul-only", "purpose": "mapping"})
    run(p, [session(), other, scheduled(NIP_A), lab(ev.SectionStarted, 40, nip=NIP_B, section="mansoskul")])
    move = ev.new_event(ev.ParticipantRescheduled, lab_id="bkn-scheduler", occurred_at=START + timedelta(hours=1),
                        payload={"nip": NIP_A, "from_session_id": "S1", "to_session_id": "S9"})
    out = run(p, [move])
    assert statuses(out) == {NIP_A: St.RESCHEDULED}
    (forward,) = [o for o in out if isinstance(o, ev.ParticipantScheduled)]
    assert (forward.payload.home_agency_id, forward.payload.home_activity_id) == ("pemkot-makassar", "A1")
    checkin = ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-ix-jayapura", occurred_at=START + timedelta(hours=5),
                           payload={"session_id": "S9", "nip": NIP_A})
    out = run(p, [forward, checkin])
    arrived = [o.payload for o in out if isinstance(o, ev.AttendanceChanged)][-1]
    assert (arrived.session_id, arrived.status, arrived.agency_id, arrived.activity_id, arrived.rescheduled_from,
            arrived.lab_id) == ("S9", St.CHECKED_IN, "pemkot-makassar", "A1", "S1", "kanreg-ix-jayapura")


# --- Who may say what about a session (streams/processor.py LabTrust, issue 13) ---------------------------


def from_lab(lab_id: str, cls: type[ev.Event], minutes: float, **payload: Any) -> ev.Event:
    return ev.new_event(cls, lab_id=lab_id, occurred_at=START + timedelta(minutes=minutes),
                        payload={"session_id": "S1", **payload})


def refused(p: SessionProcessor, event: ev.Event) -> str:
    before = (repr(p.sessions), repr(p.participants))
    with pytest.raises(Rejected) as caught:
        p.handle(decode_event(event.to_bytes()))
    assert (repr(p.sessions), repr(p.participants)) == before  # refused before anything changed
    return caught.value.reason


def test_another_lab_cannot_speak_for_a_session(registry: BlueprintRegistry) -> None:
    p = make(registry)
    run(p, [session(), scheduled(NIP_A), scheduled(NIP_B), lab(ev.ParticipantCheckedIn, -5, nip=NIP_A)])
    assert refused(p, from_lab("lab-elsewhere", ev.ParticipantCheckedIn, -4, nip=NIP_B)) == Reason.WRONG_LAB
    assert refused(p, from_lab("lab-elsewhere", ev.SessionClosed, 40)) == Reason.WRONG_LAB
    # its late clock would have closed the window: nobody became a no-show, the session is still open
    out = run(p, [lab(ev.ParticipantCheckedIn, 10, nip=NIP_B)])
    assert statuses(out) == {NIP_B: St.CHECKED_IN}


def test_one_wrong_clock_closes_no_window(registry: BlueprintRegistry) -> None:
    p = make(registry)
    run(p, [session(), scheduled(NIP_A), scheduled(NIP_B)])
    far = ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-iv-makassar", occurred_at=START.replace(year=2099),
                       payload={"session_id": "S1", "nip": NIP_A})
    early = ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-iv-makassar", occurred_at=START - timedelta(hours=7),
                         payload={"session_id": "S1", "nip": NIP_A})
    assert refused(p, far) == refused(p, early) == Reason.IMPLAUSIBLE_TIME
    # the bounds are the schedule's: 6 h after the end is still the lab's (a resend), one minute more is not
    ends = START + timedelta(hours=3)
    assert run(p, [ev.new_event(ev.SectionStarted, lab_id="kanreg-iv-makassar", occurred_at=ends + timedelta(hours=6),
                                payload={"session_id": "S1", "nip": NIP_A, "section": "mansoskul"})])
    assert refused(p, ev.new_event(ev.SectionStarted, lab_id="kanreg-iv-makassar",
                                   occurred_at=ends + timedelta(hours=6, minutes=1),
                                   payload={"session_id": "S1", "nip": NIP_A, "section": "mansoskul"})
                   ) == Reason.IMPLAUSIBLE_TIME


def test_events_before_the_schedule_are_held_and_judged_when_it_arrives(registry: BlueprintRegistry) -> None:
    """The verdict must not depend on which topic the worker happened to read first."""
    early = [lab(ev.ParticipantCheckedIn, -5, nip=NIP_A),
             from_lab("lab-elsewhere", ev.ParticipantCheckedIn, -4, nip=NIP_B),
             ev.new_event(ev.SectionStarted, lab_id="kanreg-iv-makassar", occurred_at=START.replace(year=2099),
                          payload={"session_id": "S1", "nip": NIP_A, "section": "mansoskul"})]
    plan = [session(), scheduled(NIP_A), scheduled(NIP_B)]
    p = make(registry)
    p.position = ("cact.lab.v1", 2, 41, None)
    assert run(p, early) == []  # held, nothing applied, nothing emitted yet
    out = run(p, plan)
    letters = [o.payload for o in out if isinstance(o, ev.DeadLettered)]
    assert sorted(d.reason for d in letters) == [Reason.IMPLAUSIBLE_TIME, Reason.WRONG_LAB]
    assert {(d.source_topic, d.source_partition, d.source_offset) for d in letters} == {("cact.lab.v1", 2, 41)}
    assert all("held until the schedule arrived" in d.detail for d in letters)
    final = statuses(out)
    assert final == {NIP_A: St.CHECKED_IN, NIP_B: St.SCHEDULED}
    # the same events in schedule-first order: the same attendance, the same two refusals
    q = make(registry)
    run(q, plan)
    reasons = []
    for e in early:
        try:
            q.handle(decode_event(e.to_bytes()))
        except Rejected as exc:
            reasons.append(exc.reason)
    assert sorted(reasons) == [Reason.IMPLAUSIBLE_TIME, Reason.WRONG_LAB]
    same = lambda parts: {k: {**v, "facts": sorted(v["facts"])} for k, v in parts.items()}  # noqa: E731
    assert same(q.participants) == same(p.participants)  # facts are kept in arrival order; only their count matters


def test_held_events_are_capped_per_partition(registry: BlueprintRegistry) -> None:
    from streams.processor import StateLimits

    p = make(registry, limits=StateLimits(held_events=2))
    run(p, [lab(ev.ParticipantCheckedIn, 0, nip=NIP_A), lab(ev.ParticipantCheckedIn, 1, nip=NIP_B)])
    assert refused(p, lab(ev.SectionStarted, 2, nip=NIP_A, section="mansoskul")) == Reason.STATE_LIMIT
    elsewhere = ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-iv-makassar", occurred_at=START,
                             payload={"session_id": "S3", "nip": NIP_A})
    assert refused(p, elsewhere) == Reason.STATE_LIMIT  # and takes no unscheduled-session slot either
    assert held_events(p.sessions, ["0", "1"]) == 2
    run(p, [session()])  # released: room again
    assert run(p, [ev.new_event(ev.ParticipantCheckedIn, lab_id="kanreg-iv-makassar", occurred_at=START,
                                payload={"session_id": "S2", "nip": NIP_A})]) == []


def test_views_name_the_hosting_lab_not_the_scheduler(registry: BlueprintRegistry) -> None:
    plan = ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                        payload={**session().payload.model_dump(mode="json"), "lab_id": "kanreg-iv-makassar"})
    out = run(make(registry), [plan, scheduled(NIP_A), lab(ev.ParticipantCheckedIn, 0, nip=NIP_A)])
    assert {o.payload.lab_id for o in out if isinstance(o, (ev.AttendanceChanged, ev.SessionSummary))} == {
        "kanreg-iv-makassar"}


def test_a_schedule_without_a_lab_takes_the_first_lab_that_speaks(registry: BlueprintRegistry) -> None:
    legacy = ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                          payload={k: v for k, v in session().payload.model_dump(mode="json").items() if k != "lab_id"})
    p = make(registry)
    out = run(p, [legacy, scheduled(NIP_A), scheduled(NIP_B)])
    assert {o.payload.lab_id for o in out if isinstance(o, ev.SessionSummary)} == {"unknown"}
    out = run(p, [lab(ev.ParticipantCheckedIn, 0, nip=NIP_A)])
    assert {o.payload.lab_id for o in out if isinstance(o, (ev.AttendanceChanged, ev.SessionSummary))} == {
        "kanreg-iv-makassar"}
    assert refused(p, from_lab("lab-elsewhere", ev.ParticipantCheckedIn, 1, nip=NIP_B)) == Reason.WRONG_LAB



def test_a_refused_first_event_makes_no_lab_the_host(registry: BlueprintRegistry) -> None:
    legacy = ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                          payload={k: v for k, v in session().payload.model_dump(mode="json").items() if k != "lab_id"})
    p = make(registry)
    run(p, [legacy, scheduled(NIP_A)])
    bad = from_lab("lab-forger", ev.AnswersSaved, 5, nip=NIP_A, section="mansoskul",
                   answers=[{"item_id": "NO-SUCH-ITEM", "option": "A"}])
    assert refused(p, bad) == Reason.UNKNOWN_ITEM
    assert p.sessions["S1"]["meta"]["lab_id"] is None
    assert statuses(run(p, [lab(ev.ParticipantCheckedIn, 0, nip=NIP_A)])) == {NIP_A: St.CHECKED_IN}
    assert p.sessions["S1"]["meta"]["lab_id"] == "kanreg-iv-makassar"


def test_a_section_the_blueprint_lacks_is_dead_lettered(registry: BlueprintRegistry) -> None:
    p = make(registry)
    run(p, [session("mansoskul-only"), scheduled(NIP_A), lab(ev.ParticipantCheckedIn, 0, nip=NIP_A)])
    other = sheet(registry, section="digital_literacy")
    for event in (lab(ev.SectionSubmitted, 60, nip=NIP_A, section="digital_literacy", completion="submitted",
                      answers=other),
                  lab(ev.AnswersSaved, 50, nip=NIP_A, section="digital_literacy", answers=other[:3]),
                  lab(ev.SectionStarted, 40, nip=NIP_A, section="digital_literacy")):
        assert refused(p, event) == Reason.UNKNOWN_SECTION
