"""The rules that turn one stored result into its report's advice: recommendation, placement and development.

Perban BKN 26/2019 art. 29(2) asks every individual report for a recommendation, a placement suggestion and a
development suggestion, but no regulation gives their wording. So the wording is data (``default_rules.json``
next to this module, or the file in ``CACT_REPORTS_RULES_FILE``), checked when it is loaded, so that a faulty
file stops the report builder before it prints anything, and each report names the rules that produced its text
(``Advice.rule_ids``) for an audit of why a person was advised the way they were. docs/reports.md describes the
file and the reasoning of the shipped rules.

The rules see only what the store holds (purpose, category, competency lines): the JPM thresholds stay in the
scoring policy, and the category label is the one the result was stored with.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from schemas.domain import Competency, Purpose
from sinks.reports.model import COMPETENCY_NAMES, CompetencyLine

DEFAULT_PATH = Path(__file__).with_name("default_rules.json")
#: What a text may fill in; anything else in braces is a fault of the file (a typo would print verbatim).
PLACEHOLDERS = frozenset({"development_count", "strengths", "development_areas"})
#: The gaps a development band must cover: levels and standards both run 1..5.
LOWEST_GAP, HIGHEST_NEGATIVE_GAP = -4, -1
_ORDER = {code: i for i, code in enumerate(COMPETENCY_NAMES)}


class RuleSetError(ValueError):
    """The rules file cannot be used; the message is one line naming the file and the field."""


def placeholders_of(text: str) -> list[str]:
    """The names in braces, raising ValueError on a malformed brace (``{{`` and ``}}`` are literal braces)."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


def _checked_text(text: str) -> str:
    if not text.strip():
        raise ValueError("text must not be empty")
    try:
        names = placeholders_of(text)
    except ValueError as exc:
        raise ValueError(f"malformed placeholder: {exc}") from None
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; allowed: {', '.join(sorted(PLACEHOLDERS))}")
    return text


Text = Annotated[str, AfterValidator(_checked_text)]
RuleId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeRule(_Strict):
    """The recommendation and placement of one category (or a fallback)."""

    id: RuleId
    recommendation: Text
    placement: Text
    note: str | None = None  # the reasoning, for whoever edits the file; never printed


class DevelopmentBand(_Strict):
    """A development suggestion for a competency whose gap lies in ``min_gap..max_gap`` (both inclusive)."""

    id: RuleId
    min_gap: int = Field(ge=LOWEST_GAP, le=HIGHEST_NEGATIVE_GAP)
    max_gap: int = Field(ge=LOWEST_GAP, le=HIGHEST_NEGATIVE_GAP)
    text: Text
    note: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DevelopmentBand:
        if self.min_gap > self.max_gap:
            raise ValueError(f"min_gap {self.min_gap} is above max_gap {self.max_gap}")
        return self


def _covering(bands: list[DevelopmentBand]) -> list[DevelopmentBand]:
    """Every negative gap in exactly one band: a hole would leave a development area without a suggestion."""
    seen: dict[int, int] = {}
    for i, band in enumerate(bands):
        for gap in range(band.min_gap, band.max_gap + 1):
            if gap in seen:
                raise ValueError(f"gap {gap} is in two bands ({bands[seen[gap]].id} and {band.id})")
            seen[gap] = i
    holes = [g for g in range(HIGHEST_NEGATIVE_GAP, LOWEST_GAP - 1, -1) if g not in seen]
    if holes:
        raise ValueError(f"no band covers gap {', '.join(str(g) for g in holes)}")
    return bands


Bands = Annotated[list[DevelopmentBand], AfterValidator(_covering)]


