"""The packed-sheet codec (streams/sheets.py): the two forms a sheet is stored in, and that every way of
packing, unpacking and scoring a sheet agrees with every other."""

from __future__ import annotations

import gc
import random
import weakref
from typing import Any

import orjson
import pytest

from schemas.blueprint import Blueprint, BlueprintRegistry
from schemas.domain import Section
from streams import scoring, sheets
from streams.sheets import ABSENT, BLANK


@pytest.fixture(scope="module")
def registry() -> BlueprintRegistry:
    return BlueprintRegistry.from_dir()


@pytest.fixture(scope="module")
def bp(registry: BlueprintRegistry) -> Blueprint:
    found = registry.get("mansoskul-only")
    assert found is not None
    return found


def items(bp: Blueprint) -> tuple[str, ...]:
    spec = bp.section(Section.MANSOSKUL)
    assert spec is not None
    return spec.item_ids


def variant(bp: Blueprint, version: str, option: str) -> Blueprint:
    """The blueprint under another version, its first item's option A relabelled ``option``."""
    data: dict[str, Any] = bp.model_dump(mode="json")
    data["version"] = version
    first = data["sections"][0]["subtests"][0]["items"][0]
    first["options"] = {(option if k == "A" else k): v for k, v in first["options"].items()}
    return Blueprint.model_validate(data)


def test_a_sheet_of_one_character_options_is_packed_in_blueprint_order(bp: Blueprint) -> None:
    ids = items(bp)
    packed = sheets.pack({ids[2]: "C", ids[0]: "A", ids[1]: None}, bp, "mansoskul")
    assert packed["layout"] == [bp.blueprint_id, bp.version]
    assert packed["answers"] == "A" + BLANK + "C" + ABSENT * (len(ids) - 3)


@pytest.mark.parametrize("why", ["long option", "item outside the blueprint", "option is a packed blank",
                                 "option is the absent mark"])
def test_any_other_sheet_is_kept_as_json(bp: Blueprint, why: str) -> None:
    ids = items(bp)
    answers: dict[str, str | None] = {ids[0]: "A", ids[1]: None}
    answers |= {"long option": {ids[2]: "AB"}, "item outside the blueprint": {"EMS-X-001": "A"},
                "option is a packed blank": {ids[2]: BLANK}, "option is the absent mark": {ids[2]: ABSENT}}[why]
    packed = sheets.pack(answers, bp, "mansoskul")
    assert "layout" not in packed and orjson.loads(packed["answers"]) == answers  # type: ignore[arg-type]


def test_without_a_blueprint_or_its_section_a_sheet_is_json(bp: Blueprint) -> None:
    answers: dict[str, str | None] = {items(bp)[0]: "A"}
    assert sheets.pack(answers, None, "mansoskul") == {"answers": orjson.dumps(answers).decode()}
    assert "layout" not in sheets.pack(answers, bp, "digital_literacy")  # mansoskul-only has no such section


@pytest.mark.parametrize("seed", range(4))
def test_unpack_gives_back_what_was_packed_in_either_form(registry: BlueprintRegistry, bp: Blueprint,
                                                          seed: int) -> None:
    rng = random.Random(seed)
    spec = bp.section(Section.MANSOSKUL)
    assert spec is not None
    answers = {i.item_id: (None if rng.random() < 0.2 else rng.choice(sorted(i.options)))
               for i in spec.items if rng.random() < 0.7}
    assert sheets.unpack(registry, sheets.pack(answers, bp, "mansoskul"), "mansoskul") == answers
    assert sheets.unpack(registry, sheets.pack(answers, None, "mansoskul"), "mansoskul") == answers
    legacy = {"answers": dict(answers)}  # state written before sheets were packed
    assert sheets.unpack(registry, legacy, "mansoskul") == answers  # type: ignore[arg-type]


def test_a_sheet_packed_in_a_blueprint_no_longer_loaded_says_so(registry: BlueprintRegistry, bp: Blueprint) -> None:
    stored = sheets.pack({items(bp)[0]: "A"}, bp, "mansoskul")
    stored["layout"] = [bp.blueprint_id, "1999.1"]
    with pytest.raises(RuntimeError, match="no longer loaded"):
        sheets.unpack(registry, stored, "mansoskul")


@pytest.mark.parametrize("count", [0, 1, 40, None])
def test_a_sheet_in_blueprint_order_is_packed_by_the_fast_path_as_pack_packs_it(registry: BlueprintRegistry,
                                                                                bp: Blueprint,
                                                                                count: int | None) -> None:
    rng = random.Random(count)
    spec = bp.section(Section.MANSOSKUL)
    assert spec is not None
    chosen = spec.items[:count]  # the first part of a sheet (an autosave), or all of it
    ids = [i.item_id for i in chosen]
    options = [None if rng.random() < 0.1 else rng.choice(sorted(i.options)) for i in chosen]
    fast = sheets.pack_in_order(registry, bp, Section.MANSOSKUL, ids, options)
    assert fast == sheets.pack(dict(zip(ids, options)), bp, "mansoskul")


