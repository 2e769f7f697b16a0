"""The collector settings of the long-running processes (cact/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cact.gc_tuning import THRESHOLDS, HeapTrimmer, heap_trimmer, settle_heap


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


class Blocks:
    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self) -> int:
        return self.count


def test_a_trim_walks_the_heap_only_when_the_heap_moved_since_the_last_one() -> None:
    calls: list[int] = []
    blocks = Blocks(100_000)
    trimmer = HeapTrimmer(calls.append, blocks, min_change=1_000)
    assert trimmer() and calls == [0]  # the first call trims: start-up freed what it built
    assert not trimmer()  # idle: nothing allocated or freed
    blocks.count += 999
    assert not trimmer()
    blocks.count -= 2_000  # a burst was freed: worth returning
    assert trimmer() and calls == [0, 0]
    blocks.count += 5_000  # a burst is being built
    assert trimmer() and trimmer.trims == 3


def test_the_c_librarys_trim_returns_freed_memory_here() -> None:
    trimmer = heap_trimmer()
    assert trimmer is not None  # glibc: this machine and the deploy image
    freed = [bytearray(4096) for _ in range(20_000)]
    del freed
    assert trimmer() is True


def test_no_trimmer_where_the_c_library_has_no_malloc_trim() -> None:
    class Musl:  # a C library without the glibc extension
        pass

    def no_library() -> None:
        raise OSError("libc.so.6: cannot open shared object file")

    assert heap_trimmer(load=Musl) is None
    assert heap_trimmer(load=no_library) is None
