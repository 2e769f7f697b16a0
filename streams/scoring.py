"""Scoring rules for the three CACT sections, as pure functions (no Kafka, no I/O).

Every number a result carries is computed here, so docs/scoring.md can walk through these functions
with hand-worked examples and an outsider can re-check a result from the answer sheet.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, reduce
from itertools import repeat
from operator import add
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.blueprint import Blueprint, BlueprintRegistry, SectionSpec
from schemas.decode import Rejected
from schemas.domain import SIASN_FIELD, Competency, PositionTier, Purpose, Section
from schemas.reasons import Reason
from streams.sheets import options_at

Answers = Mapping[str, str | None]


class Band(BaseModel):
    model_config = ConfigDict(frozen=True)
    min_jpm: float = Field(ge=0, le=100)
    label: str


class ScoringPolicy(BaseModel):
    """Rules BKN may change without a release: standards, JPM formula, categories, validity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    standards: dict[PositionTier, int] = Field(
        default_factory=lambda: {
            PositionTier.JPT_UTAMA: 5, PositionTier.JPT_MADYA: 5, PositionTier.JPT_PRATAMA: 4,
            PositionTier.ADMINISTRATOR: 3, PositionTier.PENGAWAS: 2, PositionTier.PELAKSANA: 1,
            PositionTier.AHLI_UTAMA: 4, PositionTier.AHLI_MADYA: 3, PositionTier.AHLI_MUDA: 2,
            PositionTier.AHLI_PERTAMA: 1, PositionTier.TERAMPIL: 1,
        }
    )
    jpm_formula: Literal["sum_min", "mean_ratio"] = "sum_min"
    categories: dict[Purpose, list[Band]] = Field(
        default_factory=lambda: {
            Purpose.MAPPING: [Band(min_jpm=90, label="Optimal"), Band(min_jpm=78, label="Cukup Optimal"),
                              Band(min_jpm=0, label="Kurang Optimal")],
            Purpose.POSITION_FILLING: [Band(min_jpm=80, label="MS"), Band(min_jpm=68, label="MMS"),
                                       Band(min_jpm=0, label="KMS")],
        }
    )
    validity_years: int = Field(default=3, ge=1)
    #: Evidence before a result counts (docs/scoring.md §5): fewer answered items than this in any section of the
    #: blueprint makes the result ``incomplete``, held back from SI ASN until an operator releases or voids it.
    min_answered_per_section: int = Field(default=1, ge=0)
    min_answered: dict[Section, int] = Field(default_factory=dict, description="Per-section overrides.")

    def minimum_answered(self, section: Section) -> int:
        return self.min_answered.get(section, self.min_answered_per_section)

    @model_validator(mode="after")
    def _complete(self) -> ScoringPolicy:
        missing = [t.value for t in PositionTier if t not in self.standards]
        if missing:
            raise ValueError(f"standards missing for tiers {missing}")
        for purpose in Purpose:
            bands = self.categories.get(purpose)
            if not bands or min(b.min_jpm for b in bands) != 0:
                raise ValueError(f"categories for {purpose.value} must include a band starting at 0")
        return self

    @cached_property
    def digest(self) -> str:
        """Identifies the policy in a result's scoring inputs: a changed policy means scoring again."""
        dumped = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS, default=str)
        return hashlib.sha256(dumped).hexdigest()[:32]

    @classmethod
    def load(cls, path: Path | None) -> ScoringPolicy:
        return cls() if path is None else cls.model_validate(json.loads(path.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------------
# Answer sheets
# --------------------------------------------------------------------------------------------------


def check_answers(registry: BlueprintRegistry, section: Section, answers: Answers) -> None:
    """Reject a sheet that names items or options the bank does not have: a wrong key cannot be scored.

    The common case (a known item of this section, a known option) is one lookup per answer; anything else
    goes through the registry and says why.
    """
    allowed = registry.options_in(section)
    for item_id, option in answers.items():
        options = allowed.get(item_id)
        if options is not None and (option is None or option in options):
            continue
        found = registry.find_item(item_id)
        if found is None:
            raise Rejected(Reason.UNKNOWN_ITEM, f"item {item_id!r} is not in any loaded blueprint")
        if found[0] is not section:
            raise Rejected(Reason.UNKNOWN_ITEM, f"item {item_id!r} belongs to {found[0].value}, not {section.value}")
        if option is not None and option not in found[2].options:
            raise Rejected(Reason.UNKNOWN_OPTION, f"item {item_id!r} has no option {option!r}")


def level_for(percent: float, cuts: list[float]) -> int:
    """Level 1..5: how many cut scores the percent reaches (cuts start at 0, so at least 1)."""
    return max(1, bisect.bisect_right(cuts, percent + 1e-9))


def percent(raw: float, max_raw: float) -> float:
    return round(100.0 * raw / max_raw, 2) if max_raw else 0.0


@dataclass(frozen=True)
class SectionOutcome:
    section: Section
    score: float
    level: int
    answered: int
    items: int
    completion: str
    subtests: dict[str, tuple[float, int]]  # code → (score, level)
    competencies: dict[Competency, tuple[float, float]] = field(default_factory=dict)  # raw, max


def positional(spec: SectionSpec, answers: Answers | str) -> list[str | None]:
    """A sheet as one option (or None for blank/unanswered) per item position of the section.

    ``answers`` is either item id → option, or the packed form the worker keeps in state (streams/sheets.py)."""
    if isinstance(answers, str):
        return options_at(spec, answers)
    return list(map(answers.get, spec.item_ids))


def score_section(spec: SectionSpec, answers: Answers | str, completion: str) -> SectionOutcome:
    """Score one section's sheet: sum of chosen option weights, overall, per sub-test and per competency.

    Each sum adds the weights in item order starting from 0.0 (``reduce``, not ``sum``, whose float
    summation changed in Python 3.12), so a result is the same floats whichever way it is recomputed."""
    plan = spec.scoring_plan
    options = positional(spec, answers)
    # An option the current key no longer has (after a key correction), or a blank, scores 0.
    weights = list(map(dict.get, plan.weights, options, repeat(0.0)))  # type: ignore[arg-type]  # a blank's None: 0.0
    answered = len(options) - options.count(None)
    raw_total = max_total = 0.0
    subtests: dict[str, tuple[float, int]] = {}
    for code, start, end, sub_max in plan.subtests:
        sub_raw = reduce(add, weights[start:end], 0.0)
        sub_score = percent(sub_raw, sub_max)
        subtests[code] = (sub_score, level_for(sub_score, spec.cut_scores))
        raw_total += sub_raw
        max_total += sub_max
    score = percent(raw_total, max_total)
    return SectionOutcome(
        section=spec.section, score=score, level=level_for(score, spec.cut_scores), answered=answered,
        items=plan.items, completion=completion, subtests=subtests,
        competencies={c: (reduce(add, map(weights.__getitem__, plan.competency_positions[c]), 0.0),
                          plan.competency_max[c])
                      for c in plan.competency_max},
    )


# --------------------------------------------------------------------------------------------------
# Competencies, JPM, category
# --------------------------------------------------------------------------------------------------


def standards_for(policy: ScoringPolicy, tier: PositionTier,
                  overrides: Mapping[Competency, int] | None) -> dict[Competency, int]:
    base = policy.standards[tier]
    return {c: (overrides or {}).get(c, base) for c in Competency}


def jpm(levels: Mapping[Competency, int], standards: Mapping[Competency, int], formula: str = "sum_min") -> float:
    """Job Person Match in percent (domain.md §4).

    sum_min: 100 × Σ min(level, standard) / Σ standard;  mean_ratio: mean of min(level/standard, 1) × 100.
    Levels above the standard do not buy back gaps elsewhere in either formula.
    """
    if formula == "sum_min":
        value = 100.0 * sum(min(levels[c], standards[c]) for c in standards) / sum(standards.values())
    elif formula == "mean_ratio":
        value = 100.0 * sum(min(levels[c] / standards[c], 1.0) for c in standards) / len(standards)
    else:
        raise ValueError(f"unknown JPM formula {formula!r}")
    return round(value, 2)


def category(value: float, purpose: Purpose, policy: ScoringPolicy) -> str:
    for band in sorted(policy.categories[purpose], key=lambda b: b.min_jpm, reverse=True):
        if value >= band.min_jpm:
            return band.label
    raise AssertionError("policy guarantees a band at 0")


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February → 28 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class CompetencyOutcome:
    code: Competency
    raw: float
    max_raw: float
    level: int
    standard: int

    @property
    def gap(self) -> int:
        return self.level - self.standard


@dataclass(frozen=True)
class Outcome:
    sections: list[SectionOutcome]
    competencies: list[CompetencyOutcome]
    jpm: float | None
    category: str | None
    potential: dict[str, float] | None = None

    @property
    def strengths(self) -> list[Competency]:
        return [c.code for c in self.competencies if c.gap >= 0]

    @property
    def development_areas(self) -> list[Competency]:
        return [c.code for c in self.competencies if c.gap < 0]


@dataclass(frozen=True)
class Sheet:
    answers: Answers | str  # item id → option, or packed in the section's item order (see ``positional``)
    completion: str  # submitted | timed_out | autosave (a section with neither is scored as not_started)


def score_participant(
    blueprint: Blueprint,
    sheets: Mapping[Section, Sheet],
    *,
    tier: PositionTier,
    purpose: Purpose,
    policy: ScoringPolicy,
    standard_overrides: Mapping[Competency, int] | None = None,
) -> Outcome:
    """Score every section of the blueprint; a section with no sheet counts as all blank."""
    sections = [
        score_section(spec, sheets[spec.section].answers if spec.section in sheets else {},
                      sheets[spec.section].completion if spec.section in sheets else "not_started")
        for spec in blueprint.sections
    ]
    potential = score_potential(blueprint, sections)
    mansoskul = next((s for s in sections if s.section is Section.MANSOSKUL), None)
    if mansoskul is None:
        return Outcome(sections=sections, competencies=[], jpm=None, category=None, potential=potential)
    standards = standards_for(policy, tier, standard_overrides)
    comps = []
    for code in Competency:
        raw, max_raw = mansoskul.competencies[code]
        level = level_for(percent(raw, max_raw), blueprint.competency_cut_scores)
        comps.append(CompetencyOutcome(code, raw, max_raw, level, standards[code]))
    value = jpm({c.code: c.level for c in comps}, standards, policy.jpm_formula)
    return Outcome(sections=sections, competencies=comps, jpm=value, category=category(value, purpose, policy),
                   potential=potential)


def score_potential(blueprint: Blueprint, sections: list[SectionOutcome]) -> dict[str, float] | None:
    """The potential profile SI ASN's ``potensi/save`` takes, when the blueprint maps sub-tests to it.

    Each dimension is the mean of its sub-tests' percent scores (0..100), ``total`` the mean of the five
    dimensions, all rounded to 2 decimals; ``None`` when the blueprint defines no potential.
    """
    if blueprint.potential is None:
        return None
    scores = {code: score for s in sections for code, (score, _level) in s.subtests.items()}
    out = {name: round(sum(scores[c] for c in codes) / len(codes), 2)
           for name, codes in blueprint.potential.subtests_of().items()}
    out["total"] = round(sum(out.values()) / len(out), 2)
    return out


def competency_payload(c: CompetencyOutcome) -> dict:
    return {"code": c.code, "siasn_field": SIASN_FIELD[c.code], "raw": c.raw, "max_raw": c.max_raw,
            "level": c.level, "standard": c.standard, "gap": c.gap}


def section_payload(s: SectionOutcome) -> dict:
    return {"section": s.section, "score": s.score, "level": s.level, "answered": s.answered, "items": s.items,
            "completion": s.completion, "subtests": {k: {"score": v[0], "level": v[1]} for k, v in s.subtests.items()}}