def test_the_fast_path_leaves_any_other_sheet_to_the_general_one(registry: BlueprintRegistry, bp: Blueprint) -> None:
    ids = list(items(bp))
    options: list[str | None] = ["A"] * len(ids)
    assert sheets.pack_in_order(registry, bp, Section.MANSOSKUL, ids[:3], options[:3]) is not None
    assert sheets.pack_in_order(registry, None, Section.MANSOSKUL, ids[:3], options[:3]) is None
    assert sheets.pack_in_order(registry, bp, Section.MANSOSKUL, ids[1:4], options[:3]) is None  # not from the start
    assert sheets.pack_in_order(registry, bp, Section.MANSOSKUL, ids[:2][::-1], options[:2]) is None  # out of order
    assert sheets.pack_in_order(registry, bp, Section.MANSOSKUL, ids[:2], ["A", "Z"]) is None  # unknown option
    assert sheets.pack_in_order(registry, bp, Section.MANSOSKUL, ids + ids[:1], options + ["A"]) is None  # too long
    assert sheets.pack_in_order(registry, bp, Section.DIGITAL_LITERACY, ids[:1], ["A"]) is None  # no such section


def test_a_bank_with_a_longer_option_label_is_never_packed_by_position(bp: Blueprint) -> None:
    long = BlueprintRegistry([variant(bp, "2026.9", "AA")])
    blank = BlueprintRegistry([variant(bp, "2026.9", BLANK)])
    for registry in (long, blank):
        loaded = registry.get(bp.blueprint_id)
        assert loaded is not None
        assert sheets.allowed_by_position(registry, loaded, Section.MANSOSKUL) is None
        assert sheets.pack_in_order(registry, loaded, Section.MANSOSKUL, list(items(bp)[:1]), ["B"]) is None
    plain = BlueprintRegistry([bp])
    allowed = sheets.allowed_by_position(plain, bp, Section.MANSOSKUL)
    assert allowed is not None and len(allowed) == len(items(bp)) and None in allowed[0] and "A" in allowed[0]


def test_the_positions_are_computed_once_per_registry_and_do_not_keep_it_alive(bp: Blueprint) -> None:
    registry = BlueprintRegistry([bp])
    first = sheets.allowed_by_position(registry, bp, Section.MANSOSKUL)
    assert sheets.allowed_by_position(registry, bp, Section.MANSOSKUL) is first
    other = BlueprintRegistry([bp])  # a reload: its own bank, computed again
    assert sheets.allowed_by_position(other, bp, Section.MANSOSKUL) is not first
    gone = weakref.ref(registry)
    del registry
    gc.collect()
    assert gone() is None


def test_merge_keeps_the_newer_autosave_where_it_answers() -> None:
    newer, older = "A" + ABSENT + BLANK + ABSENT, "B" + "C" + "D" + ABSENT
    assert sheets.merge(newer, older) == "A" + "C" + BLANK + ABSENT


def test_scoring_reads_a_sheet_packed_in_its_layout_as_it_is(registry: BlueprintRegistry, bp: Blueprint) -> None:
    ids = items(bp)
    answers: dict[str, str | None] = {ids[0]: "A", ids[1]: None}
    packed = sheets.pack(answers, bp, "mansoskul")
    assert sheets.for_scoring(registry, packed, bp, "mansoskul") == packed["answers"]
    as_json = sheets.pack(answers, None, "mansoskul")
    assert sheets.for_scoring(registry, as_json, bp, "mansoskul") == answers
    corrected = variant(bp, "2026.2", "A")  # same items, another version: unpacked by its own layout
    assert sheets.for_scoring(BlueprintRegistry([bp, corrected]), packed, corrected, "mansoskul") == answers


@pytest.mark.parametrize("seed", range(3))
def test_a_packed_sheet_gives_scoring_the_options_by_position(bp: Blueprint, seed: int) -> None:
    rng = random.Random(seed)
    spec = bp.section(Section.MANSOSKUL)
    assert spec is not None
    answers = {i.item_id: (None if rng.random() < 0.1 else rng.choice(sorted(i.options)))
               for i in spec.items if rng.random() > 0.1}
    packed = sheets.pack(answers, bp, "mansoskul")["answers"]
    assert isinstance(packed, str)
    assert sheets.options_at(spec, packed) == [answers.get(i) for i in spec.item_ids]
    assert scoring.score_section(spec, packed, "submitted") == scoring.score_section(spec, answers, "submitted")
    with pytest.raises(ValueError, match="characters"):
        sheets.options_at(spec, packed[:-1])
