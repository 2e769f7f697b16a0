"""Scoring rules with hand-worked numbers (docs/scoring.md walks through the same examples)."""

from __future__ import annotations

import pytest

from schemas.blueprint import Blueprint, BlueprintRegistry
from schemas.decode import Rejected
from schemas.domain import Competency, PositionTier, Purpose, Section
from schemas.reasons import Reason
from streams import scoring
from streams.scoring import ScoringPolicy, Sheet

C = list(Competency)


def tiny_blueprint() -> Blueprint:
    """Two SJT items per competency (weights 1-4) and a 2×2 multiple-choice emerging-skills section."""
    return Blueprint.model_validate({
        "blueprint_id": "tiny", "version": "t1",
        "sections": [
            {"section": "mansoskul", "subtests": [
                {"code": f"MSK-{c.value}", "items": [
                    {"item_id": f"{c.value}-1", "competency": c.value, "options": {"A": 1, "B": 2, "C": 3, "D": 4}},
                    {"item_id": f"{c.value}-2", "competency": c.value, "options": {"A": 4, "B": 3, "C": 2, "D": 1}},
                ]} for c in C]},
            {"section": "emerging_skills", "subtests": [
                {"code": "ES-1", "items": [{"item_id": "ES-1-1", "options": {"A": 1, "B": 0}},
                                           {"item_id": "ES-1-2", "options": {"A": 0, "B": 1}}]},
                {"code": "ES-2", "items": [{"item_id": "ES-2-1", "options": {"A": 1, "B": 0}},
                                           {"item_id": "ES-2-2", "options": {"A": 1, "B": 0}}]},
            ]},
        ],
    })


def test_level_for_uses_cut_scores_inclusively() -> None:
    cuts = [0, 40, 55, 70, 85]
    assert [scoring.level_for(p, cuts) for p in (0, 39.99, 40, 54.9, 55, 70, 84.99, 85, 100)] == [
        1, 1, 2, 2, 3, 4, 4, 5, 5]


def test_jpm_sum_min_caps_each_competency_at_the_standard() -> None:
    standards = {c: 3 for c in C}
    levels = {c: 3 for c in C} | {Competency.M1: 5, Competency.M2: 2, Competency.M3: 1}
    # Σ min = 3×6 + 3 + 2 + 1 = 24 ; Σ standard = 27 → 88.89
    assert scoring.jpm(levels, standards) == 88.89
    # mean ratio: (6×1 + 1 + 2/3 + 1/3) / 9 = 8/9 → 88.89 as well here; differs when standards differ
    assert scoring.jpm(levels, standards, "mean_ratio") == 88.89
    uneven = {c: 2 for c in C} | {Competency.M1: 4}
    lv = {c: 2 for c in C} | {Competency.M1: 1}
    assert scoring.jpm(lv, uneven) == round(100 * 17 / 20, 2)  # 85.0
    assert scoring.jpm(lv, uneven, "mean_ratio") == round(100 * (8 + 0.25) / 9, 2)  # 91.67


@pytest.mark.parametrize(("value", "purpose", "label"), [
    (90, Purpose.MAPPING, "Optimal"), (89.99, Purpose.MAPPING, "Cukup Optimal"), (78, Purpose.MAPPING, "Cukup Optimal"),
    (77.99, Purpose.MAPPING, "Kurang Optimal"), (80, Purpose.POSITION_FILLING, "MS"),
    (68, Purpose.POSITION_FILLING, "MMS"), (67.99, Purpose.POSITION_FILLING, "KMS"),
])
def test_category_thresholds(value: float, purpose: Purpose, label: str) -> None:
    assert scoring.category(value, purpose, ScoringPolicy()) == label


def test_section_score_blanks_and_subtests() -> None:
    bp = tiny_blueprint()
    spec = bp.section(Section.EMERGING_SKILLS)
    assert spec is not None
    out = scoring.score_section(spec, {"ES-1-1": "A", "ES-1-2": None, "ES-2-1": "A", "ES-2-2": "B"}, "submitted")
    assert out.subtests == {"ES-1": (50.0, 2), "ES-2": (50.0, 2)}
    assert (out.score, out.level, out.answered, out.items) == (50.0, 2, 3, 4)


