"""A participant's result: when it is computed, from what, where it is filed, and whether it counts.

The numbers are ``streams/scoring.py``'s; this module decides when to score (a checked-in participant with
every section's sheet, or anyone checked in once the session closed), what the result is computed from (its
``inputs`` digest: scored again only when one of them changed), and what it says beyond the numbers: the
activity it is filed under (``home``), provenance, flags and standing. A result's id and version are derived,
so a replay emits the same events.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypedDict

from schemas import events as ev
from schemas.blueprint import Blueprint
from schemas.domain import AttendanceStatus as St
from schemas.domain import Competency, PositionTier, Purpose, Section
from streams import scoring, sheets
from streams.session_state import ParticipantState, Rescore, Scheduled, SessionMeta, SessionState
from streams.turn import PIPELINE_ID, Turn, at, digest


class Home(TypedDict):
    """Where a participant's result is filed (the payload keys of a moved participant's schedule too)."""

    home_activity_id: str | None
    home_agency_id: str | None
    home_purpose: str | None


def home(s: SessionState, part: ParticipantState) -> Home:
    """Where a participant's result is filed: their own activity, agency and purpose, which for a susulan
    arrival are not the host session's (docs/scoring.md §6)."""
    meta: SessionMeta | dict[str, Any] = s["meta"] or {}
    sched: Scheduled | dict[str, Any] = part["scheduled"] or {}
    own = sched.get("home_activity_id")
    return {"home_activity_id": own or meta.get("activity_id"),
            "home_agency_id": sched.get("home_agency_id") if own else meta.get("agency_id"),
            # State from before home_purpose existed has none: the host's, as results were then filed.
            "home_purpose": (sched.get("home_purpose") or meta.get("purpose")) if own else meta.get("purpose")}


def rescore_of(s: SessionState, part: ParticipantState) -> Rescore | None:
    """The rescore requested for the activity the participant's result is filed under, if any."""
    activity = home(s, part)["home_activity_id"]
    return (s.get("rescores") or {}).get(activity) if activity is not None else None


def score_inputs(t: Turn, s: SessionState, part: ParticipantState, blueprint: Blueprint, wanted: list[str]) -> str:
    """A digest of everything a result is computed from: sheets and autosaves by their event ids (an
    autosave's merged answers too: their merge depends on arrival), the schedule, the key and the policy."""
    meta, sched = s["meta"], part["scheduled"]
    assert meta is not None and sched is not None  # maybe_score checked
    sections: dict[str, Any] = {}
    for sec in wanted:
        if sec in part["sheets"]:
            sheet = part["sheets"][sec]
            sections[sec] = [sheet["event_id"], sheet["completion"], sheet["at"]]
        elif sec in part["autosave"]:
            saved = part["autosave"][sec]
            sections[sec] = [saved["event_ids"], saved["at"], saved["answers"]]
    accreditation, checkin = t.rules.accreditation, part["checkin"]
    return digest({
        "blueprint": [blueprint.blueprint_id, blueprint.version], "policy": t.rules.policy.digest,
        "meta": [meta["activity_id"], meta["agency_id"], meta["purpose"], meta["event_id"], meta["ends_at"]],
        "rescore": meta.get("rescore_event_id"), "rescored": rescore_of(s, part),
        "home": home(s, part), "organiser": meta.get("organiser_id"),
        "accreditation": accreditation.digest if accreditation is not None else None,
        "scheduled": [sched["event_id"], sched["tier"], sched["standard_levels"]],
        "checkin": checkin["at"] if checkin else None, "sections": sections,
        "who": [part["nip"], part["session_id"]],
    })


def standing(t: Turn, organiser_id: str | None, tier: PositionTier, on: date,
             outcome: scoring.Outcome) -> tuple[str, str | None]:
    """Whether a result counts (docs/scoring.md §6, "Whether it counts"). An organiser not accredited for the
    test date or the tier is final (``not_recognised``: never sent); too little evidence (``incomplete``)
    waits for an operator. Without a registry only BKN's own sessions count."""
    policy, accreditation = t.rules.policy, t.rules.accreditation
    if accreditation is None:
        if organiser_id is not None:
            return "not_recognised", f"organiser {organiser_id}: no accreditation registry is loaded"
    else:
        verdict = accreditation.judge(organiser_id, tier, on)
        if not verdict.recognised:
            return "not_recognised", verdict.detail
    short = [f"{x.section.value}: {x.answered} of {x.items} answered (minimum "
             f"{policy.minimum_answered(x.section)})"
             for x in outcome.sections if x.answered < policy.minimum_answered(x.section)]
    if not any(x.answered for x in outcome.sections):
        return "incomplete", ("no item answered" + (f"; {'; '.join(short)}" if short else ""))[:500]
    if short:
        return "incomplete", "; ".join(short)[:500]
    return "counted", None


