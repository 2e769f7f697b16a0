"""The decoder accepts exactly what the published JSON Schemas accept (tests/support/contract_corpus.py says how).

Lab vendors validate with their own libraries against ``schemas/json/`` and expect the pipeline to take what
passes; the pipeline must never take what fails. Every schema-valid instance the decoder refuses must break
a rule of schemas/rules.py (and be refused with that rule's reason); every schema-invalid one is refused.
The same corpus goes through ajv in test_contract_ajv.py.

Pure Python, but here rather than in tests/unit because its size is the point: tens of thousands of generated
instances, about a minute to draw and judge. The schema rules that need no corpus are unit-tested in
tests/unit/schemas/test_contract_rules.py.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from schemas import rules
from schemas.reasons import Reason
from support import contract_corpus as cc


def test_the_decoder_accepts_exactly_what_the_schemas_accept() -> None:
    found = cc.disagreements(cc.reference_verdicts())
    shown = "\n".join(map(str, found[:15]))
    assert not found, f"{len(found)} disagreements of {len(cc.corpus())} cases, e.g.:\n{shown}"


@pytest.mark.parametrize("name", cc.NAMES)
def test_each_type_has_cases_on_both_sides(name: str) -> None:
    """A corpus of only valid, or only invalid, instances could not show a disagreement either way."""
    tally: Counter[tuple[bool, bool]] = Counter()
    for case, valid, verdict in zip(cc.corpus(), cc.reference_verdicts(), cc.decoder_verdicts()):
        if case.name == name:
            tally[valid, verdict.accepted] += 1
    assert tally[True, True] >= 20, tally   # schema-valid, accepted
    assert tally[False, False] >= 500, tally  # schema-invalid, refused


# --------------------------------------------------------------------------------------------------
# The corpus holds what the issue found
# --------------------------------------------------------------------------------------------------

#: The time spellings the issue found on one side of the schema and the decoder, with the schema's verdict.
ISSUE_TIMES: dict[Any, bool] = {
    1762144260: False, "1762144260": False, "2026-11-03 12:31:00+08:00": False, "2026-11-03T12:31+08:00": False,
    "2026-11-03T15:51:00+08": False, "2026-11-03T12:31:00+0800": False, "2026-11-03T15:51:00,5+08:00": False,
    "2016-12-31T23:59:60Z": False, "2027-02-29T12:00:00+08:00": False, "1999-12-31T23:59:59Z": False,
    "2100-01-01T00:00:00Z": False, "2026-11-03T12:31:00+08:00\n": False, "2028-02-29T12:00:00+08:00": True,
    "2000-02-29T00:00:00Z": True,
}
ISSUE_UUIDS = {"no_dashes": False, "braces": False, "urn": False, "upper": True}
ISSUE_DATES = {"2026-02-29": False, "2028-02-29": True, "2026-11-03T00:00:00": False, "2026-11-03\n": False,
               20261103: False}


def verdicts_of(name: str, label: str) -> list[tuple[bool, bool]]:
    return [(valid, verdict.accepted) for case, valid, verdict
            in zip(cc.corpus(), cc.reference_verdicts(), cc.decoder_verdicts())
            if case.name == name and case.label == label]


def expect(name: str, label: str, valid: bool) -> None:
    got = verdicts_of(name, label)
    assert got, f"the corpus lacks {name} [{label}]"
    assert set(got) == {(valid, valid)}, f"{name} [{label}]: (schema, decoder) verdicts {set(got)}"


@pytest.mark.parametrize("name", cc.NAMES)
def test_the_corpus_holds_the_issues_envelope_cases(name: str) -> None:
    for value, valid in ISSUE_TIMES.items():
        expect(name, f"time={value!r}:occurred_at", valid)
    for form, valid in ISSUE_UUIDS.items():
        expect(name, f"uuid={form}:event_id", valid)
    for version in (True, "1", 2, 2**64):
        expect(name, f"schema_version={version!r}", False)
    expect(name, "schema_version=1.0", True)  # 1.0 is the integer 1 to JSON Schema, and to the decoder
    expect(name, "drop:(event).event_type", False)
    expect(name, "trailing_newline:lab_id", False)
    expect(name, "control='\\x00':lab_id", False)
    expect(name, "length=65:lab_id", False)


def test_the_corpus_holds_the_issues_payload_cases() -> None:
    expect("SessionScheduled", "numeric_string:payload.seats", False)
    expect("SessionScheduled", "as_bool:payload.seats", False)
    expect("SessionScheduled", "integral_float:payload.seats", True)
    for big in (2**63, 2**64, 10**30):
        expect("SessionScheduled", f"int={big}:payload.seats", False)
        expect("DeadLettered", f"int={big}:payload.source_offset", False)
    expect("DeadLettered", "int=9007199254740991:payload.source_offset", True)
    for path in ("payload.starts_at", "payload.ends_at"):
        for value in ("2026-11-03T12:31+08:00", "2026-11-03 12:31:00+08:00"):
            expect("SessionScheduled", f"time={value!r}:{path}", False)
    for value, valid in ISSUE_DATES.items():
        expect("ParticipantScored", f"date={value!r}:payload.assessed_on", valid)
    for form, valid in ISSUE_UUIDS.items():
        expect("ParticipantScored", f"uuid={form}:payload.result_id", valid)
        expect("ParticipantScored", f"uuid={form}:payload.provenance.0", valid)
    # Booleans and numbers of the output events the sink decodes: as strict as the inputs.
    for name, path in (("AttendanceChanged", "payload.late"), ("SessionSummary", "payload.final"),
                       ("DeadLettered", "payload.value_truncated")):
        expect(name, f"as_int:{path}", False)
        expect(name, f"as_string:{path}", False)
    expect("ParticipantScored", "numeric_string:payload.result_version", False)
    expect("ParticipantScored", "as_bool:payload.result_version", False)
    expect("SessionSummary", "type=\"x\":payload.no_show_rate", False)
    expect("SessionSummary", "type=true:payload.no_show_rate", False)
    expect("SessionSummary", "type=1:payload.no_show_rate", True)  # a JSON integer is a number
    expect("DeadLettered", "length=2001:payload.detail", False)
    for nip, valid in (("199002302015031001", False), ("199001012015131001", False), ("199001012015033001", False),
                       ("199902292020031001", False), ("200002292020031001", True), ("199001012015211001", True)):
        expect("ParticipantCheckedIn", f"nip={nip!r}:payload.nip", valid)


# --------------------------------------------------------------------------------------------------
# The rules beyond the schemas, and what makes every validator agree
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", [r for r in rules.RULES if r.broken_by], ids=lambda r: r.id)
def test_every_instance_level_rule_is_needed_and_enforced(rule: rules.Rule) -> None:
    """The corpus holds schema-valid instances that break the rule, and the decoder refuses them for it: a
    rule nothing breaks, or that the decoder does not enforce, does not belong in the registry."""
    refused = Counter()
    for case, valid, verdict in zip(cc.corpus(), cc.reference_verdicts(), cc.decoder_verdicts()):
        if valid and case.name in rule.event_types and rule.broken_by(case.instance):
            # An instance breaking two rules (a mutated NIP in a half-named susulan) is refused for either.
            also = {r for other in rules.broken_rules(case.name, case.instance) for r in other.reasons}
            why = verdict.reason if verdict.reason in also else f"unexplained {verdict.reason}"
            refused[verdict.accepted, why] += 1
    assert any(reason in rule.reasons for _, reason in refused), refused
    assert all(not accepted and not reason.startswith("unexplained") for accepted, reason in refused), refused


def test_a_trailing_line_break_is_refused_wherever_the_pattern_refuses_it() -> None:
    """Python's ``$`` would let it through; ECMA's and the decoder's do not. (Free text, such as a reason,
    may hold line breaks: those cases are valid, and accepted.)"""
    seen: Counter[tuple[bool, bool]] = Counter()
    for case, valid, verdict in zip(cc.corpus(), cc.reference_verdicts(), cc.decoder_verdicts()):
        if case.label.startswith("trailing_newline:"):
            seen[valid, verdict.accepted] += 1
    assert seen[False, False] >= 500 and seen[False, True] == 0 and seen[True, True] >= 1, seen


def test_the_batch_rule_is_judged_event_by_event() -> None:
    """A batch holding a bad or misplaced event is still accepted (its schema takes any object), and the
    comparison then judges each event inside against its own schema (contract_corpus.batch_member_disagreements)."""
    held = [(case, verdict) for case, verdict in zip(cc.corpus(), cc.decoder_verdicts())
            if case.name == "EventBatch" and case.label.startswith("holding ")]
    assert sum(verdict.accepted for _, verdict in held) > 200
    schedule_in_lab = next(c for c, _ in held if c.label == "holding SessionScheduled complete")
    assert rules.batch_member_misplaced(schedule_in_lab.instance, schedule_in_lab.instance["payload"]["events"][0],
                                        cc.topic_of("EventBatch"))
    assert [d for d in cc.disagreements(cc.reference_verdicts()) if "events[" in d.case.label] == []


def test_the_corpus_is_the_same_on_every_run() -> None:
    """Derandomized: what CI judges is what a developer judged (and what the ajv test writes out)."""
    assert cc.generated.__wrapped__("SessionClosed") == cc.generated("SessionClosed")
    assert json.dumps(cc.complete("ParticipantScored")[0]) == json.dumps(
        cc.complete.__wrapped__("ParticipantScored")[0])
    assert Reason.BAD_JSON in rules.RULES_BY_ID["utf8_json"].reasons
