"""Participant state kept small and scoring done once: what the benchmark needed, without changing results.

Sheets are most of a participant's state, which the worker copies, writes to the changelog and keeps in memory
for every participant of the day; so a sheet is stored as one character per blueprint item (JSON when an option
is longer), autosaves are dropped once the section's sheet is in, and a participant is scored again only when
something scoring reads has changed. Each test checks a result against an independent computation or against
the same events processed the plain way.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from schemas import events as ev
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Rejected, decode_event
from schemas.domain import Section
from schemas.reasons import Reason
from streams import processor as proc_mod
from streams import scoring, sheets
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy

WITA = timezone(timedelta(hours=8))
START = datetime(2026, 11, 3, 8, 0, tzinfo=WITA)
NIP = "199001012015031001"


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


def run(p: SessionProcessor, events: list[ev.Event]) -> list[ev.Event]:
    out: list[ev.Event] = []
    for e in events:
        out += p.handle(decode_event(e.to_bytes()))
    return out


def at(cls: type[ev.Event], minutes: float, **payload: Any) -> ev.Event:
    return ev.new_event(cls, lab_id="kanreg-iv-makassar", occurred_at=START + timedelta(minutes=minutes),
                        payload={"session_id": "S1", **payload})


def schedule() -> list[ev.Event]:
    return [at(ev.SessionScheduled, -1440, activity_id="A1", agency_id="pemkot-makassar", starts_at=START,
               checkin_closes_at=START + timedelta(minutes=30), ends_at=START + timedelta(hours=3),
               blueprint_id="mansoskul-only", purpose="mapping"),
            at(ev.ParticipantScheduled, -1440, nip=NIP, name="Dewi", position_tier="administrator")]


def mixed_sheet(registry: BlueprintRegistry) -> dict[str, str | None]:
    """Every kind of answer: each option label, blanks, and items left out of the sheet."""
    spec = registry.get("mansoskul-only").section(Section.MANSOSKUL)  # type: ignore[union-attr]
    out: dict[str, str | None] = {}
    for n, item in enumerate(spec.items):
        if n % 11 == 5:
            continue
        labels = sorted(item.options)
        out[item.item_id] = None if n % 7 == 3 else labels[n % len(labels)]
    return out


def submitted(answers: dict[str, str | None], minutes: float = 100) -> ev.Event:
    return at(ev.SectionSubmitted, minutes, nip=NIP, section="mansoskul", completion="submitted",
              answers=[{"item_id": k, "option": v} for k, v in answers.items()])


def participant(p: SessionProcessor) -> dict[str, Any]:
    return p.participants[f"S1/{NIP}"]


def test_a_sheet_is_kept_as_one_character_per_item_and_scores_as_the_raw_answers(registry: BlueprintRegistry) -> None:
    answers = mixed_sheet(registry)
    p = SessionProcessor(registry, ScoringPolicy(), {}, {})
    (res,) = [o for o in run(p, schedule() + [at(ev.ParticipantCheckedIn, 0, nip=NIP), submitted(answers)])
              if isinstance(o, ev.ParticipantScored)]
    stored = participant(p)["sheets"]["mansoskul"]
    spec = registry.get("mansoskul-only").section(Section.MANSOSKUL)  # type: ignore[union-attr]
    assert isinstance(stored["answers"], str) and len(stored["answers"]) == len(spec.items)
    assert stored["layout"] == ["mansoskul-only", registry.get("mansoskul-only").version]  # type: ignore[union-attr]
    direct = scoring.score_section(spec, answers, "submitted")
    (section,) = res.payload.sections
    assert (section.score, section.answered) == (direct.score, direct.answered)
    assert section.answered == sum(v is not None for v in answers.values()) < len(spec.items)


def test_a_sheet_that_arrives_before_its_schedule_is_held_then_packed_and_scores_the_same(
        registry: BlueprintRegistry) -> None:
    answers = mixed_sheet(registry)
    lab, plan = [at(ev.ParticipantCheckedIn, 0, nip=NIP), submitted(answers)], schedule()
    early, late = (SessionProcessor(registry, ScoringPolicy(), {}, {}),
                   SessionProcessor(registry, ScoringPolicy(), {}, {}))
    before = run(early, lab)
    assert before == []  # held, unapplied, until the schedule says whose it is
    assert all(not v["sheets"] and v["checkin"] is None for v in early.participants.values())
    first = [o for o in before + run(early, plan) if isinstance(o, ev.ParticipantScored)]
    second = [o for o in run(late, plan + lab) if isinstance(o, ev.ParticipantScored)]
    assert participant(early)["sheets"]["mansoskul"] == participant(late)["sheets"]["mansoskul"]
    assert "layout" in participant(late)["sheets"]["mansoskul"]
    assert first[-1].payload == second[-1].payload


def test_state_written_before_packing_still_scores_the_same(registry: BlueprintRegistry) -> None:
    answers = mixed_sheet(registry)
    p = SessionProcessor(registry, ScoringPolicy(), {}, {})
    (res,) = [o for o in run(p, schedule() + [at(ev.ParticipantCheckedIn, 0, nip=NIP), submitted(answers)])
              if isinstance(o, ev.ParticipantScored)]
    part = participant(p)
    part["sheets"]["mansoskul"] = {k: v for k, v in part["sheets"]["mansoskul"].items() if k != "layout"}
    part["sheets"]["mansoskul"]["answers"] = dict(answers)  # the old layout: a dict per sheet
    part["result"] = None
    (again,) = [o for o in run(p, [at(ev.SessionClosed, 180)]) if isinstance(o, ev.ParticipantScored)]
    assert again.payload.model_dump(exclude={"result_version"}) == res.payload.model_dump(exclude={"result_version"})


def test_closing_the_session_does_not_score_unchanged_participants_again(registry: BlueprintRegistry,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = scoring.score_participant
    monkeypatch.setattr(proc_mod.scoring, "score_participant", lambda *a, **kw: calls.append("x") or real(*a, **kw))
    p = SessionProcessor(registry, ScoringPolicy(), {}, {})
    run(p, schedule() + [at(ev.ParticipantCheckedIn, 0, nip=NIP), submitted(mixed_sheet(registry))])
    assert len(calls) == 1
    later = run(p, [at(ev.SessionClosed, 180), at(ev.SectionStarted, 181, nip=NIP, section="mansoskul")])
    assert len(calls) == 1 and not [o for o in later if isinstance(o, ev.ParticipantScored)]
    changed = mixed_sheet(registry) | {next(iter(mixed_sheet(registry))): None}
    new = [o for o in run(p, [submitted(changed, minutes=120)]) if isinstance(o, ev.ParticipantScored)]
    assert len(calls) == 2 and [r.payload.result_version for r in new] == [2]


def test_autosaves_of_a_submitted_section_are_not_kept(registry: BlueprintRegistry) -> None:
    answers = mixed_sheet(registry)
    saved = [{"item_id": k, "option": v} for k, v in list(answers.items())[:40]]
    p = SessionProcessor(registry, ScoringPolicy(), {}, {})
    run(p, schedule() + [at(ev.ParticipantCheckedIn, 0, nip=NIP),
                         at(ev.AnswersSaved, 50, nip=NIP, section="mansoskul", answers=saved)])
    assert "mansoskul" in participant(p)["autosave"]
    run(p, [submitted(answers), at(ev.AnswersSaved, 101, nip=NIP, section="mansoskul", answers=saved)])
    assert participant(p)["autosave"] == {}


# A sheet naming the blueprint's items in its order (the whole sheet, or its first part as an autosave has)
# is checked and packed with C-level passes; any other sheet goes the general way. Both must agree.

def in_order_sheet(registry: BlueprintRegistry, seed: int) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    spec = registry.get("mansoskul-only").section(Section.MANSOSKUL)  # type: ignore[union-attr]
    return [(i.item_id, None if rng.random() < 0.1 else rng.choice(sorted(i.options))) for i in spec.items]


def answers_of(pairs: list[tuple[str, str | None]]) -> list[dict[str, str | None]]:
    return [{"item_id": k, "option": v} for k, v in pairs]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sheet_in_blueprint_order_is_packed_as_the_general_path_packs_it(
        registry: BlueprintRegistry, seed: int) -> None:
    pairs = in_order_sheet(registry, seed)
    fast, general = (SessionProcessor(registry, ScoringPolicy(), {}, {}),
                     SessionProcessor(registry, ScoringPolicy(), {}, {}))
    lab = [at(ev.ParticipantCheckedIn, 0, nip=NIP)]
    sheet = at(ev.SectionSubmitted, 100, nip=NIP, section="mansoskul", completion="submitted",
               answers=answers_of(pairs))
    reversed_sheet = sheet.model_copy(update={"payload": sheet.payload.model_copy(
        update={"answers": answers_of(pairs[::-1])})})  # same answers, not in blueprint order: the general path
    first = [o for o in run(fast, schedule() + lab + [sheet]) if isinstance(o, ev.ParticipantScored)]
    second = [o for o in run(general, schedule() + lab + [reversed_sheet]) if isinstance(o, ev.ParticipantScored)]
    bp = registry.get("mansoskul-only")
    assert participant(fast)["sheets"]["mansoskul"]["answers"] == \
        sheets.pack(dict(pairs), bp, "mansoskul")["answers"] == participant(general)["sheets"]["mansoskul"]["answers"]
    assert first[-1].payload.model_dump(exclude={"provenance"}) == second[-1].payload.model_dump(exclude={"provenance"})


def test_autosaves_in_blueprint_order_merge_as_the_general_path_merges_them(registry: BlueprintRegistry) -> None:
    pairs = in_order_sheet(registry, 4)
    newer = [(k, "A" if v != "A" else "B") for k, v in pairs[:30]]  # changes earlier answers; options A-E exist
    saves = [(40, pairs[:60]), (20, newer[:10]), (80, newer)]  # the second, older one arrives late
    outcomes = []
    for order in (lambda x: x, lambda x: x[::-1]):  # in blueprint order (fast) and reversed (general)
        p = SessionProcessor(registry, ScoringPolicy(), {}, {})
        run(p, schedule() + [at(ev.ParticipantCheckedIn, 0, nip=NIP)] +
            [at(ev.AnswersSaved, m, nip=NIP, section="mansoskul", answers=answers_of(order(s))) for m, s in saves])
        (res,) = [o for o in run(p, [at(ev.SessionClosed, 180)]) if isinstance(o, ev.ParticipantScored)]
        outcomes.append((participant(p)["autosave"]["mansoskul"]["answers"], res.payload.sections))
    expected = dict(pairs[:60]) | dict(newer)  # the latest autosave wins; the late older one changes nothing
    bp = registry.get("mansoskul-only")
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == sheets.pack(expected, bp, "mansoskul")["answers"]


def test_an_unknown_option_in_an_in_order_sheet_is_rejected_with_its_reason(registry: BlueprintRegistry) -> None:
    pairs = in_order_sheet(registry, 5)
    pairs[7] = (pairs[7][0], "Z")
    p = SessionProcessor(registry, ScoringPolicy(), {}, {})
    run(p, schedule() + [at(ev.ParticipantCheckedIn, 0, nip=NIP)])
    with pytest.raises(Rejected) as exc:
        run(p, [at(ev.SectionSubmitted, 100, nip=NIP, section="mansoskul", completion="submitted",
                   answers=answers_of(pairs))])
    assert exc.value.reason == Reason.UNKNOWN_OPTION and pairs[7][0] in exc.value.detail
    assert "mansoskul" not in participant(p)["sheets"]


@pytest.mark.parametrize("seed", range(5))
def test_a_packed_sheet_scores_exactly_as_its_answers(registry: BlueprintRegistry, seed: int) -> None:
    rng = random.Random(seed)
    for bp in (registry.get("cact-full"), registry.get("mansoskul-only")):
        for spec in bp.sections:  # type: ignore[union-attr]
            answers = {i.item_id: (None if rng.random() < 0.1 else rng.choice(sorted(i.options)))
                       for i in spec.items if rng.random() > 0.1}
            packed = sheets.pack(answers, bp, spec.section.value)["answers"]
            assert scoring.score_section(spec, packed, "submitted") == scoring.score_section(spec, answers, "submitted")
