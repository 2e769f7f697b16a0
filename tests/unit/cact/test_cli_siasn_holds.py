"""`cact siasn hold|release|void|decisions` and the held/void counts of `cact siasn status`, on SQLite.

What an operator sees: one line per decision or refusal (NIPs masked: terminals get logged), the audit trail
as a table with masked NIPs unless ``--full-nip``, and the operator named by the OS unless given.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cact.cli import app
from schemas.nip import mask_nip
from schemas.settings import get_settings
from sinks.store import ResultsStore
from support.hold_scenarios import NIP_A, NIP_B, NIP_C, HoldCases

ACT = "ACT-2026-11"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_cases: Any) -> Iterator[ResultsStore]:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    monkeypatch.setenv("CACT_DATABASE_URL", url)
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-jakarta")
    get_settings.cache_clear()
    s = ResultsStore(url)
    s.create_schema()
    cases = HoldCases(store_cases)
    s.write_batch([cases.scored(NIP_A), cases.scored(NIP_B, "incomplete", detail="no answered items"),
                   cases.scored(NIP_C, "not_recognised", detail="organiser not accredited on 2026-11-03")])
    yield s
    s.dispose()
    get_settings.cache_clear()


def run(*args: str) -> Any:
    return CliRunner(env={"COLUMNS": "200"}).invoke(app, ["siasn", *args])  # an operator's terminal, not 80


def said(result: Any) -> str:
    return " ".join(result.output.split())  # rich wraps at the terminal's width


def test_release_and_void_are_audited_with_the_os_user(store: ResultsStore) -> None:
    ok = run("release", "--nip", NIP_B, "--activity", ACT, "--reason", "sheet checked with the lab")
    assert ok.exit_code == 0, ok.output
    assert f"release: 1 push(es) of {mask_nip(NIP_B)} in {ACT} version 1: held → pending" in said(ok)
    assert NIP_B not in ok.output
    ok = run("hold", "--nip", NIP_A, "--activity", ACT, "--reason", "disputed", "--operator", "budi")
    assert ok.exit_code == 0, ok.output
    listed = run("decisions", "--json")
    assert listed.exit_code == 0, listed.output
    trail = json.loads(listed.output)
    assert [(d["nip"], d["action"], d["operator"], d["reason"], d["previous_status"], d["new_status"])
            for d in trail] == [(mask_nip(NIP_B), "release", "ops-jakarta", "sheet checked with the lab", "held",
                                 "pending"), (mask_nip(NIP_A), "hold", "budi", "disputed", "pending", "held")]
    table = run("decisions", "--nip", NIP_B)
    assert table.exit_code == 0 and mask_nip(NIP_B) in table.output and NIP_B not in table.output
    assert "sheet checked with the lab" in said(table) and "release: held → pending" in said(table)
    assert "budi" not in table.output
    assert NIP_B in run("decisions", "--full-nip").output


def test_refusals_are_one_line_with_exit_1(store: ResultsStore) -> None:
    refused = run("release", "--nip", NIP_C, "--activity", ACT, "--reason", "please")
    assert refused.exit_code == 1
    assert "not_recognised (organiser not accredited on 2026-11-03)" in said(refused)
    assert "never sent to SI ASN" in said(refused) and NIP_C not in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) <= 2
    assert run("release", "--nip", NIP_A, "--activity", ACT, "--reason", "x").exit_code == 1
    unknown = run("void", "--nip", NIP_A, "--activity", "ACT-NOPE", "--reason", "x")
    assert unknown.exit_code == 1 and "no result" in said(unknown)
    assert json.loads(run("decisions", "--json").output) == []


def test_reason_is_required_and_an_unknown_os_user_must_say_who(store: ResultsStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("void", "--nip", NIP_B, "--activity", ACT).exit_code == 2  # usage: --reason missing
    blank = run("void", "--nip", NIP_B, "--activity", ACT, "--reason", "   ")
    assert blank.exit_code == 1 and "--reason must not be empty" in said(blank)

    def nobody() -> str:
        raise KeyError("uid 1234 not in passwd")

    monkeypatch.setattr(getpass, "getuser", nobody)
    who = run("void", "--nip", NIP_B, "--activity", ACT, "--reason", "left early")
    assert who.exit_code == 2 and "--operator NAME" in said(who)


def test_status_counts_held_void_and_standings(store: ResultsStore) -> None:
    run("void", "--nip", NIP_A, "--activity", ACT, "--reason", "duplicate sitting")
    status = json.loads(run("status", "--json").output)
    assert (status["pending"], status["held"], status["void"]) == (0, 1, 1)
    assert status["results_by_standing"] == {"counted": 1, "incomplete": 1, "not_recognised": 1}
    table = said(run("status"))
    assert "held" in table and "void" in table and "not recognised" in table
