"""How the long-running processes (``cact worker``, ``cact sink``) set CPython's cycle collector.

Both allocate a few container objects per event (a dict per answer, a pydantic model per output) and free
almost all of them at once, so the default thresholds (a young collection every 700 allocations, a full one
whenever the long-lived heap grew by a quarter) spent their time re-walking objects that live for the whole
process: the modules, the schemas, and in the worker every table's state. Profiles of ``make bench``
(docs/benchmarks.md) showed it in the worker's decode and in the sink's output decode alike.
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Callable
from typing import Any

#: How often the worker asks the allocator to give freed memory back (``heap_trimmer``).
TRIM_SECONDS = 5.0

#: Blocks allocated or freed since the last trim below which a trim is skipped: an idle worker does not walk
#: its heap every few seconds for nothing.
TRIM_MIN_CHANGE = 20_000

#: Young collections every 50,000 allocations instead of 700; older generations 20 and 100 young passes apart.
THRESHOLDS = (50_000, 20, 100)


def settle_heap() -> None:
    """Called once start-up has built what lives for the whole process: that is moved out of the collector's
    sight (``gc.freeze``), and later collections come less often. Garbage cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


class HeapTrimmer:
    """Hands memory that a burst freed back to the system, so the next burst does not start from the last one's peak.

    glibc keeps freed memory in its arenas (one per thread that allocated: Faust's consumer thread, the store's
    worker threads) and returns it only from the top of each; a day's waves of decoded sessions and outputs
    leave the worker's resident size at the high-water mark of every arena at once. ``malloc_trim(0)`` returns
    the free pages inside them too (docs/benchmarks.md: peak RSS 254 → 212 MB at 3,000 participants).

    ``blocks`` counts the interpreter's live blocks (injectable): a trim is only worth its heap walk when that
    count moved since the last one."""

    def __init__(self, trim: Callable[[int], Any], blocks: Callable[[], int] = sys.getallocatedblocks,
                 min_change: int = TRIM_MIN_CHANGE) -> None:
        self._trim, self._blocks, self.min_change = trim, blocks, min_change
        self._at_last_trim = -min_change  # the first call trims
        self.trims = 0

    def __call__(self) -> bool:
        now = self._blocks()
        if abs(now - self._at_last_trim) < self.min_change:
            return False
        self._trim(0)
        self._at_last_trim, self.trims = now, self.trims + 1
        return True


def _load_libc() -> Any:
    return ctypes.CDLL(None)  # the symbols the interpreter is linked with: its C library among them


def heap_trimmer(load: Callable[[], Any] = _load_libc, **kwargs: Any) -> HeapTrimmer | None:
    """A trimmer over the C library's ``malloc_trim``, or None where there is none (musl, macOS): nothing to do."""
    try:
        trim = load().malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return HeapTrimmer(trim, **kwargs)
