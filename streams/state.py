"""A write-behind view over a Faust table, so state is written once per key per batch, after outputs.

Why: (1) per-message overhead dominates, so a batch of events touching one participant-section writes
its state once, not once per event; (2) the worker sends a batch's output events and waits for the broker to
acknowledge them *before* the new state reaches the changelog. A crash in between re-processes the batch on
restart from the old state and re-emits the same events (same deterministic ids), so nothing is lost.

(3) The changelog is written here, with awaited sends, not by Faust's ``table[key] = value``: Faust sends
changelog records fire-and-forget (``send_soon``) and its flush before an offset commit gives up after 0.1 s,
so a loaded worker could commit an input offset whose state change never reached the broker, and a kill -9
then lost it (issue 12). :meth:`TableOverlay.flush` returns only once the broker has acknowledged every
record, and only then does the table's in-memory value change; the caller acknowledges the input after that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from typing import Any

from faust.types import EventT, TableT

from streams.state_codec import encode, stored_record


class TableOverlay(MutableMapping[str, dict[str, Any]]):
    def __init__(self, table: TableT, *, keep_bytes: bool = True) -> None:
        """``keep_bytes``: the table's memory takes the changelog bytes (``state_codec.stored_record``); a store
        that encodes values itself (RocksDB, with the tables' JSON codec) must be given the records instead."""
        self._table = table
        self._keep_bytes = keep_bytes
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._dirty: dict[str, EventT] = {}
        self.event: EventT | None = None  # the event being processed; its partition owns the keys it writes

    def __getitem__(self, key: str) -> dict[str, Any]:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._cache:
            stored = self._table.get(key)
            # A private copy: the table's in-memory value must not change before the batch's outputs are acked.
            self._cache[key] = stored_record(stored) if stored is not None else None
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

    async def flush(self, producer: Any) -> int:
        """Write every changed key to the changelog, wait for the broker's acknowledgement of all of them,
        then to the table's memory, as those same bytes; returns how many keys.

        Each key goes to the changelog partition of the event that changed it (the input partition: tables
        are co-partitioned with the input topics, as Faust does it). The records are JSON
        (``streams/state_codec.py``), the codec the app gives Faust's recovery. ``producer`` is Faust's
        producer (``app.producer``)."""
        if not self._dirty:
            return 0
        topic = self._table.changelog_topic.get_topic_name()
        values = {key: encode(self._cache[key]) for key in self._dirty}
        pending = [await producer.send(topic, encode(key), values[key], event.message.partition, None, None)
                   for key, event in self._dirty.items()]
        await asyncio.gather(*pending)
        data = self._table.data
        for key, value in values.items():  # the acknowledged bytes themselves (state_codec.stored_record)
            data[key] = value if self._keep_bytes else self._cache[key]
        written = len(self._dirty)
        self._dirty.clear()
        return written
