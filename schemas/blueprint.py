"""Test blueprints: which items a test has, how each option scores, and how raw scores become levels.

A blueprint file holds the item keys (option weights), which are confidential: it is loaded by the worker
at start-up and never copied into events, logs or results. The format is documented in docs/scoring.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.domain import POTENTIAL_FIELDS, Competency, Section

if TYPE_CHECKING:
    from schemas.settings import Settings

Levels = Annotated[list[float], Field(min_length=5, max_length=5)]

#: Default cut scores: the percent of the maximum raw score at which levels 1..5 start.
DEFAULT_CUTS: list[float] = [0.0, 40.0, 55.0, 70.0, 85.0]


class BlueprintError(ValueError):
    """A blueprint that cannot be used; the message names the file, item and field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(_Model):
    item_id: str = Field(min_length=1, max_length=64)
    competency: Competency | None = Field(default=None, description="Required for Mansoskul items.")
    options: dict[str, float] = Field(min_length=2, description="Option label → weight (the key).")

    @model_validator(mode="after")
    def _weights(self) -> Item:
        if any(w < 0 for w in self.options.values()):
            raise ValueError("option weights must be >= 0")
        if max(self.options.values()) <= 0:
            raise ValueError("at least one option must have a positive weight")
        return self

    @property
    def max_weight(self) -> float:
        return max(self.options.values())


class Subtest(_Model):
    code: str = Field(min_length=1, max_length=32)
    title: str = ""
    items: list[Item] = Field(min_length=1)


class SectionSpec(_Model):
    section: Section
    subtests: list[Subtest] = Field(min_length=1)
    cut_scores: Levels = Field(default_factory=lambda: list(DEFAULT_CUTS))

    @property
    def items(self) -> list[Item]:
        return [item for sub in self.subtests for item in sub.items]

    @cached_property
    def item_ids(self) -> tuple[str, ...]:
        """The section's items in blueprint order: a stored sheet is one character per item, in this order."""
        return tuple(i.item_id for i in self.items)

    @cached_property
    def item_id_set(self) -> frozenset[str]:
        return frozenset(self.item_ids)

    @cached_property
    def scoring_plan(self) -> ScoringPlan:
        """The key laid out by item position once: the worker scores every sheet of the day against it with
        C-level passes over positions, not a Python loop per answer (docs/benchmarks.md)."""
        weights: list[dict[str, float]] = []
        spans = []
        comp_max: dict[Competency, float] = {}
        comp_positions: dict[Competency, list[int]] = {}
        for sub in self.subtests:
            start, sub_max = len(weights), 0.0
            for item in sub.items:  # the same additions in the same order as scoring one by one: same floats
                sub_max += item.max_weight
                if item.competency is not None:
                    comp_max[item.competency] = comp_max.get(item.competency, 0.0) + item.max_weight
                    comp_positions.setdefault(item.competency, []).append(len(weights))
                weights.append(item.options)
            spans.append((sub.code, start, len(weights), sub_max))
        return ScoringPlan(tuple(weights), tuple(spans), comp_max,
                           {c: tuple(p) for c, p in comp_positions.items()}, len(self.item_ids))


@dataclass(frozen=True)
class ScoringPlan:
    """A section's key by item position (blueprint order): option weights per position, each sub-test's
    position span and maximum raw score, each competency's positions and maximum."""

    weights: tuple[dict[str, float], ...]
    subtests: tuple[tuple[str, int, int, float], ...]  # code, start, end (exclusive), maximum raw score
    competency_max: dict[Competency, float]
    competency_positions: dict[Competency, tuple[int, ...]]
    items: int


class PotentialSpec(_Model):
    """Which sub-tests measure each potential dimension: BKN's mapping is not public, so the blueprint carries it.

    A dimension's score is the mean of its sub-tests' percent scores; ``total`` is the mean of the five.
    A blueprint without this block produces no potential profile, and nothing is sent to ``potensi/save``.
    """

    berfikirKritis: list[str] = Field(min_length=1)
    intelektual: list[str] = Field(min_length=1)
    interpersonal: list[str] = Field(min_length=1)
    kesadaranDiri: list[str] = Field(min_length=1)
    motivasiKomitmen: list[str] = Field(min_length=1)

    def subtests_of(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in POTENTIAL_FIELDS}


