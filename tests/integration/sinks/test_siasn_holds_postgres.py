"""Holds, releases and voids of SI ASN pushes on PostgreSQL (production): the same ``HoldCases`` as SQLite.

Both ways rows reach PostgreSQL are run (executemany for small batches, COPY through staging for large ones),
because a replayed result must not reset an operator's decision on either path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sinks.store import ResultsStore
from support.database import reset
from support.hold_scenarios import HOLD_SCENARIOS, HoldCases

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str) -> Iterator[ResultsStore]:
    s = reset(ResultsStore(pg_url))
    yield s
    s.dispose()


@pytest.mark.parametrize("copy_min_rows", [10**9, 1], ids=["executemany", "copy"])
@pytest.mark.parametrize("scenario", HOLD_SCENARIOS)
def test_hold_scenario(store: ResultsStore, store_cases: Any, scenario: str, copy_min_rows: int,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sinks.store.COPY_MIN_ROWS", copy_min_rows)
    getattr(HoldCases(store_cases), scenario)(store)
