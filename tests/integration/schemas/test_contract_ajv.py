"""The contract corpus judged by ajv: a second, independent validator (Node.js, draft 2020-12, ajv-formats
asserting ``format``) must give every instance the Python reference's verdict, and the decoder must agree
with it modulo the rules of schemas/rules.py (tests/support/contract_corpus.py).

A vendor validating in JavaScript then gets the pipeline's answer. One ``node`` run judges the whole corpus;
``make ajv`` installs the pinned ajv (tests/contract_js/package-lock.json), and ``make test`` runs it first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from schemas.export import DEFAULT_DIR
from support import contract_corpus as cc

JS_DIR = Path(__file__).resolve().parents[2] / "contract_js"


def installed_as_locked() -> bool:
    """node_modules holds the locked ajv and ajv-formats (``npm ci`` ran since the lock last changed)."""
    locked = json.loads((JS_DIR / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for name in ("ajv", "ajv-formats"):
        installed = JS_DIR / "node_modules" / name / "package.json"
        if not installed.is_file() or json.loads(installed.read_text(encoding="utf-8"))["version"] != \
                locked[f"node_modules/{name}"]["version"]:
            return False
    return True


def ajv_verdicts(corpus_path: Path) -> list[dict[str, object]]:
    node = shutil.which("node")
    if node is None or not installed_as_locked():
        pytest.fail("ajv is missing or not the locked version: run `make ajv` (Node.js, then `npm ci` in "
                    "tests/contract_js)")
    done = subprocess.run([node, str(JS_DIR / "validate.mjs"), str(DEFAULT_DIR), str(corpus_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and not done.stderr, f"validate.mjs failed ({done.returncode}): {done.stderr[-2000:]}"
    # Split on "\n" only: JSON.stringify leaves U+2028 and friends raw, and str.splitlines would break on them.
    return [json.loads(line) for line in done.stdout.split("\n") if line]


@pytest.fixture(scope="module")
def ajv(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    path = tmp_path_factory.mktemp("contract") / "corpus.jsonl"
    path.write_bytes(cc.jsonl(cc.corpus()))
    verdicts = ajv_verdicts(path)
    assert len(verdicts) == len(cc.corpus())
    return verdicts


def test_ajv_gives_every_instance_the_reference_verdict(ajv: list[dict[str, object]]) -> None:
    differ = [(case, ref, got) for case, ref, got in zip(cc.corpus(), cc.reference_verdicts(), ajv, strict=True)
              if got["valid"] is not ref]
    shown = "\n".join(f"{c.name} [{c.label}] python {'valid' if r else 'invalid'}, ajv {g}: "
                      f"{json.dumps(c.instance)[:200]}"
                      for c, r, g in differ[:10])
    assert not differ, f"{len(differ)} of {len(ajv)} instances judged differently:\n{shown}"


def test_the_decoder_agrees_with_ajv(ajv: list[dict[str, object]]) -> None:
    found = cc.disagreements([bool(v["valid"]) for v in ajv])
    shown = "\n".join(map(str, found[:15]))
    assert not found, f"{len(found)} disagreements with ajv, e.g.:\n{shown}"


def test_ajv_judged_both_sides_of_every_type(ajv: list[dict[str, object]]) -> None:
    tally = Counter((case.name, bool(v["valid"])) for case, v in zip(cc.corpus(), ajv))
    for name in cc.NAMES:
        assert tally[name, True] >= 20 and tally[name, False] >= 500, (name, tally[name, True], tally[name, False])
    refused = next(v for case, v in zip(cc.corpus(), ajv) if case.label == "uuid=urn:event_id")
    assert refused["valid"] is False and refused["errors"], refused  # ajv's format allows urn:uuid:, the pattern not
