"""The collector settings of the long-running processes (cact/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cact.gc_tuning import THRESHOLDS, settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_start_up_objects_leave_the_collectors_sight_and_collections_come_later(restored_collector: None) -> None:
    lives_for_the_process = [{"state": i} for i in range(1000)]
    settle_heap()
    assert gc.get_freeze_count() >= len(lives_for_the_process)
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # CPython's default, the one the profiles blamed


def test_garbage_cycles_are_still_collected(restored_collector: None) -> None:
    settle_heap()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    alive = {id(a)}
    del a, b
    gc.collect()
    assert not any(id(o) in alive for o in gc.get_objects() if isinstance(o, Node))
