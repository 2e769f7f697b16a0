"""How far behind its input this worker is: the operator page's freshness line and ``cact_consumer_lag_messages``.

Per input partition the lag is ``end - position``:

- **end** is the high watermark of the partition as the worker's own consumer last saw it in a **fetch
  response** (aiokafka's ``highwater``). Not ListOffsets(latest): Tansu 0.6 answers that with the base offset of
  the partition's last record batch + 1, short by the rest of that batch, while its fetch responses carry the
  true end (measured, docs/operations.md "Freshness and consumer lag"); on Apache Kafka both are the high
  watermark. No fetch yet (the partition was just assigned, or is still paused for table recovery): unknown.
- **position** is the next offset whose effects are not yet acknowledged: one past the last record this worker
  finished (outputs and state acknowledged by the broker, streams/commit.py), or the group's
  committed offset when that is further (another worker's progress before a rebalance), or the partition's
  first offset when there is neither (a new group reads from the earliest record).

A worker sees only the partitions assigned to it: with several workers, each page and each ``/metrics`` says
how far behind *that worker* is, and the day's lag is the sum over workers (Prometheus: ``sum(...)``).

The arithmetic is pure (:func:`lag_of`, :func:`position_of`, :class:`Freshness`); :class:`LagWatch` is the thin
adapter over Faust's consumer, sampled by a timer of the worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol


def position_of(processed: int | None, committed: int | None, start: int | None) -> int | None:
    """Where the worker is in a partition: after its last finished record, the committed offset when further,
    the partition's start when it has neither; None when none of them is known."""
    known = [p for p in (processed + 1 if processed is not None else None, committed) if p is not None]
    if known:
        return max(known)
    return start


def lag_of(end: int | None, position: int | None) -> int | None:
    """Messages not yet processed; None when either end is unknown. Never negative: a high watermark read
    before the worker's last commit may be older than its position."""
    if end is None or position is None:
        return None
    return max(0, end - position)


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end: int | None
    position: int | None
    #: Kafka timestamp (seconds) of the newest record this worker finished in the partition.
    processed_at: float | None = None

    @property
    def lag(self) -> int | None:
        return lag_of(self.end, self.position)


@dataclass(frozen=True)
class Freshness:
    """One sample of the worker's lag over the input partitions assigned to it."""

    measured_at: float
    partitions: tuple[PartitionLag, ...]

    @property
    def behind(self) -> int | None:
        """Messages behind in total; None before partitions are assigned or while one's lag is unknown."""
        lags = [p.lag for p in self.partitions]
        if not lags or any(lag is None for lag in lags):
            return None
        return sum(lag for lag in lags if lag is not None)

    @property
    def as_of(self) -> float | None:
        """Up to when the data is complete: the sample's time when nothing is behind, else the send time of the
        oldest newest-finished record among the partitions that are behind (None if one has none yet)."""
        behind = self.behind
        if behind is None:
            return None
        if behind == 0:
            return self.measured_at
        times = [p.processed_at for p in self.partitions if p.lag]
        return None if any(t is None for t in times) else min(t for t in times if t is not None)

    def to_json(self) -> dict[str, Any]:
        def iso(at: float | None) -> str | None:
            return datetime.fromtimestamp(at, UTC).isoformat() if at is not None else None

        return {"measured_at": iso(self.measured_at), "as_of": iso(self.as_of), "messages_behind": self.behind,
                "partitions_assigned": len(self.partitions), "scope": "this worker's input partitions",
                "partitions": [{"topic": p.topic, "partition": p.partition, "end": p.end, "position": p.position,
                                "lag": p.lag} for p in sorted(self.partitions, key=lambda p: (p.topic, p.partition))]}


class ConsumerLike(Protocol):
    """What :class:`LagWatch` needs of Faust's consumer (``app.consumer``)."""

    def assignment(self) -> Iterable[Any]: ...
    def highwater(self, tp: Any) -> int | None: ...
    async def earliest_offsets(self, *partitions: Any) -> Mapping[Any, int]: ...


class LagWatch:
    """Remembers what the worker finished, and samples its consumer's view of the partitions' ends."""

    def __init__(self, topics: Iterable[str], *, clock: Callable[[], float] = time.time,
                 committed: Callable[[Any, Any], int | None] | None = None) -> None:
        self._topics = frozenset(topics)
        self._clock = clock
        self._committed = committed or _faust_committed
        self._processed: dict[tuple[str, int], tuple[int, float | None]] = {}
        self._starts: dict[tuple[str, int], int] = {}
        self._latest: Freshness | None = None

    def processed(self, topic: str, partition: int, offset: int, timestamp: float | None) -> None:
        """A record's outputs and state were acknowledged by the broker."""
        key = (topic, partition)
        if key in self._processed and self._processed[key][0] >= offset:
            return
        self._processed[key] = (offset, timestamp)

    def latest(self) -> Freshness | None:
        return self._latest

    async def sample(self, consumer: ConsumerLike | None) -> Freshness:
        """Read the ends the consumer last fetched; forget partitions no longer assigned (a rebalance)."""
        tps = [tp for tp in (consumer.assignment() if consumer is not None else ()) if tp.topic in self._topics]
        keys = {(tp.topic, tp.partition) for tp in tps}
        for table in (self._processed, self._starts):
            for gone in set(table) - keys:
                del table[gone]
        ends: dict[tuple[str, int], int | None] = {}
        for tp in tps:
            try:
                ends[(tp.topic, tp.partition)] = consumer.highwater(tp) if consumer is not None else None
            except AssertionError:  # aiokafka: revoked between assignment() and here
                continue

        def position(tp: Any) -> int | None:
            key = (tp.topic, tp.partition)
            done = self._processed.get(key)
            return position_of(done[0] if done else None, self._committed(consumer, tp), self._starts.get(key))

        missing = [tp for tp in tps if (tp.topic, tp.partition) in ends and position(tp) is None]
        if missing and consumer is not None:  # a new group, nothing finished yet: it starts at the first record
            for tp, first in (await consumer.earliest_offsets(*missing)).items():
                self._starts[(tp.topic, tp.partition)] = int(first)
        parts = []
        for tp in tps:
            key = (tp.topic, tp.partition)
            if key in ends:
                done = self._processed.get(key)
                parts.append(PartitionLag(tp.topic, tp.partition, ends[key], position(tp), done[1] if done else None))
        self._latest = Freshness(self._clock(), tuple(parts))
        return self._latest


def _faust_committed(consumer: Any, tp: Any) -> int | None:
    """The offset Faust last committed for the partition (or read as committed at assignment); None: never."""
    committed = getattr(consumer, "_committed_offset", None)
    value = committed.get(tp) if committed is not None else None
    return int(value) if value is not None else None
