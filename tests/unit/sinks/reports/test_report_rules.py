"""The advice rules (sinks/reports/rules.py) on the shipped file and on faulty copies of it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.domain import Purpose
from sinks.reports.model import COMPETENCY_NAMES, CompetencyLine
from sinks.reports.rules import DEFAULT_PATH, Advice, RuleSet, RuleSetError
from streams.scoring import ScoringPolicy

RULES = RuleSet.load(None)
DEFAULT_DATA: dict[str, Any] = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
#: Gaps M3 -1, M6 -2, M1 -2: fewer than four development areas, so no override fires.
FEW = {"M1": (1, 3), "M2": (3, 3), "M3": (2, 3), "M4": (5, 3), "M5": (3, 3), "M6": (1, 3), "M7": (4, 3),
       "M8": (3, 3), "S1": (3, 3)}
#: Five development areas: the "many areas" overrides fire.
MANY = {"M1": (2, 3), "M2": (1, 3), "M3": (2, 3), "M4": (2, 3), "M5": (3, 3), "M6": (2, 3), "M7": (4, 3),
        "M8": (3, 3), "S1": (3, 3)}


def lines(levels: dict[str, tuple[int, int]]) -> list[CompetencyLine]:
    return [CompetencyLine(code, lvl, std, lvl - std) for code, (lvl, std) in levels.items()]


def advise(purpose: str, category: str | None, levels: dict[str, tuple[int, int]] | None = None,
           rules: RuleSet = RULES) -> Advice:
    return rules.advise(purpose=purpose, category=category, competencies=lines(levels if levels is not None else FEW))


def write(tmp_path: Path, data: dict[str, Any], name: str = "rules.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def edited(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT_DATA)
    data.update(changes)
    return data


# --- recommendation and placement by category ------------------------------------------------------------------


@pytest.mark.parametrize(("purpose", "category", "rule_id", "phrase"), [
    ("mapping", "Optimal", "R-MAP-OPT", "dipertahankan dan dikembangkan pada jabatan setingkat atau lebih tinggi"),
    ("mapping", "Cukup Optimal", "R-MAP-CO", "cukup optimal"),
    ("mapping", "Kurang Optimal", "R-MAP-KO", "kurang optimal"),
    ("position_filling", "MS", "R-PF-MS", "Memenuhi Syarat (MS)"),
    ("position_filling", "MMS", "R-PF-MMS", "Masih Memenuhi Syarat (MMS)"),
    ("position_filling", "KMS", "R-PF-KMS", "Belum direkomendasikan untuk jabatan yang dituju"),
])
def test_each_category_gives_its_rules_text(purpose: str, category: str, rule_id: str, phrase: str) -> None:
    advice = advise(purpose, category)
    rule = DEFAULT_DATA["outcomes"][purpose][category]
    assert advice.rule_ids[0] == rule_id
    assert phrase in advice.recommendation
    assert advice.placement == rule["placement"]  # no placeholders in the shipped placements
    assert advice.version == RULES.version == "2026.1"


def test_categories_of_one_purpose_read_differently() -> None:
    texts = {advise("position_filling", c).recommendation for c in ("MS", "MMS", "KMS")}
    texts |= {advise("mapping", c).recommendation for c in ("Optimal", "Cukup Optimal", "Kurang Optimal")}
    assert len(texts) == 6


def test_no_mansoskul_gives_the_fallback_and_no_development() -> None:
    advice = RULES.advise(purpose="position_filling", category=None, competencies=[])
    assert advice.rule_ids == ["R-NOMSK"]
    assert "tidak ada rekomendasi berdasarkan kompetensi" in advice.recommendation
    assert advice.placement == DEFAULT_DATA["no_competency"]["placement"]
    assert advice.development == []


def test_a_label_the_rules_do_not_know_is_not_guessed() -> None:
    for purpose, category in (("position_filling", "Memenuhi Syarat"), ("mapping", "MS"), ("audit", "Optimal")):
        advice = advise(purpose, category)
        assert advice.rule_ids[0] == "R-UNK"
        assert "tim penilai" in advice.recommendation


# --- development suggestions -----------------------------------------------------------------------------------


def test_development_suggestions_by_gap_band_worst_first_then_code_order() -> None:
    advice = advise("position_filling", "MMS")
    dev = DEFAULT_DATA["development"]
    assert advice.development == [
        ("M1", dev["M1"][1]["text"]),  # gap -2, the structured-training band
        ("M6", dev["M6"][1]["text"]),  # gap -2, after M1 in code order
        ("M3", dev["M3"][0]["text"]),  # gap -1, the on-the-job band
    ]
    assert "coaching" in dev["M4"][0]["text"].lower() or "mentoring" in dev["M4"][0]["text"].lower()
    assert "klasikal atau e-learning" in dev["M1"][1]["text"]
    assert advice.rule_ids == ["R-PF-MMS", "D-M1-2", "D-M6-2", "D-M3-1"]


def test_the_deepest_gap_gets_the_structured_band() -> None:
    advice = advise("position_filling", "KMS", {code: (1, 5) for code in COMPETENCY_NAMES})
    assert [code for code, _ in advice.development] == list(COMPETENCY_NAMES)
    assert all(text == DEFAULT_DATA["development"][code][1]["text"] for code, text in advice.development)


def test_strengths_are_no_development_area() -> None:
    advice = advise("mapping", "Optimal", {code: (3, 3) for code in COMPETENCY_NAMES})
    assert advice.development == []
    assert advice.rule_ids == ["R-MAP-OPT"]


# --- placeholders ----------------------------------------------------------------------------------------------


def test_placeholders_are_filled_with_indonesian_names() -> None:
    optimal = advise("mapping", "Optimal")
    assert "Integritas" not in optimal.recommendation  # M1 is a development area here
    assert "kekuatan pada: Kerja Sama, Orientasi pada Hasil, Pelayanan Publik, Mengelola Perubahan, " \
           "Pengambilan Keputusan, Perekat Bangsa." in optimal.recommendation
    mms = advise("position_filling", "MMS")
    assert mms.recommendation.endswith("di bawah standar: Integritas, Pengembangan Diri dan Orang Lain, Komunikasi.")
    assert "{" not in mms.recommendation + mms.placement + optimal.recommendation
    assert "3 kompetensi" in advise("mapping", "Kurang Optimal").recommendation


def test_an_empty_list_reads_as_none_text(tmp_path: Path) -> None:
    data = edited(none_text="nihil")
    data["outcomes"]["mapping"]["Optimal"]["placement"] = "Area pengembangan: {development_areas}."
    rules = RuleSet.load(write(tmp_path, data))
    assert rules.advise(purpose="mapping", category="Optimal",
                        competencies=lines({c: (3, 3) for c in COMPETENCY_NAMES})).placement == \
        "Area pengembangan: nihil."


def test_literal_braces_are_allowed(tmp_path: Path) -> None:
    data = edited()
    data["outcomes"]["mapping"]["Optimal"]["placement"] = "Lihat {{lampiran}} ({development_count})."
    assert advise("mapping", "Optimal", rules=RuleSet.load(write(tmp_path, data))).placement == \
        "Lihat {lampiran} (3)."


# --- the many-development-areas overrides ----------------------------------------------------------------------


@pytest.mark.parametrize("category", ["MS", "MMS", "KMS"])
def test_many_areas_in_position_filling_suggest_another_position(category: str) -> None:
    advice = advise("position_filling", category, MANY)
    assert advice.rule_ids[:2] == [DEFAULT_DATA["outcomes"]["position_filling"][category]["id"], "R-PF-DEV4"]
    assert advice.placement.startswith("Terdapat 5 kompetensi di bawah standar (Kerja Sama, Integritas, ")
    assert "jabatan lain" in advice.placement and "penilaian ulang" in advice.placement
    assert advice.recommendation == advise("position_filling", category).recommendation.replace(
        "Integritas, Pengembangan Diri dan Orang Lain, Komunikasi",
        "Kerja Sama, Integritas, Komunikasi, Orientasi pada Hasil, Pengembangan Diri dan Orang Lain")


def test_three_areas_do_not_trigger_the_override() -> None:
    assert "R-PF-DEV4" not in advise("position_filling", "MMS").rule_ids
    assert advise("position_filling", "MMS").placement == DEFAULT_DATA["outcomes"]["position_filling"]["MMS"][
        "placement"]


def test_many_areas_in_mapping_have_their_own_override() -> None:
    advice = advise("mapping", "Kurang Optimal", MANY)
    assert advice.rule_ids[:2] == ["R-MAP-KO", "R-MAP-DEV4"]
    assert "dipertahankan pada jabatan saat ini" in advice.placement


def test_first_matching_override_wins(tmp_path: Path) -> None:
    data = edited()
    data["overrides"].insert(0, {"id": "R-PF-KMS-DEV5", "purposes": ["position_filling"], "categories": ["KMS"],
                                 "min_development_areas": 5, "recommendation": "Ditinjau ulang: {development_count}."})
    rules = RuleSet.load(write(tmp_path, data))
    kms = advise("position_filling", "KMS", MANY, rules)
    assert kms.rule_ids[:2] == ["R-PF-KMS", "R-PF-KMS-DEV5"]
    assert kms.recommendation == "Ditinjau ulang: 5."
    assert kms.placement == DEFAULT_DATA["outcomes"]["position_filling"]["KMS"]["placement"]  # not replaced
    assert advise("position_filling", "MS", MANY, rules).rule_ids[:2] == ["R-PF-MS", "R-PF-DEV4"]


def test_no_override_applies_without_a_category(tmp_path: Path) -> None:
    data = edited(overrides=[{"id": "R-ANY", "placement": "Selalu."}])
    rules = RuleSet.load(write(tmp_path, data))
    assert rules.advise(purpose="mapping", category=None, competencies=[]).rule_ids == ["R-NOMSK"]
    assert advise("mapping", "Optimal", rules=rules).placement == "Selalu."


# --- loading ---------------------------------------------------------------------------------------------------


def test_a_custom_file_overrides_the_default(tmp_path: Path) -> None:
    data = edited(version="2027.1-instansi")
    data["outcomes"]["position_filling"]["MS"]["recommendation"] = "MS: silakan dilantik."
    rules = RuleSet.load(write(tmp_path, data))
    advice = advise("position_filling", "MS", rules=rules)
    assert advice.recommendation == "MS: silakan dilantik."
    assert advice.version == rules.version == "2027.1-instansi"
    assert rules.source == str(tmp_path / "rules.json")
    assert advise("position_filling", "MS").recommendation != "MS: silakan dilantik."
    assert rules.digest != RULES.digest
    assert RuleSet.load(write(tmp_path, DEFAULT_DATA, "same.json")).digest == RULES.digest


def _bands(data: dict[str, Any], code: str, *bands: tuple[int, int]) -> dict[str, Any]:
    data["development"][code] = [{"id": f"X-{code}-{i}", "min_gap": lo, "max_gap": hi, "text": "Pelatihan."}
                                 for i, (lo, hi) in enumerate(bands)]
    return data


def _unknown_placeholder() -> dict[str, Any]:
    data = edited()
    data["outcomes"]["mapping"]["Optimal"]["recommendation"] = "JPM {jpm}."
    return data


def _unknown_code() -> dict[str, Any]:
    data = edited()
    data["development"]["M9"] = data["development"]["M1"]
    return data


def _missing_purpose() -> dict[str, Any]:
    data = edited()
    del data["outcomes"]["position_filling"]
    return data


def _extra_field() -> dict[str, Any]:
    data = edited()
    data["outcomes"]["mapping"]["Optimal"]["jpm_min"] = 90
    return data


def _unknown_override_category() -> dict[str, Any]:
    data = edited()
    data["overrides"][0]["categories"] = ["Optimal"]  # a mapping label on a position_filling rule
    return data


def _duplicate_id() -> dict[str, Any]:
    data = edited()
    data["overrides"][1]["id"] = "R-PF-DEV4"
    return data


@pytest.mark.parametrize(("make", "field", "message"), [
    (_unknown_placeholder, "outcomes.mapping.Optimal.recommendation", "unknown placeholder {jpm}"),
    (lambda: _bands(edited(), "M3", (-1, -1), (-3, -2)), "development.M3", "no band covers gap -4"),
    (lambda: _bands(edited(), "S1", (-2, -1), (-4, -2)), "development.S1", "gap -2 is in two bands"),
    (lambda: _bands(edited(), "M2", (-1, -2), (-4, -2)), "development.M2.0", "min_gap -1 is above max_gap -2"),
    (lambda: _bands(edited(), "M2", (-4, 0)), "development.M2.0.max_gap", "less than or equal to -1"),
    (_unknown_code, "development.M9", "Input should be 'M1'"),
    (_missing_purpose, "outcomes", "no category rules for purpose position_filling"),
    (_extra_field, "outcomes.mapping.Optimal.jpm_min", "Extra inputs are not permitted"),
    (lambda: edited(colour="red"), "colour", "Extra inputs are not permitted"),
    (lambda: {k: v for k, v in DEFAULT_DATA.items() if k != "version"}, "version", "Field required"),
    (_unknown_override_category, "overrides.0 (R-PF-DEV4)", "category 'Optimal' has no rule"),
    (_duplicate_id, "rule id R-PF-DEV4", "used twice"),
])
def test_a_faulty_file_gives_one_line_naming_the_file_and_the_field(tmp_path: Path, make: Any, field: str,
                                                                     message: str) -> None:
    path = write(tmp_path, make(), "faulty.json")
    with pytest.raises(RuleSetError) as caught:
        RuleSet.load(path)
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert field in text and message in text


def test_malformed_braces_and_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    data = edited()
    data["development"]["M5"][0]["text"] = "Mentoring {"
    with pytest.raises(RuleSetError, match=r"development\.M5\.0\.text: malformed placeholder"):
        RuleSet.load(write(tmp_path, data))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(RuleSetError, match=r"bad\.json: cannot read rules"):
        RuleSet.load(bad)
    with pytest.raises(RuleSetError, match=r"missing\.json: cannot read rules"):
        RuleSet.load(tmp_path / "missing.json")


def policy_categories(policy: ScoringPolicy) -> dict[str, list[str]]:
    return {purpose.value: [band.label for band in bands] for purpose, bands in policy.categories.items()}


def test_a_category_of_the_policy_without_a_rule_is_refused(tmp_path: Path) -> None:
    data = edited()
    del data["outcomes"]["position_filling"]["MMS"]
    path = write(tmp_path, data, "partial.json")
    RuleSet.load(path)  # on its own the file is consistent...
    with pytest.raises(RuleSetError) as caught:  # ...but the policy can give MMS
        RuleSet.load(path, categories=policy_categories(ScoringPolicy()))
    assert str(caught.value) == (f"{path}: outcomes.position_filling: no rule for category 'MMS' of the "
                                 "scoring policy")


def test_the_default_rules_cover_every_category_of_the_default_scoring_policy() -> None:
    categories = policy_categories(ScoringPolicy())
    assert set(categories) == {p.value for p in Purpose}
    RuleSet.load(None, categories=categories)
    for purpose, labels in categories.items():
        for label in labels:
            assert advise(purpose, label).rule_ids[0] != "R-UNK", (purpose, label)


def test_every_shipped_text_is_filled_and_unbraced() -> None:
    """Every path of the default file reads as finished Indonesian: no placeholder left, no English stub."""
    for purpose in Purpose:
        for label in RULES.outcomes[purpose]:
            for levels in (FEW, MANY, {c: (5, 3) for c in COMPETENCY_NAMES}, {c: (1, 5) for c in COMPETENCY_NAMES}):
                advice = advise(purpose.value, label, levels)
                for text in [advice.recommendation, advice.placement, *(t for _, t in advice.development)]:
                    assert text.strip() and "{" not in text and "}" not in text
