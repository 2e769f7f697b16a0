"""The bench's result watcher: it must see every result the store commits, at the moment it appears, while
re-reading only the newest batch, so that its polls do not load the machine whose latency it measures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bench.watch import ResultWatcher, wait_for
from sinks.store import ResultsStore
from support.store_scenarios import StoreCases, nip

pytestmark = pytest.mark.postgres


def _until(condition: Callable[[], bool], what: str) -> None:
    wait_for(condition, 30, what, lambda: None)


def test_every_result_is_seen_and_a_poll_rereads_only_the_newest_batch(pg_database: str,
                                                                        store_cases: StoreCases) -> None:
    store = ResultsStore(pg_database)
    store.create_schema()
    first = [store_cases.scored(nip(i)) for i in range(300)]
    store.write_batch(first)
    watcher = ResultWatcher(pg_database, "ACT-2026-11", interval=0.005, overlap=0.0)
    watcher.start()
    try:
        _until(lambda: len(watcher.seen) == 300, "the first batch")
        store.write_batch([store_cases.scored(nip(i), activity="ACT-OTHER") for i in range(300, 320)])
        store.write_batch([store_cases.scored(nip(i)) for i in range(300, 305)])  # stamped after the first
        _until(lambda: len(watcher.seen) == 305, "the second batch")
        polls = len(watcher.reads)
        _until(lambda: len(watcher.reads) >= polls + 5, "five more polls")
    finally:
        watcher.stop()
    assert set(watcher.seen) == {nip(i) for i in range(305)}  # the other activity's results are not counted
    assert watcher.reads[polls + 1:] and set(watcher.reads[polls + 1:]) == {5}, watcher.reads[polls - 2:]
