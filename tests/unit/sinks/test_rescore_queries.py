"""The store reads of `cact rescore` on SQLite, fed through the sink's own write path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.topics import CONTROL
from sinks.rescore_queries import HeldResult, Refusal, RescoreQueries
from sinks.store import ResultsStore

A, B = "ACT-202611-kemenpora", "ACT-202611-pemkot-samarinda"
HOME, HOST = "S-KEMENPORA-1", "S-SAMARINDA-1"
N1, N2, N3, N4 = (f"1990010120150310{n:02d}" for n in range(1, 5))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultsStore]:
    s = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    s.create_schema()
    yield s
    s.dispose()


def test_an_activitys_results_and_checked_in_participants_wherever_they_sat(store: ResultsStore,
                                                                            store_cases: Any) -> None:
    c = store_cases
    t = c.scored(N1).occurred_at
    store.write_batch([
        c.scored(N1, activity=A, session=HOME), c.scored(N1, 2, activity=A, session=HOME, blueprint_version="2026.2"),
        c.scored(N2, activity=A, session=HOST),  # a kemenpora susulan sat in samarinda's session
        c.scored(N3, activity=B, session=HOST),
        c.attendance(N2, "checked_in", t, session=HOST, activity=A),
        c.attendance(N4, "checked_in", t, session=HOST, activity=A),
        c.attendance(N3, "checked_in", t, session=HOST, activity=B),
        c.attendance(N1, "no_show", t + timedelta(minutes=40), session=HOME, activity=A),
        c.deadletter(5, partition=2, topic=CONTROL.name, reason="unknown_session"),
        c.deadletter(5, partition=1, topic=CONTROL.name), c.deadletter(6, partition=2, topic="cact.lab.v1"),
    ])
    q = RescoreQueries(store.engine)
    assert sorted(q.results_of(A), key=lambda h: h.nip) == [  # the current version only
        HeldResult(N1, A, HOME, 2, "cact-full", "2026.2"), HeldResult(N2, A, HOST, 1, "cact-full", "2026.1")]
    assert {(h.nip, h.activity_id) for h in q.results_sat_in([HOST])} == {(N2, A), (N3, B)}
    assert q.results_sat_in([]) == []
    assert q.checked_in(A) == {(HOST, N2), (HOST, N4)}
    assert q.refusals(CONTROL.name, [(2, 5), (2, 6), (3, 5)]) == {
        (2, 5): Refusal("unknown_session", "rejected at offset 5")}
    assert q.refusals(CONTROL.name, []) == {}


def test_the_activity_a_session_was_scheduled_for(store: ResultsStore, store_cases: Any) -> None:
    t = store_cases.scored(N1).occurred_at
    store.write_batch([store_cases.session_summary(HOST, t, scheduled=30, no_show=2)])
    assert RescoreQueries(store.engine).activities_of([HOST, "S-UNKNOWN"]) == {HOST: "ACT-2026-11"}