def maybe_score(t: Turn, s: SessionState, part: ParticipantState) -> None:
    """Score the participant, and emit a new result version, when they can be scored and something changed."""
    meta, sched = s["meta"], part["scheduled"]
    if meta is None or sched is None or part["rescheduled_to"] or part["unscheduled"]:
        return
    if part["status"] != St.CHECKED_IN:
        return
    rescored = rescore_of(s, part)
    blueprint = t.registry.get(meta["blueprint_id"], (rescored or meta)["blueprint_version"])
    assert blueprint is not None  # SessionScheduled/RescoreRequested with an unknown blueprint are dead-lettered
    wanted = [sec.value for sec in blueprint.section_names]
    if not s["closed"] and not all(sec in part["sheets"] for sec in wanted):
        return
    # Scoring is the costliest step, and a participant is looked at again on every later event of the
    # session (its closing re-checks everyone): score again only when something scoring reads has changed.
    inputs = score_inputs(t, s, part, blueprint, wanted)
    if part["result"] and part["result"].get("inputs") == inputs:
        return
    answer_sheets: dict[Section, scoring.Sheet] = {}
    provenance = {meta["event_id"], sched["event_id"]}
    if meta.get("rescore_event_id"):  # a whole-session rescore, from state written before rescores per activity
        provenance.add(meta["rescore_event_id"])
    if rescored:
        provenance.add(rescored["event_id"])
    flags: set[str] = set()
    times = []
    for sec in wanted:
        if sec in part["sheets"]:
            sheet = part["sheets"][sec]
            answer_sheets[Section(sec)] = scoring.Sheet(sheets.for_scoring(t.registry, sheet, blueprint, sec),
                                                        sheet["completion"])
            provenance.add(sheet["event_id"])
            times.append(sheet["at"])
            if sheet["completion"] == "timed_out":
                flags.add("timed_out")
        elif sec in part["autosave"]:
            saved = part["autosave"][sec]
            answer_sheets[Section(sec)] = scoring.Sheet(sheets.for_scoring(t.registry, saved, blueprint, sec),
                                                        "autosave")
            provenance.update(saved["event_ids"])
            times.append(saved["at"])
            flags.add("scored_from_autosave")
        else:
            flags.add("section_missing")
    tier = PositionTier(sched["tier"])
    filed = home(s, part)
    assert filed["home_purpose"] is not None  # the session's purpose at the least
    purpose = Purpose(filed["home_purpose"])
    overrides = {Competency(c): v for c, v in (sched["standard_levels"] or {}).items()}
    policy = t.rules.policy
    outcome = scoring.score_participant(blueprint, answer_sheets, tier=tier, purpose=purpose, policy=policy,
                                        standard_overrides=overrides)
    last = max(times, key=at) if times else (part["checkin"] or {"at": meta["ends_at"]})["at"]
    assessed_on = at(last).date()  # the lab's local date: the offset is kept
    body: dict[str, Any] = {
        "result_id": str(ev.derived_id("result", part["nip"], filed["home_activity_id"])),
        "nip": part["nip"], "activity_id": filed["home_activity_id"], "session_id": part["session_id"],
        "agency_id": filed["home_agency_id"], "purpose": purpose.value, "position_tier": tier.value,
        "participant_name": sched["name"],
        "blueprint_id": blueprint.blueprint_id, "blueprint_version": blueprint.version,
        "competencies": [scoring.competency_payload(c) for c in outcome.competencies],
        "jpm": outcome.jpm, "category": outcome.category,
        "strengths": outcome.strengths, "development_areas": outcome.development_areas,
        "sections": [scoring.section_payload(x) for x in outcome.sections],
        "assessed_on": assessed_on.isoformat(),
        "valid_until": scoring.add_years(assessed_on, policy.validity_years).isoformat(),
        "flags": sorted(flags), "provenance": sorted(provenance),
    }
    if outcome.potential is not None:  # absent, not null, without it: older results keep their digest
        body["potential"] = outcome.potential
    # Likewise absent when they say nothing new: a result sat at home, run by BKN and counted.
    if filed["home_activity_id"] != meta["activity_id"]:
        body["host_activity_id"], body["host_agency_id"] = meta["activity_id"], meta["agency_id"]
    if meta.get("organiser_id"):
        body["organiser_id"] = meta["organiser_id"]
    judged, detail = standing(t, meta.get("organiser_id"), tier, assessed_on, outcome)
    if judged != "counted":
        body["standing"], body["standing_detail"] = judged, detail
    result_digest = digest(body)
    previous = part["result"]
    if previous and previous["digest"] == result_digest:
        previous["inputs"] = inputs
        return
    version = (previous["version"] if previous else 0) + 1
    part["result"] = {"version": version, "digest": result_digest, "inputs": inputs}
    t.out.append(ev.new_event(
        ev.ParticipantScored, lab_id=PIPELINE_ID, occurred_at=t.trigger.occurred_at,
        event_id=ev.derived_id("scored", body["result_id"], version), payload={**body, "result_version": version},
    ))