def test_participant_worked_example() -> None:
    """M1: D then A → 4+4 = 8/8 = 100% → level 5; every other competency: A then D → 1+1 = 2/8 = 25% → level 1."""
    bp = tiny_blueprint()
    answers = {f"{c.value}-1": "A" for c in C} | {f"{c.value}-2": "D" for c in C}
    answers |= {"M1-1": "D", "M1-2": "A"}
    out = scoring.score_participant(bp, {Section.MANSOSKUL: Sheet(answers, "submitted")}, tier=PositionTier.PENGAWAS,
                                    purpose=Purpose.MAPPING, policy=ScoringPolicy())
    levels = {c.code: c.level for c in out.competencies}
    assert levels[Competency.M1] == 5 and all(levels[c] == 1 for c in C[1:])
    # standard 2 (Pengawas): Σ min = 2 + 8×1 = 10 ; Σ standard = 18 → 55.56 → Kurang Optimal
    assert out.jpm == 55.56 and out.category == "Kurang Optimal"
    assert out.strengths == [Competency.M1] and out.development_areas == C[1:]
    assert [c.gap for c in out.competencies] == [3] + [-1] * 8
    # the emerging-skills section was never answered: scored as all blank
    es = next(s for s in out.sections if s.section is Section.EMERGING_SKILLS)
    assert (es.score, es.answered, es.completion) == (0.0, 0, "not_started")


def test_standard_overrides_per_participant() -> None:
    bp = tiny_blueprint()
    answers = {f"{c.value}-1": "C" for c in C} | {f"{c.value}-2": "B" for c in C}  # 3+3 = 6/8 = 75% → level 4
    out = scoring.score_participant(bp, {Section.MANSOSKUL: Sheet(answers, "submitted")}, tier=PositionTier.JPT_UTAMA,
                                    purpose=Purpose.POSITION_FILLING, policy=ScoringPolicy(),
                                    standard_overrides={Competency.S1: 3})
    # standards 5 everywhere but S1 = 3: Σ min = 8×4 + 3 = 35 ; Σ standard = 43 → 81.40 → MS
    assert out.jpm == 81.4 and out.category == "MS"


def test_check_answers_rejects_unknown_items_and_options() -> None:
    reg = BlueprintRegistry([tiny_blueprint()])
    scoring.check_answers(reg, Section.MANSOSKUL, {"M1-1": "A", "M1-2": None})
    with pytest.raises(Rejected) as exc:
        scoring.check_answers(reg, Section.MANSOSKUL, {"NOPE-1": "A"})
    assert exc.value.reason == Reason.UNKNOWN_ITEM
    with pytest.raises(Rejected) as exc:
        scoring.check_answers(reg, Section.MANSOSKUL, {"ES-1-1": "A"})
    assert exc.value.reason == Reason.UNKNOWN_ITEM  # item of another section
    with pytest.raises(Rejected) as exc:
        scoring.check_answers(reg, Section.MANSOSKUL, {"M1-1": "E"})
    assert exc.value.reason == Reason.UNKNOWN_OPTION


def test_valid_until_is_three_years_and_handles_29_february() -> None:
    from datetime import date

    assert scoring.add_years(date(2026, 11, 3), 3) == date(2029, 11, 3)
    assert scoring.add_years(date(2024, 2, 29), 3) == date(2027, 2, 28)


def test_policy_rejects_incomplete_categories() -> None:
    with pytest.raises(ValueError):
        ScoringPolicy.model_validate({"categories": {"mapping": [{"min_jpm": 50, "label": "X"}],
                                                     "position_filling": [{"min_jpm": 0, "label": "Y"}]}})


def test_potential_is_the_mean_of_its_subtests_and_total_the_mean_of_the_five() -> None:
    bp = tiny_blueprint().model_copy(update={"potential": None})
    data = tiny_blueprint().model_dump(mode="json")
    data["potential"] = {"berfikirKritis": ["ES-1"], "intelektual": ["ES-1", "ES-2"], "interpersonal": ["MSK-M2"],
                         "kesadaranDiri": ["MSK-M6", "ES-2"], "motivasiKomitmen": ["MSK-M1"]}
    with_potential = Blueprint.model_validate(data)
    sheets = {Section.MANSOSKUL: Sheet({k: v for c in C for k, v in ((f"{c.value}-1", "D"), (f"{c.value}-2", "B"))},
                                       "submitted"),
              Section.EMERGING_SKILLS: Sheet({"ES-1-1": "A", "ES-1-2": "A", "ES-2-1": "A", "ES-2-2": "A"}, "submitted")}
    args = {"tier": PositionTier.ADMINISTRATOR, "purpose": Purpose.MAPPING, "policy": ScoringPolicy()}
    # Each MSK sub-test: (4 + 3) / (4 + 4) = 87.5 %; ES-1: 1 of 2 = 50 %; ES-2: 2 of 2 = 100 %.
    assert scoring.score_participant(bp, sheets, **args).potential is None
    assert scoring.score_participant(with_potential, sheets, **args).potential == {
        "berfikirKritis": 50.0, "intelektual": 75.0, "interpersonal": 87.5, "kesadaranDiri": 93.75,
        "motivasiKomitmen": 87.5, "total": 78.75}


