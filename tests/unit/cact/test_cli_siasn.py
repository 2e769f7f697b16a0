"""`cact siasn status|retry` against a store no worker has migrated yet: a clear message, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cact.cli import app
from schemas.settings import get_settings
from sinks.store import ResultsStore


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    monkeypatch.setenv("CACT_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.mark.parametrize("args", [["siasn", "status"], ["siasn", "retry", "--rejected"]])
def test_unmigrated_store_is_a_clear_error(database: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    said = " ".join(result.output.split())  # rich wraps the line at the terminal's width, wherever the path ends
    assert "has no tables yet" in said and "cact worker" in said


def test_status_of_a_migrated_store(database: str) -> None:
    ResultsStore(database).create_schema()
    result = CliRunner().invoke(app, ["siasn", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert '"pending": 0' in result.output and '"rejected": 0' in result.output