class OverrideRule(_Strict):
    """Replaces the category's text when its conditions hold; the first matching override in the list wins.

    ``None`` in a condition means any. An override never applies to a result without a category (no Mansoskul):
    its fallback is final, since there is nothing on competency to qualify.
    """

    id: RuleId
    purposes: list[Purpose] | None = None
    categories: list[str] | None = None
    min_development_areas: int = Field(default=0, ge=0, le=len(Competency))
    max_development_areas: int | None = Field(default=None, ge=0, le=len(Competency))
    recommendation: Text | None = None  # None: keep the category's
    placement: Text | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _meaningful(self) -> OverrideRule:
        if self.recommendation is None and self.placement is None:
            raise ValueError("an override must replace the recommendation, the placement or both")
        if self.max_development_areas is not None and self.max_development_areas < self.min_development_areas:
            raise ValueError("max_development_areas is below min_development_areas")
        return self

    def matches(self, purpose: str, category: str, development_count: int) -> bool:
        return ((self.purposes is None or purpose in self.purposes)
                and (self.categories is None or category in self.categories)
                and development_count >= self.min_development_areas
                and (self.max_development_areas is None or development_count <= self.max_development_areas))


@dataclass(frozen=True)
class Advice:
    """What the rules say for one result: the report's sections 5-7 and the ids of the rules behind them."""

    recommendation: str
    placement: str
    development: list[tuple[str, str]]  # (competency code, suggestion), worst gap first, then code order
    rule_ids: list[str]
    version: str  # the rule set's version, so an audit can find the wording that was in force


