"""A malformed blueprint is refused with a message naming the item and the field.

That the worker then refuses to start (exit 2, the message on stderr) is a process test:
tests/integration/schemas/test_worker_bad_blueprint.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.blueprint import SAMPLE_DIR, BlueprintError, BlueprintRegistry, load_blueprint
from schemas.domain import Competency, Section


def sample() -> dict:
    return json.loads((SAMPLE_DIR / "cact-full.json").read_text())


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "bp.json"
    path.write_text(json.dumps(data))
    return path


def test_sample_bank_is_shaped_like_the_real_test() -> None:
    reg = BlueprintRegistry.from_dir()
    full = reg.get("cact-full")
    assert full is not None and len(full.item_index) == 435
    assert sum(len(s.subtests) for s in full.sections) == 22
    assert full.section_names == (Section.MANSOSKUL, Section.EMERGING_SKILLS, Section.DIGITAL_LITERACY)
    mansoskul = {i.competency for i in full.section(Section.MANSOSKUL).items}  # type: ignore[union-attr]
    assert mansoskul == set(Competency)
    only = reg.get("mansoskul-only")
    assert only is not None and only.section_names == (Section.MANSOSKUL,)


def test_missing_competency_names_item_and_field(tmp_path: Path) -> None:
    data = sample()
    del data["sections"][0]["subtests"][0]["items"][2]["competency"]
    with pytest.raises(BlueprintError, match=r"item MSK-M1-003 \(sub-test MSK-M1\): field 'competency'"):
        load_blueprint(write(tmp_path, data))


def test_wrong_weight_type_names_item_and_field(tmp_path: Path) -> None:
    data = sample()
    data["sections"][1]["subtests"][0]["items"][4]["options"]["A"] = "heavy"
    with pytest.raises(BlueprintError, match=r"item ES-01-005.*field 'A'"):
        load_blueprint(write(tmp_path, data))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["sections"][0]["subtests"][1]["items"].append(dict(d["sections"][0]["subtests"][0]["items"][0])),
     "also used in sub-test"),
    (lambda d: d["sections"][0]["subtests"][0]["items"][0].update(options={"A": 0, "B": 0}), "positive weight"),
    (lambda d: d.update(competency_cut_scores=[0, 50, 40, 70, 85]), "cut scores"),
    (lambda d: d["sections"][0].update(subtests=d["sections"][0]["subtests"][:8]), "competencies S1"),
    (lambda d: d["potential"].update(intelektual=["ES-03", "XX-99"]), "potential intelektual: no sub-test XX-99"),
    (lambda d: d["potential"].pop("interpersonal"), "interpersonal"),
])
def test_inconsistent_blueprints_are_rejected(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    data = sample()
    mutate(data)
    with pytest.raises(BlueprintError, match=message):
        load_blueprint(write(tmp_path, data))


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bp.json"
    path.write_text("{")
    with pytest.raises(BlueprintError, match="cannot read blueprint"):
        load_blueprint(path)