# --- Points docs/scoring.md §9 settles ------------------------------------------------------------------------


def test_rounding_and_levels_as_documented() -> None:
    # round(x, 2) of the double: an exact tie goes to the even digit
    assert (scoring.percent(1, 160), scoring.percent(3, 160)) == (0.62, 1.88)
    # the rounded percent decides the level, with the default cuts of a blueprint that names none
    bp = Blueprint.model_validate({
        "blueprint_id": "cuts", "version": "t1",
        "sections": [{"section": "mansoskul", "subtests": [
            {"code": f"MSK-{c.value}", "items": [
                {"item_id": f"{c.value}-1", "competency": c.value, "options": {"A": 39.996, "B": 100}}]} for c in C]}],
    })
    spec = bp.section(Section.MANSOSKUL)
    assert (spec is not None and spec.cut_scores == [0, 40, 55, 70, 85]
            and bp.competency_cut_scores == [0, 40, 55, 70, 85])
    out = scoring.score_section(spec, {f"{c.value}-1": "A" for c in C}, "submitted")
    assert (out.score, out.level) == (40.0, 2)  # 39.996 % is shown as 40.0: level 2, not 1
    assert scoring.level_for(39.996, spec.cut_scores) == 1  # what comparing the unrounded figure would give


def test_equal_times_keep_the_larger_event_id() -> None:
    import uuid
    from datetime import datetime, timedelta, timezone

    from schemas import events as ev
    from schemas.decode import decode_event
    from streams.processor import SessionProcessor

    registry = BlueprintRegistry.from_dir()
    start = datetime(2026, 11, 3, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    nip, lab = "199001012015031001", "kanreg-iv-makassar"
    bp = registry.get("mansoskul-only")
    assert bp is not None
    items = [i.item_id for i in bp.section(Section.MANSOSKUL).items]  # type: ignore[union-attr]

    def submitted(option: str, event_id: str) -> ev.Event:
        return ev.new_event(ev.SectionSubmitted, lab_id=lab, occurred_at=start + timedelta(hours=2),
                            event_id=uuid.UUID(event_id), payload={
                                "session_id": "S1", "nip": nip, "section": "mansoskul", "completion": "submitted",
                                "answers": [{"item_id": i, "option": option} for i in items]})

    plan = [
        ev.new_event(ev.SessionScheduled, lab_id="bkn-scheduler", occurred_at=start - timedelta(days=1), payload={
            "session_id": "S1", "lab_id": lab, "activity_id": "A1", "agency_id": "ag", "starts_at": start,
            "checkin_closes_at": start + timedelta(minutes=30), "ends_at": start + timedelta(hours=3),
            "blueprint_id": "mansoskul-only", "purpose": "mapping"}),
        ev.new_event(ev.ParticipantScheduled, lab_id="bkn-scheduler", occurred_at=start - timedelta(days=1),
                     payload={"session_id": "S1", "nip": nip, "name": "Dewi", "position_tier": "pengawas"}),
        ev.new_event(ev.ParticipantCheckedIn, lab_id=lab, occurred_at=start, payload={"session_id": "S1", "nip": nip}),
    ]
    low = submitted("A", "00000000-0000-4000-8000-000000000001")
    high = submitted("D", "f0000000-0000-4000-8000-000000000000")
    closed = ev.new_event(ev.SessionClosed, lab_id=lab, occurred_at=start + timedelta(hours=3),
                          payload={"session_id": "S1"})
    finals = []
    for order in ([low, high], [high, low]):
        p = SessionProcessor(registry, ScoringPolicy(), {}, {})
        out = [o for e in plan + order + [closed] for o in p.handle(decode_event(e.to_bytes()))]
        final = [o.payload for o in out if isinstance(o, ev.ParticipantScored)][-1]
        assert str(high.event_id) in map(str, final.provenance) and str(low.event_id) not in map(str, final.provenance)
        finals.append(final.model_dump(exclude={"result_version"}))
    assert finals[0] == finals[1]


def test_option_labels_are_case_sensitive() -> None:
    registry = BlueprintRegistry([tiny_blueprint()])
    scoring.check_answers(registry, Section.EMERGING_SKILLS, {"ES-1-1": "A"})
    with pytest.raises(Rejected) as exc:
        scoring.check_answers(registry, Section.EMERGING_SKILLS, {"ES-1-1": "a"})
    assert exc.value.reason == Reason.UNKNOWN_OPTION
