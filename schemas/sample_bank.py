"""Generate the synthetic sample item bank shipped in schemas/blueprints/ (no real item or key is in it).

Shaped like the real CACT: 435 items in 22 sub-tests. Mansoskul: nine sub-tests, one per competency, of
situational-judgement items whose four options weigh 1-4; emerging skills and digital literacy:
multiple-choice items with one correct option. Run ``python -m schemas.sample_bank`` to rewrite the files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from schemas.blueprint import SAMPLE_DIR
from schemas.domain import Competency

VERSION = "2026.1"
MANSOSKUL_ITEMS_PER_COMPETENCY = 25  # 9 × 25 = 225
EMERGING = [20] * 7  # 140 items in 7 sub-tests
DIGITAL = [12] * 5 + [10]  # 70 items in 6 sub-tests
OPTIONS = ["A", "B", "C", "D"]
#: An illustrative mapping of sub-tests to SI ASN's potential dimensions (BKN's own is not public): the full
#: test reports a potential profile, the Mansoskul-only variant does not.
POTENTIAL = {
    "berfikirKritis": ["ES-01", "ES-02", "DL-03"],
    "intelektual": ["ES-03", "ES-04", "DL-01"],
    "interpersonal": ["MSK-M2", "MSK-M3"],
    "kesadaranDiri": ["MSK-M6", "ES-05"],
    "motivasiKomitmen": ["MSK-M1", "MSK-M4", "ES-06"],
}


def _sjt(rng: random.Random, item_id: str, competency: Competency) -> dict:
    weights = [1, 2, 3, 4]
    rng.shuffle(weights)
    return {"item_id": item_id, "competency": competency.value, "options": dict(zip(OPTIONS, weights))}


def _mcq(rng: random.Random, item_id: str) -> dict:
    right = rng.choice(OPTIONS)
    return {"item_id": item_id, "options": {o: (1 if o == right else 0) for o in OPTIONS}}


def build(seed: int = 2024) -> dict[str, dict]:
    rng = random.Random(seed)
    mansoskul = {
        "section": "mansoskul",
        "subtests": [
            {
                "code": f"MSK-{c.value}",
                "title": f"Mansoskul {c.value}",
                "items": [_sjt(rng, f"MSK-{c.value}-{n:03d}", c) for n in range(1, MANSOSKUL_ITEMS_PER_COMPETENCY + 1)],
            }
            for c in Competency
        ],
    }
    emerging = {
        "section": "emerging_skills",
        "subtests": [
            {"code": f"ES-{s:02d}", "title": f"Emerging skills {s}",
             "items": [_mcq(rng, f"ES-{s:02d}-{n:03d}") for n in range(1, k + 1)]}
            for s, k in enumerate(EMERGING, start=1)
        ],
    }
    digital = {
        "section": "digital_literacy",
        "subtests": [
            {"code": f"DL-{s:02d}", "title": f"Digital literacy {s}",
             "items": [_mcq(rng, f"DL-{s:02d}-{n:03d}") for n in range(1, k + 1)]}
            for s, k in enumerate(DIGITAL, start=1)
        ],
    }
    return {
        "cact-full": {"blueprint_id": "cact-full", "version": VERSION, "title": "CACT (sample bank)",
                      "sections": [mansoskul, emerging, digital], "potential": POTENTIAL},
        "mansoskul-only": {"blueprint_id": "mansoskul-only", "version": VERSION,
                           "title": "CACT Mansoskul only (sample bank)", "sections": [mansoskul]},
    }


def write(folder: Path = SAMPLE_DIR) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, bp in build().items():
        (folder / f"{name}.json").write_text(json.dumps(bp, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write()
