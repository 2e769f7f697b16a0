"""Which offset the worker may commit: only the end of an unbroken run of acknowledged offsets that starts at
the last commit. Faust also let an offset "gap" and a dropped record at the head of the run pass (issue 12)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from streams import faust_fixes

TP0 = TP("cact.lab.v1", 0)


class Exited(BaseException):
    pass


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Any:
    faust_fixes.install(fetch_max_wait_ms=50)
    monkeypatch.setattr(faust_fixes.os, "_exit", lambda code: (_ for _ in ()).throw(Exited(code)))
    monkeypatch.setattr(faust_fixes.logging, "shutdown", lambda: None)
    return SimpleNamespace(_acked=defaultdict(list), _acked_index=defaultdict(set), _committed_offset={TP0: None},
                           _gap=defaultdict(list))


def ack(c: Any, *offsets: int) -> None:
    for o in offsets:
        c._acked[TP0].append(o)
        c._acked_index[TP0].add(o)


def test_an_unbroken_run_from_the_last_commit_is_committed(consumer: Any) -> None:
    consumer._committed_offset[TP0] = 10
    ack(consumer, 12, 10, 11, 14)
    assert Consumer._new_offset(consumer, TP0) == 13  # 14 waits for 13
    assert consumer._acked[TP0] == [14]


def test_records_acknowledged_again_after_a_seek_back_are_dropped_not_committed(consumer: Any) -> None:
    consumer._committed_offset[TP0] = 10
    ack(consumer, 7, 8, 10)
    assert Consumer._new_offset(consumer, TP0) == 11
    assert consumer._acked[TP0] == [] and consumer._acked_index[TP0] == set()


@pytest.mark.parametrize("committed", [0, 10])
def test_a_record_dropped_at_the_head_of_the_run_stops_the_worker(consumer: Any, committed: int) -> None:
    """Faust checked ``min(acked) - committed > 1`` and only for a truthy committed offset: one record lost."""
    consumer._committed_offset[TP0] = committed
    ack(consumer, committed + 1, committed + 2)
    with pytest.raises(Exited):
        Consumer._new_offset(consumer, TP0)


def test_an_offset_jump_is_never_committed_past(consumer: Any) -> None:
    import asyncio

    consumer._committed_offset[TP0] = 0
    asyncio.run(Consumer._add_gap(consumer, TP0, 3, 9))
    ack(consumer, 0, 1, 2, 10, 11)
    assert Consumer._new_offset(consumer, TP0) == 3
    assert consumer._acked[TP0] == [10, 11]