class Blueprint(_Model):
    blueprint_id: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=32)
    title: str = ""
    sections: list[SectionSpec] = Field(min_length=1)
    competency_cut_scores: Levels = Field(
        default_factory=lambda: list(DEFAULT_CUTS),
        description="Percent of a competency's maximum raw score at which levels 1..5 start.",
    )
    potential: PotentialSpec | None = Field(default=None, description="Sub-tests behind each potential dimension.")

    @model_validator(mode="after")
    def _consistent(self) -> Blueprint:
        for cuts in [self.competency_cut_scores] + [s.cut_scores for s in self.sections]:
            if cuts[0] != 0 or any(b <= a for a, b in zip(cuts, cuts[1:])) or cuts[-1] > 100:
                raise ValueError("cut scores must start at 0, rise strictly and stay <= 100")
        seen: dict[str, str] = {}
        sections = set()
        for spec in self.sections:
            if spec.section in sections:
                raise ValueError(f"section {spec.section.value} appears twice")
            sections.add(spec.section)
            for sub in spec.subtests:
                for item in sub.items:
                    where = f"item {item.item_id} (sub-test {sub.code})"
                    if item.item_id in seen:
                        raise ValueError(f"{where}: item_id also used in sub-test {seen[item.item_id]}")
                    seen[item.item_id] = sub.code
                    if spec.section is Section.MANSOSKUL and item.competency is None:
                        raise ValueError(f"{where}: field 'competency' is required for Mansoskul items")
        if Section.MANSOSKUL in sections:
            covered = {i.competency for s in self.sections if s.section is Section.MANSOSKUL for i in s.items}
            missing = sorted(c.value for c in Competency if c not in covered)
            if missing:
                raise ValueError(f"Mansoskul has no items for competencies {', '.join(missing)}")
        if self.potential is not None:
            codes = {sub.code for spec in self.sections for sub in spec.subtests}
            for name, subs in self.potential.subtests_of().items():
                unknown = sorted(set(subs) - codes)
                if unknown:
                    raise ValueError(f"potential {name}: no sub-test {', '.join(unknown)} in this blueprint")
        return self

    def section(self, section: Section) -> SectionSpec | None:
        return next((s for s in self.sections if s.section is section), None)

    @cached_property
    def section_names(self) -> tuple[Section, ...]:
        return tuple(s.section for s in self.sections)

    @cached_property
    def item_index(self) -> dict[str, tuple[Section, str, Item]]:
        """item_id → (section, sub-test code, item): scoring looks items up by id, per answer."""
        return {i.item_id: (s.section, sub.code, i) for s in self.sections for sub in s.subtests for i in sub.items}


