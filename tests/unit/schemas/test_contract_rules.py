"""The published JSON Schemas and the rules beyond them, checked without the contract corpus.

What every validator needs to agree with the decoder (bounded numbers, a pattern beside every ``format``, ECMA
readings of ``$``), and the rules of schemas/rules.py as they are stated in each schema and in docs/events.md.
The corpus run that proves the decoder accepts exactly what the schemas accept is
tests/integration/schemas/test_contract_differential.py (its size is the point: it takes about a minute).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from schemas import events as ev
from schemas import rules
from schemas.export import DOC_PATH
from support import contract_corpus as cc

# --------------------------------------------------------------------------------------------------
# The rules beyond the schemas
# --------------------------------------------------------------------------------------------------


def test_nip_dates_is_what_the_pattern_leaves_to_the_decoder() -> None:
    assert re.fullmatch(ev.NIP_PATTERN, "201501012015031001")  # appointed as a baby: fits the layout
    assert rules.RULES_BY_ID["nip_dates"].broken_by({"payload": {"nip": "201501012015031001"}})
    assert not rules.RULES_BY_ID["nip_dates"].broken_by({"payload": {"nip": cc.GOOD_NIP}})


def test_session_times_are_compared_as_instants() -> None:
    broken = rules.RULES_BY_ID["session_times_ordered"].broken_by
    times = {"starts_at": "2026-11-03T08:00:00+08:00", "checkin_closes_at": "2026-11-03T01:30:00Z",
             "ends_at": "2026-11-03T12:30:00.0000009+08:00"}
    assert not broken({"payload": times})  # 01:30Z is 09:30 WITA
    assert broken({"payload": times | {"checkin_closes_at": "2026-11-03T07:59:59.9999999+08:00"}})
    assert not broken({"payload": times | {"checkin_closes_at": "2026-11-03T07:59:59.9999999+08:00",
                                           "starts_at": "2026-11-03T07:59:59.9999995+08:00"}})  # same microsecond


@pytest.mark.parametrize("name", cc.NAMES)
def test_each_schema_states_its_topics_and_rules(name: str) -> None:
    cls = ev.EVENT_TYPES[name]
    description = cc.schema_of(name)["description"]
    for topic in (cls.topic, *getattr(cls, "also_on", ())):
        assert topic.name in description
    for rule in rules.rules_for(name):
        assert f"[{rule.id}] {rule.text}" in description


def test_docs_list_every_rule_beyond_the_schemas() -> None:
    doc = DOC_PATH.read_text(encoding="utf-8")
    section = doc.split("## Rules beyond the schemas", 1)[1].split("\n## ", 1)[0]
    for rule in rules.RULES:
        assert f"`{rule.id}`" in section, rule.id
    assert {r.id for r in rules.RULES} == set(rules.RULES_BY_ID)
    assert all(r.text.count(". ") == 0 and r.text.endswith(".") for r in rules.RULES), "one sentence each"


# --------------------------------------------------------------------------------------------------
# What makes every validator agree
# --------------------------------------------------------------------------------------------------


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


@pytest.mark.parametrize("name", cc.NAMES)
def test_every_number_is_bounded_and_every_format_spelled_out(name: str) -> None:
    """Bounds within 2^53 - 1 so that no JSON reader rounds a value or a bound (and orjson never meets an
    integer past 64 bits a schema allowed); a pattern beside every ``format``, which is only an annotation."""
    schema = cc.schema_of(name)
    assert "event_type" in schema["required"]
    for node in _walk(schema):
        if node.get("type") in ("integer", "number") and "const" not in node:
            assert -ev.MAX_SAFE_INT <= node["minimum"] <= node["maximum"] <= ev.MAX_SAFE_INT, node
        if "format" in node:
            assert "pattern" in node, node
        if "pattern" in node:
            pattern = node["pattern"]
            assert pattern.startswith("^") and pattern.endswith("$"), pattern
            assert not re.search(r"\\[dDwWsSbB]|\(\?<", pattern), f"reads differently in ECMA-262: {pattern}"
            re.compile(pattern)


def test_the_reference_reads_dollar_as_ecma_does() -> None:
    assert cc.ecma_to_python(r"^[a$]\$x$") == r"^[a$]\$x\Z"
    assert not cc.reference_valid("SessionClosed", {**cc._fixed("SessionClosed", cc.complete("SessionClosed")[0]),
                                                     "lab_id": "lab\n"})
