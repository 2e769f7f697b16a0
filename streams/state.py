"""A write-behind view over a Faust table, so state is written once per key per batch, after outputs.

Why: (1) per-message overhead dominates, so a batch of events touching one participant-section writes
its state once, not once per event; (2) the worker sends a batch's output events and waits for the broker to
acknowledge them *before* the new state reaches the changelog. A crash in between re-processes the batch on
restart from the old state and re-emits the same events (same deterministic ids), so nothing is lost.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson
from faust.streams import _current_event  # Faust routes a table write to the partition of the current event
from faust.types import EventT, TableT


class TableOverlay(MutableMapping[str, dict[str, Any]]):
    def __init__(self, table: TableT) -> None:
        self._table = table
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._dirty: dict[str, EventT] = {}
        self.event: EventT | None = None  # the event being processed; its partition owns the keys it writes

    def __getitem__(self, key: str) -> dict[str, Any]:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self._cache:
            stored = self._table.get(key)
            # A private copy: the table's in-memory value must not change before the batch's outputs are acked.
            self._cache[key] = orjson.loads(orjson.dumps(stored)) if stored is not None else None
        value = self._cache[key]
        return default if value is None else value

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        assert self.event is not None, "state is written while processing an event"
        self._cache[key] = value
        self._dirty[key] = self.event

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("state is never deleted by the processor")

    def __iter__(self) -> Iterator[str]:
        return iter(k for k, v in self._cache.items() if v is not None)

    def __len__(self) -> int:
        return sum(1 for v in self._cache.values() if v is not None)

    def flush(self) -> int:
        """Write every changed key to the table (and so its changelog); returns how many."""
        for key, event in self._dirty.items():
            token = _current_event.set(weakref.ref(event))
            try:
                self._table[key] = self._cache[key]
            finally:
                _current_event.reset(token)
        written = len(self._dirty)
        self._dirty.clear()
        return written
