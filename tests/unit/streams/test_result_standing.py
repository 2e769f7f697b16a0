"""Where a result is filed and whether it counts (issue 14): susulan at home, rescoring per activity, evidence,
accreditation. The processor as a driver: events in through the wire format, events out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from schemas import events as ev
from schemas.accreditation import AccreditationRegistry
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event
from schemas.domain import PositionTier
from schemas.reasons import Reason
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy

WITA, WIT = timezone(timedelta(hours=8)), timezone(timedelta(hours=9))
START = datetime(2026, 11, 3, 8, 0, tzinfo=WITA)
NIP_HOME, NIP_HOST, NIP_C = "199001012015031001", "198505122010012002", "197712312002121003"


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


@pytest.fixture(scope="module")
def accreditation() -> AccreditationRegistry:
    return AccreditationRegistry.shipped()


def make(registry: BlueprintRegistry, policy: ScoringPolicy | None = None, **kw: Any) -> SessionProcessor:
    return SessionProcessor(registry, policy or ScoringPolicy(), {}, {}, **kw)


def run(p: SessionProcessor, events: list[ev.Event]) -> list[ev.Event]:
    out: list[ev.Event] = []
    for e in events:
        out += p.handle(decode_event(e.to_bytes()))
    return out


def session(sid: str, activity: str, agency: str, purpose: str, *, lab: str = "kanreg-iv-makassar",
            start: datetime = START, blueprint: str = "mansoskul-only", organiser: str | None = None) -> ev.Event:
    payload: dict[str, Any] = {
        "session_id": sid, "lab_id": lab, "activity_id": activity, "agency_id": agency, "starts_at": start,
        "checkin_closes_at": start + timedelta(minutes=30), "ends_at": start + timedelta(hours=3),
        "blueprint_id": blueprint, "purpose": purpose, "agency_name": f"Instansi {agency}"}
    if organiser:
        payload["organiser_id"] = organiser
    return ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                        payload=payload)


def scheduled(sid: str, nip: str, tier: str = "administrator") -> ev.Event:
    return ev.new_event(ev.ParticipantScheduled, lab_id="bkn-scheduler", occurred_at=START - timedelta(days=1),
                        payload={"session_id": sid, "nip": nip, "name": "Dewi", "position_tier": tier})


def at(sid: str, lab: str, start: datetime, minutes: float, cls: type[ev.Event], **payload: Any) -> ev.Event:
    return ev.new_event(cls, lab_id=lab, occurred_at=start + timedelta(minutes=minutes),
                        payload={"session_id": sid, **payload})


def sitting(sid: str, nip: str, answers: list[dict[str, Any]] | None, *, lab: str = "kanreg-iv-makassar",
            start: datetime = START, section: str = "mansoskul") -> list[ev.Event]:
    out = [at(sid, lab, start, 0, ev.ParticipantCheckedIn, nip=nip)]
    if answers is not None:
        out.append(at(sid, lab, start, 100, ev.SectionSubmitted, nip=nip, section=section, completion="submitted",
                      answers=answers))
    return out


def closed(sid: str, lab: str = "kanreg-iv-makassar", start: datetime = START) -> ev.Event:
    return at(sid, lab, start, 180, ev.SessionClosed)


def sheet(registry: BlueprintRegistry, option: str = "B", section: str = "mansoskul") -> list[dict[str, Any]]:
    bp = registry.get("cact-full")
    assert bp is not None
    spec = next(s for s in bp.sections if s.section.value == section)
    return [{"item_id": i.item_id, "option": option} for i in spec.items]


def results(out: list[ev.Event]) -> dict[str, ev.ParticipantScoredPayload]:
    return {o.payload.nip: o.payload for o in out if isinstance(o, ev.ParticipantScored)}


HOST_START = START + timedelta(hours=5)
HOST_LAB = "kanreg-ix-jayapura"


def susulan_day(registry: BlueprintRegistry) -> list[ev.Event]:
    """NIP_HOME belongs to A1 (mapping, pemkot-makassar), misses S1 and sits S9 of A9 (position filling,
    pemprov-papua) beside NIP_HOST, who belongs there."""
    host_start = HOST_START.astimezone(WIT)
    move = ev.new_event(ev.ParticipantRescheduled, lab_id="bkn-scheduler", occurred_at=START + timedelta(hours=1),
                        payload={"nip": NIP_HOME, "from_session_id": "S1", "to_session_id": "S9"})
    return [session("S1", "A1", "pemkot-makassar", "mapping"),
            session("S9", "A9", "pemprov-papua", "position_filling", lab=HOST_LAB, start=host_start),
            scheduled("S1", NIP_HOME), scheduled("S9", NIP_HOST), move]


def with_forwards(p: SessionProcessor, events: list[ev.Event]) -> list[ev.Event]:
    """Run the events and, as the worker does through the schedule topic, the schedule events they derive."""
    out = run(p, events)
    forwards = [o for o in out if isinstance(o, ev.ParticipantScheduled)]
    return out + (with_forwards(p, forwards) if forwards else [])


def test_a_susulan_result_is_filed_at_home_with_the_home_purpose(registry: BlueprintRegistry) -> None:
    p = make(registry)
    out = with_forwards(p, susulan_day(registry))
    (forward,) = [o.payload for o in out if isinstance(o, ev.ParticipantScheduled)]
    assert (forward.home_activity_id, forward.home_agency_id, forward.home_purpose.value) == (
        "A1", "pemkot-makassar", "mapping")
    host_start = HOST_START.astimezone(WIT)
    answers = sheet(registry)
    out = run(p, sitting("S9", NIP_HOME, answers, lab=HOST_LAB, start=host_start)
              + sitting("S9", NIP_HOST, answers, lab=HOST_LAB, start=host_start))
    got = results(out)
    away, local = got[NIP_HOME], got[NIP_HOST]
    # the same sheet in the same session: the same levels and JPM, filed and categorised apart
    assert away.competencies == local.competencies and away.jpm == local.jpm
    assert (away.activity_id, away.agency_id, away.purpose.value, away.session_id) == (
        "A1", "pemkot-makassar", "mapping", "S9")
    assert (away.host_activity_id, away.host_agency_id) == ("A9", "pemprov-papua")
    assert away.result_id == ev.derived_id("result", NIP_HOME, "A1")
    assert away.category in ("Optimal", "Cukup Optimal", "Kurang Optimal")
    assert (local.activity_id, local.agency_id, local.purpose.value, local.host_activity_id) == (
        "A9", "pemprov-papua", "position_filling", None)
    assert local.category in ("MS", "MMS", "KMS")


def test_a_half_named_home_is_refused_by_the_contract() -> None:
    event = ev.new_event(ev.ParticipantScheduled, lab_id="bkn-scheduler", occurred_at=START, payload={
        "session_id": "S9", "nip": NIP_HOME, "name": "Dewi", "position_tier": "pengawas", "rescheduled_from": "S1",
        "home_agency_id": "pemkot-makassar", "home_activity_id": "A1", "home_purpose": "mapping"})
    raw = event.model_dump(mode="json")
    del raw["payload"]["home_purpose"]
    import orjson
    with pytest.raises(Rejected) as exc:
        decode_event(orjson.dumps(raw))
    assert exc.value.reason == Reason.INVALID_FIELD


def corrected(registry: BlueprintRegistry, version: str = "2026.2") -> BlueprintRegistry:
    bp = registry.get("mansoskul-only")
    assert bp is not None
    data = bp.model_dump(mode="json")
    data["version"] = version
    item = data["sections"][0]["subtests"][0]["items"][0]
    item["options"] = {k: 4 for k in item["options"]}
    return BlueprintRegistry([registry.get("cact-full"), bp, type(bp).model_validate(data)])  # type: ignore[list-item]


def rescore(sid: str, activity: str, version: str = "2026.2") -> ev.Event:
    return ev.new_event(ev.RescoreRequested, lab_id="cact-pipeline", occurred_at=START + timedelta(days=2),
                        payload={"session_id": sid, "activity_id": activity, "blueprint_id": "mansoskul-only",
                                 "blueprint_version": version, "reason": "key corrected"})


def test_rescoring_an_activity_covers_its_susulan_and_nobody_else(registry: BlueprintRegistry) -> None:
    p = make(registry, reload=lambda: corrected(registry))
    host_start = HOST_START.astimezone(WIT)
    with_forwards(p, susulan_day(registry))
    answers = sheet(registry, "A")
    first = results(run(p, sitting("S9", NIP_HOME, answers, lab=HOST_LAB, start=host_start)
                        + sitting("S9", NIP_HOST, answers, lab=HOST_LAB, start=host_start)))
    assert {r.blueprint_version for r in first.values()} == {"2026.1"}
    # A1's rescore reaches S9 for its susulan participant; A9's own participant keeps version 1
    req = rescore("S9", "A1")
    again = results(run(p, [req]))
    assert set(again) == {NIP_HOME}
    assert (again[NIP_HOME].result_version, again[NIP_HOME].blueprint_version) == (2, "2026.2")
    assert req.event_id in again[NIP_HOME].provenance and again[NIP_HOME].activity_id == "A1"
    assert results(run(p, [req])) == {}  # the same request again changes nothing
    # A9 rescored afterwards: its own participant moves, the susulan one stays as A1 left it
    assert set(results(run(p, [rescore("S9", "A9")]))) == {NIP_HOST}
    # A session with nobody of the activity refuses: the command must not report success for it
    with pytest.raises(Rejected) as exc:
        p.handle(rescore("S9", "A7"))
    assert exc.value.reason == Reason.UNKNOWN_SESSION and "no participant of activity A7" in exc.value.detail
    with pytest.raises(Rejected) as exc:
        p.handle(rescore("S404", "A1"))
    assert exc.value.reason == Reason.UNKNOWN_SESSION


def test_a_blank_sheet_is_incomplete_not_optimal(registry: BlueprintRegistry) -> None:
    p = make(registry)
    out = run(p, [session("S1", "A1", "pemkot-makassar", "mapping"), scheduled("S1", NIP_HOME, "pelaksana"),
                  *sitting("S1", NIP_HOME, None), closed("S1")])
    r = results(out)[NIP_HOME]
    # standard 1 everywhere: all levels 1 would be JPM 100, "Optimal": held back instead
    assert r.jpm == 100.0 and r.category == "Optimal"
    assert r.standing == "incomplete" and r.standing_detail.startswith("no item answered")
    assert [(s.section.value, s.completion, s.answered) for s in r.sections] == [("mansoskul", "not_started", 0)]


def test_a_section_below_the_minimum_makes_the_result_incomplete(registry: BlueprintRegistry) -> None:
    events = [session("S1", "A1", "pemkot-makassar", "mapping", blueprint="cact-full"), scheduled("S1", NIP_HOME),
              *sitting("S1", NIP_HOME, sheet(registry)), closed("S1")]
    r = results(run(make(registry), events))[NIP_HOME]
    assert r.standing == "incomplete"
    assert r.standing_detail.startswith("emerging_skills: 0 of ") and "digital_literacy: 0 of " in r.standing_detail
    assert {s.section.value: s.completion for s in r.sections} == {
        "mansoskul": "submitted", "emerging_skills": "not_started", "digital_literacy": "not_started"}
    # the minimum is policy: a whole Mansoskul sheet counts by default, not under a minimum above its 225 items
    strict = ScoringPolicy(min_answered={"mansoskul": 226})
    events = [session("S1", "A1", "pemkot-makassar", "mapping"), scheduled("S1", NIP_HOME),
              *sitting("S1", NIP_HOME, sheet(registry))]
    assert results(run(make(registry), events))[NIP_HOME].standing == "counted"
    r = results(run(make(registry, strict), events))[NIP_HOME]
    assert (r.standing, r.standing_detail) == ("incomplete", "mansoskul: 225 of 225 answered (minimum 226)")


def organised(registry: BlueprintRegistry, accreditation: Any, organiser: str | None,
              tier: str = "administrator") -> ev.ParticipantScoredPayload:
    p = make(registry, accreditation=accreditation)
    out = run(p, [session("S1", "A1", "kemendagri", "mapping", organiser=organiser), scheduled("S1", NIP_HOME, tier),
                  *sitting("S1", NIP_HOME, sheet(registry))])
    return results(out)[NIP_HOME]


def test_accreditation_decides_whether_a_result_is_recognised(registry: BlueprintRegistry,
                                                              accreditation: AccreditationRegistry) -> None:
    # Kemendagri's unit: 211/KEP/2020 ended on 2025-10-19, before the test day 2026-11-03
    r = organised(registry, accreditation, "kemendagri-ppk")
    assert r.standing == "not_recognised" and r.organiser_id == "kemendagri-ppk"
    assert "expired on 2025-10-19" in r.standing_detail
    # BKKBN's (430 Tahun 2024, until 2029-10-24), BKN's own and a session naming no organiser count
    assert organised(registry, accreditation, "bkkbn-assessment-center").standing == "counted"
    assert organised(registry, accreditation, "kanreg-iv-makassar").standing == "counted"
    assert organised(registry, accreditation, None).standing == "counted"
    # a narrower reading of category B: Kemenag's B unit may assess pelaksana, not administrators
    narrow = AccreditationRegistry(accreditation.rows, category_tiers={"A": list(PositionTier),
                                                                         "B": [PositionTier.PELAKSANA]})
    r = organised(registry, narrow, "kemenag-biro-kepegawaian")
    assert r.standing == "not_recognised" and "does not cover tier administrator" in r.standing_detail
    assert organised(registry, narrow, "kemenag-biro-kepegawaian", "pelaksana").standing == "counted"
    # not recognised wins over incomplete: it can never be released
    p = make(registry, accreditation=accreditation)
    out = run(p, [session("S1", "A1", "kemendagri", "mapping", organiser="kemendagri-ppk"),
                  scheduled("S1", NIP_HOME), *sitting("S1", NIP_HOME, None), closed("S1")])
    assert results(out)[NIP_HOME].standing == "not_recognised"
    # without a registry only BKN's own sessions count
    assert organised(registry, None, "bkkbn-assessment-center").standing == "not_recognised"
    assert organised(registry, None, None).standing == "counted"


def summary_of(out: list[ev.Event]) -> ev.SessionSummaryPayload:
    return [o.payload for o in out if isinstance(o, ev.SessionSummary)][-1]


def test_an_expiring_or_expired_accreditation_is_warned_about_when_the_session_is_planned(
        registry: BlueprintRegistry, accreditation: AccreditationRegistry) -> None:
    p = make(registry, accreditation=accreditation)
    # Kemensos' B unit ends on 2026-11-05, two days after this session: warned, results still count
    s = summary_of(run(p, [session("S1", "A1", "kemensos", "mapping", organiser="kemensos-adc")]))
    assert s.organiser_id == "kemensos-adc" and "2026-11-05" in s.accreditation_warning
    assert s.agency_name == "Instansi kemensos"
    s = summary_of(run(p, [session("S2", "A2", "kemendagri", "mapping", organiser="kemendagri-ppk")]))
    assert "2025-10-19" in s.accreditation_warning
    s = summary_of(run(p, [session("S3", "A3", "bkkbn", "mapping", organiser="bkkbn-assessment-center")]))
    assert s.accreditation_warning is None
    s = summary_of(run(p, [session("S4", "A4", "bkn", "mapping")]))
    assert (s.organiser_id, s.accreditation_warning) == (None, None)


def test_result_rules_are_the_same_on_replay(registry: BlueprintRegistry, accreditation: AccreditationRegistry) -> None:
    host_start = HOST_START.astimezone(WIT)
    day = susulan_day(registry) + [session("S5", "A5", "kemendagri", "mapping", organiser="kemendagri-ppk"),
                                   scheduled("S5", NIP_C), *sitting("S5", NIP_C, None), closed("S5")]

    later = sitting("S9", NIP_HOME, sheet(registry), lab=HOST_LAB, start=host_start) + [
        closed("S9", HOST_LAB, host_start)]

    def once() -> list[bytes]:
        p = make(corrected(registry), accreditation=accreditation)
        out = with_forwards(p, day)
        out += run(p, later)
        return [o.to_bytes() for o in out]

    first, second = once(), once()
    assert [a for a, b in zip(first, second) if a != b] == [] and len(first) == len(second)


def test_a_correction_that_cannot_be_loaded_refuses_the_request_not_the_worker(registry: BlueprintRegistry) -> None:
    from schemas.blueprint import BlueprintError

    def broken() -> BlueprintRegistry:
        raise BlueprintError("cact-full-2026.2.json and other/cact-full.json: same version, different content")

    p = make(registry, reload=broken)
    run(p, [session("S1", "A1", "pemkot-makassar", "mapping"), scheduled("S1", NIP_HOME)])
    with pytest.raises(Rejected) as exc:
        p.handle(rescore("S1", "A1"))
    assert exc.value.reason == Reason.UNKNOWN_BLUEPRINT and "could not be loaded" in exc.value.detail
