"""How the long-running processes (``cact worker``, ``cact sink``) set CPython's cycle collector.

Both allocate a few container objects per event (a dict per answer, a pydantic model per output) and free
almost all of them at once, so the default thresholds (a young collection every 700 allocations, a full one
whenever the long-lived heap grew by a quarter) spent their time re-walking objects that live for the whole
process: the modules, the schemas, and in the worker every table's state. Profiles of ``make bench``
(docs/benchmarks.md) showed it in the worker's decode and in the sink's output decode alike.
"""

from __future__ import annotations

import gc

#: Young collections every 50,000 allocations instead of 700; older generations 20 and 100 young passes apart.
THRESHOLDS = (50_000, 20, 100)


def settle_heap() -> None:
    """Called once start-up has built what lives for the whole process: that is moved out of the collector's
    sight (``gc.freeze``), and later collections come less often. Garbage cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
