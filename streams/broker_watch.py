"""Noticing that the broker lost what this worker already processed, so the loss is loud, never lag 0.

The embedded broker keeps everything in memory: a restart comes back with empty topics and no committed
offsets, and every client reconnects as if nothing happened (a consumer resets to the new, empty log; the
lag reads 0). On Apache Kafka the same happens when topics are deleted and recreated. Nothing in the broker
remembers what was there, so the worker does: per input partition, the offset after the last record it
processed and acknowledged, kept in a small file in its data folder (``CACT_DATA_DIR``). When a partition's
true end is below that mark, records this worker processed are gone from the log: state recovered from the
changelogs is gone with them, and the labs must resend (``cact lab resend --since``). The worker then stops
processing (it acknowledges nothing more) and says so in ``cact_broker_log_lost``, its log and the
``CactBrokerLogLost`` alert, until an operator restarts it with ``cact worker --accept-broker-loss``
(docs/operations.md, "Broker lost its data").
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka.structs import TopicPartition

from schemas.settings import Settings
from streams.metrics import WorkerMetrics

log = logging.getLogger("cact.worker")

EndOffsets = Callable[[Sequence[TopicPartition]], Awaitable[Mapping[TopicPartition, int]]]


@dataclass(frozen=True)
class Loss:
    topic: str
    partition: int
    processed_up_to: int
    log_end: int


def marks_path(settings: Settings) -> Path:
    """Where a worker keeps its marks: its data folder, named for its app (workers sharing a folder merge)."""
    return settings.data_dir / f"{settings.app_id}-broker-marks.json"


class BrokerWatch:
    """The marks of one worker; ``metrics`` (the worker's) says a loss in ``cact_broker_log_lost``."""

    def __init__(self, path: Path, end_offsets: EndOffsets, clock: Callable[[], float] = time.time, *,
                 metrics: WorkerMetrics | None = None) -> None:
        self.path = path
        self._end_offsets = end_offsets
        self._clock = clock
        self._metrics = metrics
        self.marks: dict[tuple[str, int], int] = self._load()
        self._dirty = False
        self.losses: list[Loss] = []

    @property
    def lost(self) -> bool:
        return bool(self.losses)

    def _load(self) -> dict[tuple[str, int], int]:
        try:
            raw = json.loads(self.path.read_text())
            return {(str(t), int(p)): int(o) for t, p, o in raw["marks"]}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring the unreadable broker marks file %s", self.path)
            return {}

    def processed(self, topic: str, partition: int, offset: int) -> None:
        """Called for each record once what it caused is acknowledged."""
        key = (topic, partition)
        if offset + 1 > self.marks.get(key, 0):
            self.marks[key] = offset + 1
            self._dirty = True

    def save(self) -> None:
        """Atomically, merged with what another worker sharing the folder wrote (the highest mark wins)."""
        if not self._dirty:
            return
        merged = {**self._load()}
        for key, mark in self.marks.items():
            merged[key] = max(mark, merged.get(key, 0))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        marks = [[t, p, o] for (t, p), o in sorted(merged.items())]
        tmp.write_text(json.dumps({"saved_at": self._clock(), "marks": marks}))
        os.replace(tmp, self.path)
        self._dirty = False

    async def check(self) -> list[Loss]:
        """Compare the marks with the partitions' true ends; returns (and remembers) any loss found.

        An unreachable broker proves nothing: the check is skipped and tried again at the next tick."""
        if not self.marks or self.lost:
            return self.losses
        tps = [TopicPartition(t, p) for t, p in sorted(self.marks)]
        try:
            ends = await self._end_offsets(tps)
        except Exception as exc:
            log.debug("broker check skipped: %s", exc)
            return []
        losses = [Loss(tp.topic, tp.partition, self.marks[(tp.topic, tp.partition)], ends[tp])
                  for tp in tps if tp in ends and ends[tp] < self.marks[(tp.topic, tp.partition)]]
        if losses:
            self.losses = losses
            if (m := self._metrics) is not None:
                m.broker_log_lost.set(1)
                for loss in losses:
                    m.broker_records_missing.labels(topic=loss.topic).inc(loss.processed_up_to - loss.log_end)
            log.error(self.message())
        return losses

    def message(self) -> str:
        missing = sum(x.processed_up_to - x.log_end for x in self.losses)
        where = ", ".join(f"{x.topic}[{x.partition}] ends at {x.log_end}, processed to {x.processed_up_to}"
                          for x in self.losses[:4])
        return (f"the broker lost {missing} input records this worker had processed ({where}); processing has "
                "stopped: have every lab and the scheduler run `cact lab resend --since <start of the day>`, "
                "then restart the worker with `cact worker --accept-broker-loss` (docs/operations.md)")

    def accept(self) -> Path | None:
        """The operator's word that the loss is known and the labs resend: set the marks file aside."""
        if not self.path.exists():
            return None
        aside = self.path.with_name(f"{self.path.name}.lost-{int(self._clock())}")
        os.replace(self.path, aside)
        self.marks = {}
        return aside
