"""How an answer sheet is kept in the worker's state: the packed-sheet codec, in one place.

Sheets are most of a participant's state, and state is copied, written to the changelog and kept in memory for
every participant of the day: a dict per sheet cost ~40 kB, one JSON string ~6 kB, the packed string ~0.4 kB
(docs/benchmarks.md). So a sheet is stored in one of two forms (``PackedSheet``):

- **packed**, when every option of the sheet is one character (CACT's are A-E) and every item it names is in
  the session's blueprint section: ``answers`` holds one character per item of that section, in the
  blueprint's item order: the option, ``BLANK`` for an item answered blank, ``ABSENT`` for an item not
  answered at all; ``layout`` names the blueprint and version whose item order it follows;
- **as JSON**, any other sheet: ``answers`` holds the sheet (item id → option) as one JSON string, no ``layout``.

Scoring reads a packed sheet as it is (``options_at``), without building a dict per sheet. A sheet in the
common shape (the blueprint's items in its order, an autosave's first part included) is checked and packed by
C-level passes (``pack_in_order``); any other sheet takes the general path (``pack``), which packs the same.
"""

from __future__ import annotations

import operator
import weakref
from typing import Any, NotRequired, TypedDict

import orjson

from schemas.blueprint import Blueprint, BlueprintRegistry, SectionSpec
from schemas.domain import Section

#: The packed characters for an item answered blank and for an item not answered at all. No option may be
#: one of them: a section whose bank has such an option is never packed.
BLANK, ABSENT = "-", "."

#: An answer sheet: item id → option, None for blank.
Answers = dict[str, str | None]


class PackedSheet(TypedDict):
    """A sheet as state keeps it. ``answers`` is the packed string with ``layout`` = [blueprint_id, version],
    or a JSON string without it; a dict in state written before sheets were packed (still read, never
    written)."""

    answers: str | Answers
    layout: NotRequired[list[str]]


_MISSING: Any = object()  # an item a sheet does not name (Any: compared by identity only)
_PACKED_CHAR: dict[str | None, str] = {None: BLANK}
_UNPACKED: dict[str, str | None] = {BLANK: None, ABSENT: None}


def layout_of(blueprint: Blueprint, section: str) -> tuple[tuple[str, ...], frozenset[str]] | None:
    """The item order of a blueprint's section, and its items as a set (None when it has no such section)."""
    spec = blueprint.section(Section(section))
    return (spec.item_ids, spec.item_id_set) if spec is not None else None


def pack(answers: Answers, blueprint: Blueprint | None, section: str) -> PackedSheet:
    """A sheet as kept in state: packed in the blueprint's layout when it can be, else as one JSON string."""
    layout = layout_of(blueprint, section) if blueprint is not None else None
    if blueprint is not None and layout is not None and answers.keys() <= layout[1]:
        chars = []
        for item in layout[0]:
            option = answers.get(item, _MISSING)
            if option is _MISSING:
                chars.append(ABSENT)
            elif option is None:
                chars.append(BLANK)
            elif len(option) == 1 and option not in (BLANK, ABSENT):
                chars.append(option)
            else:
                break
        else:
            return {"answers": "".join(chars), "layout": [blueprint.blueprint_id, blueprint.version]}
    return {"answers": orjson.dumps(answers).decode()}


def allowed_by_position(registry: BlueprintRegistry, blueprint: Blueprint,
                        section: Section) -> tuple[frozenset[str | None], ...] | None:
    """What the registry's bank allows at each item position of a blueprint's section, blank (None) included;
    None when the registry does not hold that blueprint section, or when some allowed option could not be
    packed (longer than one character, or a packed blank). Computed once per registry and section."""
    cache = _ALLOWED.get(registry)
    if cache is None:
        cache = _ALLOWED[registry] = {}
    key = (blueprint.blueprint_id, blueprint.version, section)
    found = cache.get(key, _MISSING)
    if found is _MISSING:
        found = cache[key] = _allowed(registry, key)
    return found