def _describe(exc: ValidationError, data: object) -> str:
    """Name the item and field of each error, not just a JSON path, so an exam author can fix the file."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False)[:10]:
        loc = list(err["loc"])
        where = []
        node = data
        for part in loc:
            try:
                node = node[part]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                node = None
            if isinstance(node, dict):
                for label in ("item_id", "code", "section"):
                    if label in node:
                        where.append(f"{label.replace('_id', '')} {node[label]}")
                        break
        field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
        lines.append(f"{' / '.join(where) or 'blueprint'}: field '{field}': {err['msg']}")
    return "; ".join(lines)


def load_blueprint(path: Path) -> Blueprint:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BlueprintError(f"{path}: cannot read blueprint: {exc}") from None
    try:
        return Blueprint.model_validate(data)
    except ValidationError as exc:
        raise BlueprintError(f"{path}: {_describe(exc, data)}") from None


SAMPLE_DIR = Path(__file__).parent / "blueprints"


class BlueprintRegistry:
    """All blueprints the worker knows, by id and version; loaded at start-up so a bad file stops it early.

    Several versions of one blueprint may be loaded at once: a corrected key is a new version, and results
    are rescored against it explicitly (``cact rescore``) while new sessions use the latest version.

    Two folders feed it: the blueprint folder (``CACT_BLUEPRINT_DIR``, by default the shipped samples, which
    nobody should write into) and the corrections folder (``CACT_BLUEPRINT_CORRECTIONS_DIR``), where
    ``cact rescore`` installs corrected versions, so a correction never needs a custom blueprint folder.
    """

    def __init__(self, blueprints: list[Blueprint], folder: Path | None = None, corrections: Path | None = None,
                 sources: Mapping[tuple[str, str], Path] | None = None):
        self.folder = folder
        self.corrections = corrections
        self._sources = dict(sources or {})
        self._by_key: dict[tuple[str, str], Blueprint] = {}
        for bp in blueprints:
            if (bp.blueprint_id, bp.version) in self._by_key:
                raise BlueprintError(f"blueprint {bp.blueprint_id} version {bp.version} is defined twice")
            self._by_key[(bp.blueprint_id, bp.version)] = bp
        self._latest: dict[str, Blueprint] = {}
        for bp in sorted(blueprints, key=lambda b: _version_key(b.version)):
            self._latest[bp.blueprint_id] = bp
        self._items: dict[str, tuple[Section, str, Item]] = {}
        for bp in blueprints:
            self._items.update(bp.item_index)
        self._options: dict[Section, dict[str, frozenset[str]]] = {section: {} for section in Section}
        for item_id, (section, _code, item) in self._items.items():
            self._options[section][item_id] = frozenset(item.options)

    @classmethod
    def from_dir(cls, folder: Path | None = None) -> BlueprintRegistry:
        return cls.from_dirs(folder, None)

    @classmethod
    def from_settings(cls, settings: Settings) -> BlueprintRegistry:
        """What every worker loads: ``CACT_BLUEPRINT_DIR`` (else the samples) and the corrections folder."""
        return cls.from_dirs(settings.blueprint_dir, settings.blueprint_corrections_dir)

    @classmethod
    def from_dirs(cls, folder: Path | None, corrections: Path | None) -> BlueprintRegistry:
        """The blueprint folder, which must hold blueprints, and the corrections folder, which may be absent
        or empty (no correction yet). One id and version in two files is fine when both say the same, and
        refused when they differ: which key a result was scored with must never depend on file order."""
        folder = folder or SAMPLE_DIR
        files = sorted(folder.glob("*.json"))
        if not files:
            raise BlueprintError(f"{folder}: no blueprint files (*.json)")
        if corrections is not None and corrections.exists():
            if not corrections.is_dir():
                raise BlueprintError(f"{corrections}: not a folder (CACT_BLUEPRINT_CORRECTIONS_DIR)")
            if corrections.resolve() != folder.resolve():
                files += sorted(corrections.glob("*.json"))
        blueprints: list[Blueprint] = []
        sources: dict[tuple[str, str], Path] = {}
        for path in files:
            bp = load_blueprint(path)
            key = (bp.blueprint_id, bp.version)
            if key in sources:
                first = next(b for b in blueprints if (b.blueprint_id, b.version) == key)
                if first != bp:
                    raise BlueprintError(f"blueprint {bp.blueprint_id} version {bp.version} is in {sources[key]} and "
                                         f"in {path} with different content: remove one, or give the corrected one "
                                         "a new version")
                continue
            sources[key] = path
            blueprints.append(bp)
        return cls(blueprints, folder, corrections, sources)

    def reload(self) -> BlueprintRegistry:
        """A fresh registry from the same folders: a corrected key installed while the worker runs."""
        return BlueprintRegistry.from_dirs(self.folder, self.corrections)

    def source_of(self, blueprint_id: str, version: str) -> Path | None:
        """The file a loaded version came from (None for a registry built from objects)."""
        return self._sources.get((blueprint_id, version))

    def get(self, blueprint_id: str, version: str | None = None) -> Blueprint | None:
        if version is None:
            return self._latest.get(blueprint_id)
        return self._by_key.get((blueprint_id, version))

    def ids(self) -> list[str]:
        return sorted(self._latest)

    def options_in(self, section: Section) -> Mapping[str, frozenset[str]]:
        """Item id → its option labels, for the items of ``section`` in any loaded blueprint."""
        return self._options[section]

    def find_item(self, item_id: str) -> tuple[Section, str, Item] | None:
        """Any blueprint's item: lab events are checked against the whole bank, before the session is known."""
        return self._items.get(item_id)


def _version_key(version: str) -> tuple[tuple[int, object], ...]:
    """'2026.10' sorts after '2026.9': numeric parts compare as numbers."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.replace("-", ".").split("."))
