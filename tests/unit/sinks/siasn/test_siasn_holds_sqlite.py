"""Holds, releases and voids of SI ASN pushes on SQLite (the demo's store): the shared ``HoldCases``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sinks.store import ResultsStore
from support.hold_scenarios import HOLD_SCENARIOS, HoldCases


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    s = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    s.create_schema()
    return s


@pytest.mark.parametrize("scenario", HOLD_SCENARIOS)
def test_hold_scenario(store: ResultsStore, store_cases: Any, scenario: str) -> None:
    getattr(HoldCases(store_cases), scenario)(store)
