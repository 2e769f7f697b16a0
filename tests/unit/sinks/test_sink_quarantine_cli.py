"""`cact sink quarantine`: what the results store refused, for the operator who has to decide what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cact.cli import app
from schemas import topics
from schemas.settings import get_settings
from sinks.quarantine import Record
from sinks.store import ResultsStore

NIP = "199001012015031001"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResultsStore]:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    monkeypatch.setenv("CACT_DATABASE_URL", url)
    get_settings.cache_clear()
    s = ResultsStore(url)
    s.create_schema()
    yield s
    s.dispose()
    get_settings.cache_clear()


def quarantine_two(store: ResultsStore, store_cases: Any) -> None:
    a = store_cases.scored(NIP)
    clash = store_cases.scored("198505122010012002").model_copy(update={"event_id": a.event_id})
    store.write_records([
        Record(topics.RESULTS.name, 0, 10, a.to_bytes(), a),
        Record(topics.RESULTS.name, 0, 11, clash.to_bytes(), clash),
        Record(topics.ATTENDANCE.name, 3, 7, b"[/] not json", None, "undecodable output (bad_json): [/]"),
    ])


def test_an_empty_quarantine_says_so(store: ResultsStore) -> None:
    result = CliRunner().invoke(app, ["sink", "quarantine"])
    assert result.exit_code == 0, result.output
    assert "0 record(s)" in result.output and "nothing in quarantine" in result.output


def test_the_table_lists_source_type_and_reason_without_payloads(store: ResultsStore, store_cases: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    quarantine_two(store, store_cases)
    monkeypatch.setenv("COLUMNS", "240")  # rich's width: one line per row, so the assertions read whole cells
    result = CliRunner().invoke(app, ["sink", "quarantine"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2 record(s)" in out
    assert f"{topics.RESULTS.name}[0]@11" in out and "ParticipantScored" in out and "UNIQUE constraint" in out
    assert f"{topics.ATTENDANCE.name}[3]@7" in out and "(bad_json): [/]" in out  # markup in a reason is text
    assert NIP not in out and "198505122010012002" not in out


def test_json_lines_with_the_payload_only_when_asked(store: ResultsStore, store_cases: Any) -> None:
    quarantine_two(store, store_cases)
    plain = [json.loads(line) for line in CliRunner().invoke(app, ["sink", "quarantine", "--json"]).stdout.splitlines()]
    assert [(r["source_topic"], r["source_offset"], r["event_type"]) for r in plain] == [
        (topics.ATTENDANCE.name, 7, "unknown"), (topics.RESULTS.name, 11, "ParticipantScored")]
    assert all("event_json" not in r for r in plain)
    full = CliRunner().invoke(app, ["sink", "quarantine", "--json", "--payload", "--limit", "1"]).stdout.splitlines()
    assert len(full) == 1 and json.loads(full[0])["event_json"] == "[/] not json"