def _allowed(registry: BlueprintRegistry, key: tuple[str, str, Section]) -> tuple[frozenset[str | None], ...] | None:
    blueprint = registry.get(key[0], key[1])
    spec = blueprint.section(key[2]) if blueprint is not None else None
    if spec is None:
        return None
    options = registry.options_in(key[2])
    allowed = tuple(options[i] | {None} for i in spec.item_ids)
    packable = all(len(o) == 1 and o not in (BLANK, ABSENT) for opts in allowed for o in opts if o is not None)
    return allowed if packable else None


#: Per registry (a reload makes a new one): (blueprint_id, version, section) → allowed_by_position's answer.
_ALLOWED: weakref.WeakKeyDictionary[BlueprintRegistry, dict[tuple[str, str, Section],
                                                           tuple[frozenset[str | None], ...] | None]]
_ALLOWED = weakref.WeakKeyDictionary()


def pack_in_order(registry: BlueprintRegistry, blueprint: Blueprint | None, section: Section, items: list[str],
                  options: list[str | None]) -> PackedSheet | None:
    """The common sheet, checked and packed with C-level passes: the items of the session's blueprint in its
    order (a whole sheet, or the first part of it as an autosave has), each with an option the bank allows.

    Same acceptance as ``scoring.check_answers`` and same packing as ``pack``, whose Python loop per answer
    was the worker's largest cost (docs/benchmarks.md); None sends any other sheet their way."""
    if blueprint is None:
        return None
    allowed = allowed_by_position(registry, blueprint, section)
    if allowed is None or len(items) > len(allowed):
        return None
    spec = blueprint.section(section)
    assert spec is not None  # allowed_by_position found it
    layout = spec.item_ids
    if tuple(items) != layout[:len(items)] or not all(map(operator.contains, allowed, options)):
        return None
    chars = "".join(map(_PACKED_CHAR.get, options, options))  # type: ignore[arg-type]  # None → BLANK, else itself
    return {"answers": chars + ABSENT * (len(layout) - len(items)),
            "layout": [blueprint.blueprint_id, blueprint.version]}


def merge(newer: str, older: str) -> str:
    """Two packed autosaves of one layout: each item as the newer one has it, else as the older one."""
    return "".join(o if n == ABSENT else n for n, o in zip(newer, older))


def unpack(registry: BlueprintRegistry, stored: PackedSheet, section: str) -> Answers:
    """A stored sheet of ``section`` as item id → option, whichever form it was stored in."""
    answers = stored["answers"]
    if isinstance(answers, dict):  # state written before sheets were packed
        return dict(answers)
    if "layout" not in stored:
        loaded: Answers = orjson.loads(answers)
        return loaded
    blueprint = registry.get(*stored["layout"])
    layout = layout_of(blueprint, section) if blueprint is not None else None
    if layout is None:
        raise RuntimeError(f"blueprint {stored['layout']} of a stored sheet is no longer loaded")
    return {item: (None if c == BLANK else c) for item, c in zip(layout[0], answers) if c != ABSENT}


def for_scoring(registry: BlueprintRegistry, stored: PackedSheet, blueprint: Blueprint, section: str) -> str | Answers:
    """A stored sheet as scoring takes it: still packed when it was packed in this blueprint's layout."""
    if stored.get("layout") == [blueprint.blueprint_id, blueprint.version]:
        return stored["answers"]
    return unpack(registry, stored, section)


def options_at(spec: SectionSpec, packed: str) -> list[str | None]:
    """A packed sheet as one option (None for blank or not answered) per item position of the section."""
    if len(packed) != len(spec.item_ids):
        raise ValueError(f"a packed {spec.section.value} sheet has {len(spec.item_ids)} characters, not {len(packed)}")
    return list(map(_UNPACKED.get, packed, packed))