class RuleSet(_Strict):
    """A versioned rules file, validated whole: every category, every development area has its text."""

    version: str = Field(min_length=1, max_length=40)
    description: str | None = None
    none_text: str = Field(default="tidak ada", min_length=1)  # what {strengths}/{development_areas} say when empty
    outcomes: dict[Purpose, dict[str, OutcomeRule]]
    no_competency: OutcomeRule  # category None: Mansoskul not taken, no competency profile, no JPM
    unknown_category: OutcomeRule  # a label (or purpose) these rules do not know, e.g. from an older policy
    overrides: list[OverrideRule] = Field(default_factory=list)
    development: dict[Competency, Bands]
    _source: str = PrivateAttr(default="<rules>")

    @model_validator(mode="after")
    def _complete(self) -> RuleSet:
        missing = [p.value for p in Purpose if not self.outcomes.get(p)]
        if missing:
            raise ValueError(f"outcomes: no category rules for purpose {', '.join(missing)}")
        absent = [c.value for c in Competency if c not in self.development]
        if absent:
            raise ValueError(f"development: no bands for {', '.join(absent)}")
        for i, rule in enumerate(self.overrides):
            self._check_override(i, rule)
        ids = [r.id for r in self._all_rules()]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rule id {twice[0]} is used twice: a report's footnote must name one rule")
        return self

    def _check_override(self, index: int, rule: OverrideRule) -> None:
        """A category an override names must exist for its purposes: a typo would make it never fire."""
        purposes = rule.purposes if rule.purposes is not None else list(Purpose)
        known = {label for p in purposes for label in self.outcomes.get(p, {})}
        for label in rule.categories or []:
            if label not in known:
                raise ValueError(f"overrides.{index} ({rule.id}): category {label!r} has no rule for its purposes")

    def _all_rules(self) -> list[OutcomeRule | OverrideRule | DevelopmentBand]:
        out: list[OutcomeRule | OverrideRule | DevelopmentBand] = [self.no_competency, self.unknown_category]
        out += [r for by_label in self.outcomes.values() for r in by_label.values()]
        out += self.overrides
        out += [b for bands in self.development.values() for b in bands]
        return out

    @cached_property
    def digest(self) -> str:
        """Identifies the wording in a build's fingerprint: an edited text with an unchanged version still counts."""
        dumped = json.dumps(self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(dumped.encode("utf-8")).hexdigest()[:32]

    @property
    def source(self) -> str:
        """The file these rules came from, for messages."""
        return self._source

    # --- loading ------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None, *, categories: Mapping[str, Iterable[str]] | None = None) -> RuleSet:
        """The rules of ``path`` (None: the shipped defaults), checked; with ``categories`` (the scoring policy's
        labels by purpose), also that each label has its rule."""
        file = DEFAULT_PATH if path is None else path
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RuleSetError(f"{file}: cannot read rules: {exc}") from None
        try:
            rules = cls.model_validate(data)
        except ValidationError as exc:
            raise RuleSetError(f"{file}: {describe(exc)}") from None
        rules._source = str(file)
        if categories is not None:
            rules.require_categories(categories)
        return rules

    def require_categories(self, categories: Mapping[str, Iterable[str]]) -> None:
        """Every category label the scoring policy can give has its rule, else RuleSetError naming the first gap.

        The policy lives in the worker (streams/), which the sinks may not import: the composition root hands its
        labels over, so a policy that renames a band cannot silently send every report to ``unknown_category``.
        """
        for purpose, labels in categories.items():
            try:
                by_label = self.outcomes.get(Purpose(purpose))
            except ValueError:
                by_label = None
            if by_label is None:
                raise RuleSetError(f"{self._source}: outcomes.{purpose}: no rules for this purpose of the scoring "
                                   "policy")
            for label in labels:
                if label not in by_label:
                    raise RuleSetError(f"{self._source}: outcomes.{purpose}: no rule for category {label!r} of the "
                                       "scoring policy")

    # --- advice -------------------------------------------------------------------------------------------------

    def advise(self, *, purpose: str, category: str | None, competencies: Sequence[CompetencyLine]) -> Advice:
        """The advice for one result; every path gives Indonesian text and names its rules."""
        areas = development_order(competencies)
        strengths = [c for c in sorted(competencies, key=_code_key) if c.gap >= 0]
        values = {
            "development_count": str(len(areas)),
            "strengths": self._names(strengths),
            "development_areas": self._names(areas),
        }
        base = self._outcome(purpose, category)
        recommendation, placement, ids = base.recommendation, base.placement, [base.id]
        if category is not None:
            override = next((r for r in self.overrides if r.matches(purpose, category, len(areas))), None)
            if override is not None:
                recommendation = override.recommendation or recommendation
                placement = override.placement or placement
                ids.append(override.id)
        development = []
        for line in areas:
            band = self.band(line.code, line.gap)
            development.append((line.code, band.text.format_map(values)))
            if band.id not in ids:
                ids.append(band.id)
        return Advice(recommendation=recommendation.format_map(values), placement=placement.format_map(values),
                      development=development, rule_ids=ids, version=self.version)

    def _outcome(self, purpose: str, category: str | None) -> OutcomeRule:
        if category is None:
            return self.no_competency
        try:
            by_label = self.outcomes.get(Purpose(purpose), {})
        except ValueError:
            by_label = {}
        return by_label.get(category, self.unknown_category)

    def band(self, code: str, gap: int) -> DevelopmentBand:
        """The band of a development area; a gap below -4 (not possible on a 1-5 scale) counts as -4."""
        try:
            bands = self.development[Competency(code)]
        except ValueError:
            raise ValueError(f"competency {code!r} is not one of {', '.join(COMPETENCY_NAMES)}") from None
        gap = max(gap, LOWEST_GAP)
        return next(b for b in bands if b.min_gap <= gap <= b.max_gap)

    def _names(self, lines: Sequence[CompetencyLine]) -> str:
        return ", ".join(COMPETENCY_NAMES.get(c.code, c.code) for c in lines) or self.none_text


def _code_key(line: CompetencyLine) -> tuple[int, str]:
    return _ORDER.get(line.code, len(_ORDER)), line.code


def development_order(competencies: Sequence[CompetencyLine]) -> list[CompetencyLine]:
    """Development areas, worst gap first, then in report (code) order: the largest shortfall is acted on first."""
    return sorted((c for c in competencies if c.gap < 0), key=lambda c: (c.gap, *_code_key(c)))


def describe(exc: ValidationError, limit: int = 3) -> str:
    """The first errors on one line, each as ``field.path: message``."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
