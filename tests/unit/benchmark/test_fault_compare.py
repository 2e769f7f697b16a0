"""The fault suite's verdict: the comparison must see every kind of wrong row, and only those.

A comparison that calls two different runs equal would make the whole fault suite pass vacuously, so each kind
of difference issue 12 saw (a lost result, a section scored from an autosave, a participant's agency taken
from the wrong event, an SI ASN record saved twice) is planted in a copy of one snapshot and must be reported;
the columns documented as legitimately different must not be.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.faults.compare import check_outbox, compare_snapshots, format_diffs
from bench.faults.reference import check_against_truth
from producers.simulator import SimConfig, build_day
from schemas.blueprint import BlueprintRegistry

NIP_A, NIP_B = "199001012015031001", "198505052010122002"


def result(nip: str, version: int = 1, status: str = "current", **extra: Any) -> dict[str, Any]:
    return {"nip": nip, "activity_id": "ACT-1", "result_version": version, "status": status, "jpm": 80.0,
            "created_at": "2026-12-01T08:00:00+00:00",
            "payload": {"competencies": [{"code": "M1"}], "potential": None}, **extra}


def push(nip: str, version: int = 1, status: str = "delivered", **extra: Any) -> dict[str, Any]:
    return {"nip": nip, "activity_id": "ACT-1", "result_version": version, "kind": "kompetensi", "status": status,
            "payload": {"levels": {"integritas": 3}, "tahun": 2026}, "attempts": 1,
            "created_at": "2026-12-01T08:00:00+00:00", "delivered_at": "2026-12-01T08:00:01+00:00", **extra}


def saved(nip: str) -> dict[str, Any]:
    return {"id": f"id-{nip}", "nipBaru": nip, "pnsId": f"p-{nip}", "tahun": 2026, "integritas": 3,
            "savedAt": "2026-12-01T08:00:01+00:00", "tglUpdate": "01-12-2026"}


@pytest.fixture
def reference() -> dict[str, list[dict[str, Any]]]:
    return {
        "results": [result(NIP_A), result(NIP_B)],
        "section_scores": [{"nip": n, "activity_id": "ACT-1", "result_version": 1, "section": "mansoskul",
                            "answered": 190, "completion": "submitted"} for n in (NIP_A, NIP_B)],
        "participants": [{"nip": NIP_A, "agency_id": "AG-1", "position_tier": "pelaksana",
                          "last_seen_at": "2026-11-03T03:00:00+00:00"}],
        "deadletters": [{"event_id": "e1", "reason": "bad_json", "detail": "truncated", "source_topic": "lab",
                         "source_partition": 0, "source_offset": 5, "occurred_at": "2026-12-01T08:00:00+00:00"}],
        "siasn_outbox": [push(NIP_A), push(NIP_B)],
        "siasn_kompetensi": [saved(NIP_A), saved(NIP_B)],
    }


def diffs_of(reference: dict[str, Any], observed: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {d.table: d.counts() for d in compare_snapshots(reference, observed) if d.differences}


def test_a_run_equal_but_for_wall_clock_columns_attempts_and_positions_is_equal(reference: dict[str, Any]) -> None:
    run = copy.deepcopy(reference)
    run["results"][0]["created_at"] = "2026-12-01T09:59:59+00:00"
    run["siasn_outbox"][1].update(attempts=7, last_error="503", delivered_at="2026-12-01T10:00:00+00:00")
    run["deadletters"][0].update(event_id="e2", source_partition=3, source_offset=99,
                                 occurred_at="2026-12-01T10:00:00+00:00")
    run["siasn_kompetensi"][0].update(id="another-uuid", savedAt="2026-12-02T00:00:00+00:00", tglUpdate="02-12-2026")
    run["results"].reverse()  # order of rows does not matter, keys do
    assert diffs_of(reference, run) == {}
    assert format_diffs(compare_snapshots(reference, run)) == ""


def test_a_lost_result_a_wrong_section_and_a_wrong_participant_row_are_each_reported(reference: dict[str, Any]) -> None:
    run = copy.deepcopy(reference)
    del run["results"][1]
    run["section_scores"][0].update(answered=0, completion="autosave")
    run["participants"][0]["agency_id"] = "AG-2"
    found = diffs_of(reference, run)
    assert found["results"]["lost"] == 1
    assert found["section_scores"]["wrong"] == 1
    assert found["participants"]["wrong"] == 1
    text = format_diffs(compare_snapshots(reference, run))
    assert "answered: 190 → 0" in text and "completion: 'submitted' → 'autosave'" in text
    assert NIP_A not in text and NIP_B not in text  # NIPs are masked (schemas.nip.mask_nip) in reports


def test_a_record_saved_twice_and_a_dead_letter_more_are_reported(reference: dict[str, Any]) -> None:
    run = copy.deepcopy(reference)
    run["siasn_kompetensi"].append({**saved(NIP_B), "id": "second-save"})
    run["deadletters"].append({**reference["deadletters"][0], "reason": "invalid_nip", "detail": "5 digits"})
    found = diffs_of(reference, run)
    assert found["siasn_kompetensi"]["twice"] == 1
    assert found["deadletters"]["unexpected"] == 1


def test_the_outbox_must_hold_one_delivered_push_per_result_and_si_asn_one_record_per_push(
        reference: dict[str, Any]) -> None:
    assert check_outbox(reference) == []
    pending = copy.deepcopy(reference)
    pending["siasn_outbox"][1]["status"] = "pending"
    assert any("push is pending" in p for p in check_outbox(pending))
    twice = copy.deepcopy(reference)
    twice["siasn_kompetensi"].append(saved(NIP_A))
    assert any("more than delivered" in p for p in check_outbox(twice))
    lost = copy.deepcopy(reference)
    del lost["siasn_kompetensi"][0]
    assert any("has no record" in p for p in check_outbox(lost))
    wrong = copy.deepcopy(reference)
    wrong["siasn_kompetensi"][0]["integritas"] = 1
    assert len(check_outbox(wrong)) == 2  # one record SI ASN should not have, one push it has no record of


def test_results_that_must_not_count_must_not_reach_si_asn(reference: dict[str, Any]) -> None:
    held = copy.deepcopy(reference)  # NIP_B's sheet was blank: its push waits for an operator
    held["results"][1]["payload"]["standing"] = "incomplete"
    held["siasn_outbox"][1]["status"] = "held"
    del held["siasn_kompetensi"][1]
    assert check_outbox(held) == []
    sent = copy.deepcopy(held)
    sent["siasn_outbox"][1]["status"] = "delivered"
    sent["siasn_kompetensi"].append(saved(NIP_B))
    assert any("incomplete result" in p and "push is delivered" in p for p in check_outbox(sent))
    foreign = copy.deepcopy(reference)  # NIP_B sat at an institution whose accreditation had ended
    foreign["results"][1]["payload"]["standing"] = "not_recognised"
    assert any("not_recognised result" in p and "in the outbox" in p for p in check_outbox(foreign))
    del foreign["siasn_outbox"][1], foreign["siasn_kompetensi"][1]
    assert check_outbox(foreign) == []


def test_the_ground_truth_check_sees_a_no_show_that_sat_and_a_result_from_an_autosave() -> None:
    day = build_day(SimConfig(participants=60, seats=30, seed=4, malformed=2), BlueprintRegistry.from_dir())
    sat = [t for t in day.truth.values() if t.attended_anywhere]
    snapshot: dict[str, list[dict[str, Any]]] = {
        "results": [{"nip": t.nip, "status": "current", "result_version": 1} for t in sat],
        "section_scores": [{"nip": t.nip, "result_version": 1, "section": str(s), "completion": t.completion[s],
                            "answered": sum(v is not None for v in sheet.values())}
                           for t in sat for s, sheet in t.sheets.items()],
        "attendance": [{"nip": t.nip, "status": "checked_in" if t.attended else "no_show"} for t in day.truth.values()],
        "deadletters": [{}, {}],
    }
    assert check_against_truth(day, snapshot) == []
    broken = copy.deepcopy(snapshot)
    broken["section_scores"][0].update(answered=3, completion="autosave")
    broken["attendance"] = [{**a, "status": "no_show"} if a["nip"] == sat[1].nip else a for a in broken["attendance"]]
    del broken["results"][2]
    problems = check_against_truth(day, broken)
    assert len(problems) == 3, problems
    assert any("autosave" in p for p in problems) and any("not checked in" in p for p in problems)
    assert any("no current result" in p for p in problems)


def test_broker_loss_compares_dead_letters_whatever_order_the_labs_resent_in() -> None:
    from bench.faults.broker_loss import _reasons

    before = [{"reason": "unknown_item", "detail": "item 'X-1' is not in any loaded blueprint"}]
    after = [{"reason": "unknown_item",
              "detail": "held until the schedule arrived: item 'X-1' is not in any loaded blueprint"}]
    assert _reasons(after) == _reasons(before)
    assert _reasons([{"reason": "unknown_option", "detail": before[0]["detail"]}]) != _reasons(before)
