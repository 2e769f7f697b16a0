"""What a stored result must say, worked out from the simulator's truth alone: the scoring of docs/scoring.md
and the accreditation rule of docs/accreditation.md, re-implemented here.

The integration tests compare the pipeline's results with these (tests/integration/streams/test_result_rules.py,
test_scoring_pipeline.py and others, through the ``scorer`` and ``accreditation_rule`` fixtures). They share no
code with streams/scoring.py, streams/processor.py or schemas/accreditation.py on purpose: a rule misread in the
pipeline is not misread again here. They read only the documents' numbers, the shipped registry file (with the
csv module) and the simulator's ``TruthParticipant``.
"""

from __future__ import annotations

import csv
import fnmatch
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

from producers.truth import TruthParticipant

#: The accredited-institution registry shipped in the repository, read here with the csv module only.
REGISTRY_CSV = Path(__file__).resolve().parents[2] / "schemas" / "accreditation" / "lembaga-terakreditasi-2024.csv"


@dataclass(frozen=True)
class IndependentAccreditation:
    """docs/accreditation.md's rule, re-implemented from the registry file and the tier setting."""

    rows: dict[str, dict[str, str]]
    tiers: dict[str, frozenset[str]]
    bkn: tuple[str, ...] = ("bkn", "bkn-*", "kanreg-*")  # the documented default (docs/accreditation.md)
    SHIPPED: ClassVar[Path] = REGISTRY_CSV

    @classmethod
    def read(cls, path: Path = REGISTRY_CSV, tiers: dict[str, list[str]] | None = None) -> IndependentAccreditation:
        """``tiers``: CACT_ACCREDITATION_CATEGORY_TIERS as the worker was given it (default: A and B, every tier)."""
        with path.open(newline="", encoding="utf-8") as f:
            lines = (line for line in f if not line.startswith("#"))
            rows = {r["organiser_id"].lower(): r for r in csv.DictReader(lines)}
        every = list(IndependentScorer.STANDARD)
        tiers = tiers if tiers is not None else {"A": every, "B": every}
        return cls(rows, {cat: frozenset(ts) for cat, ts in tiers.items()})

    def recognised(self, organiser_id: str | None, tier: str, on: date) -> bool:
        """BKN's own units always; else a registry row with a category covering the tier, not expired before the
        test date (the expiry day itself still counts; no expiry on record counts)."""
        if organiser_id is None or any(fnmatch.fnmatchcase(organiser_id.lower(), p) for p in self.bkn):
            return True
        row = self.rows.get(organiser_id.lower())
        if row is None or not row["category"].strip():
            return False
        if row["expires_on"].strip() and date.fromisoformat(row["expires_on"].strip()) < on:
            return False
        return tier in self.tiers.get(row["category"].strip(), frozenset())


class IndependentScorer:
    """Scoring and filing re-implemented from docs/scoring.md, sharing no code with streams/scoring.py or
    streams/processor.py: what a stored result must say, from the simulator's truth alone."""
    STANDARD = {"jpt_utama": 5, "jpt_madya": 5, "jpt_pratama": 4, "administrator": 3, "pengawas": 2, "pelaksana": 1,
                "ahli_utama": 4, "ahli_madya": 3, "ahli_muda": 2, "ahli_pertama": 1, "terampil": 1}
    CUTS = [0, 40, 55, 70, 85]
    _shipped: IndependentAccreditation | None = None

    @staticmethod
    def _level(pct: float) -> int:
        return sum(1 for c in IndependentScorer.CUTS if pct >= c)

    @classmethod
    def reference(cls, bp: dict[str, Any], t: TruthParticipant, *,
                  accreditation: IndependentAccreditation | None = None, min_answered: int = 1) -> dict[str, Any]:
        """``bp``: the blueprint the participant sat; ``accreditation``: the registry and tier setting the worker
        ran with (default: the shipped registry, every category every tier)."""
        sections, comp, completion, answered = {}, {}, {}, {}
        for sec in bp["sections"]:
            answers = t.sheets[sec["section"]]
            got = top = 0.0
            for sub in sec["subtests"]:
                for item in sub["items"]:
                    w = item["options"].get(answers.get(item["item_id"]), 0) if answers.get(item["item_id"]) else 0
                    got += w
                    top += max(item["options"].values())
                    if "competency" in item:
                        c = comp.setdefault(item["competency"], [0.0, 0.0])
                        c[0] += w
                        c[1] += max(item["options"].values())
            sections[sec["section"]] = round(100 * got / top, 2)
            completion[sec["section"]] = t.completion[sec["section"]]
            answered[sec["section"]] = sum(answers.get(item["item_id"]) is not None
                                           for sub in sec["subtests"] for item in sub["items"])
        levels = {c: cls._level(round(100 * v[0] / v[1], 2)) for c, v in comp.items()}
        std = cls.STANDARD[t.tier.value]
        jpm = round(100 * sum(min(lv, std) for lv in levels.values()) / (9 * std), 2)
        bands = ([(90, "Optimal"), (78, "Cukup Optimal"), (0, "Kurang Optimal")] if t.purpose.value == "mapping"
                 else [(80, "MS"), (68, "MMS"), (0, "KMS")])
        if cls._shipped is None:
            cls._shipped = IndependentAccreditation.read()
        registry = accreditation or cls._shipped
        assert t.checked_in_at is not None
        if not registry.recognised(t.organiser_id, t.tier.value, t.checked_in_at.date()):  # the lab's local date
            standing = "not_recognised"
        elif not sum(answered.values()) or min(answered.values()) < min_answered:
            standing = "incomplete"
        else:
            standing = "counted"
        return {"levels": levels, "jpm": jpm, "category": next(label for lim, label in bands if jpm >= lim),
                "sections": sections, "completion": completion, "standing": standing, "filed": cls.filing(t)}

    @staticmethod
    def filing(t: TruthParticipant) -> dict[str, Any]:
        """Where a result is filed: the home activity, agency and purpose; sat in ``session_id``, of another
        activity for a susulan (``host_*``), run by ``organiser_id``."""
        return {"activity_id": t.activity_id, "agency_id": t.agency_id, "purpose": t.purpose.value,
                "session_id": t.scored_session, "host_activity_id": t.host_activity_id,
                "host_agency_id": t.host_agency_id, "organiser_id": t.organiser_id}

    @staticmethod
    def observed(r: dict[str, Any]) -> dict[str, Any]:
        return {"levels": {c["code"]: c["level"] for c in r["competencies"]}, "jpm": r["jpm"],
                "category": r["category"],
                "sections": {s["section"]: s["score"] for s in r["sections"]},
                "completion": {s["section"]: s["completion"] for s in r["sections"]},
                "standing": r.get("standing", "counted"),
                "filed": {k: r.get(k) for k in ("activity_id", "agency_id", "purpose", "session_id", "host_activity_id",
                                                "host_agency_id", "organiser_id")}}
