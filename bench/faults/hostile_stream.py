"""Hostile records (helper module ``bench.faults.hostile``) sent beside a faulted day, each one's position kept.

They go out through a plain kafka-python producer, not the lab emitter: the point is input the project's own
client would refuse (oversize, odd keys, headers and timestamps), as a lab client written elsewhere sends it.
Each record's (topic, partition, offset) is recorded from the broker's acknowledgement, so the verdict can look
up the dead letter it must have caused: a record with no dead letter at its position *vanished*. A record the
broker itself refused (e.g. larger than it accepts) never entered the log and is counted apart.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from bench.faults.compare import Snapshot
from schemas.kafka_config import kafka_python_kwargs
from schemas.settings import Settings


@dataclass(frozen=True)
class Sent:
    kind: str
    expect: str
    reasons: frozenset[str]
    topic: str
    partition: int
    offset: int


@dataclass
class HostileStream:
    """Sends ``records`` spread over ``seconds`` in a thread; ``sent`` and ``refused`` once joined."""

    settings: Settings
    records: Iterable[Any]
    count: int
    seconds: float
    sent: list[Sent] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # kind → records the broker did not take
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hostile-stream", daemon=True)

    def _run(self) -> None:
        try:
            producer = KafkaProducer(acks="all", max_request_size=32 * 1024 * 1024, linger_ms=5,
                                     max_in_flight_requests_per_connection=1, **kafka_python_kwargs(self.settings))
        except BaseException as exc:
            self.error = exc
            return
        pending: list[tuple[Any, Any]] = []
        started = time.monotonic()
        try:
            for n, record in enumerate(self.records):
                wait = started + n * self.seconds / max(1, self.count) - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    future = producer.send(record.topic, value=record.value, key=record.key,
                                           headers=list(record.headers) or None, timestamp_ms=record.timestamp_ms)
                except Exception:  # refused by the client before it reached the broker
                    self.refused[record.kind] += 1
                    continue
                pending.append((record, future))
                if len(pending) >= 500:
                    self._settle(pending)
            producer.flush(120)
            self._settle(pending)
        except BaseException as exc:
            self.error = exc
        finally:
            producer.close(10)

    def _settle(self, pending: list[tuple[Any, Any]]) -> None:
        for record, future in pending:
            try:
                meta = future.get(timeout=120)
            except Exception:
                self.refused[record.kind] += 1
                continue
            self.sent.append(Sent(record.kind, record.expect, frozenset(record.reasons), meta.topic, meta.partition,
                                  meta.offset))
        pending.clear()

    def start(self) -> HostileStream:
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> HostileStream:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the hostile stream was still sending after {timeout} s")
        if self.error is not None:
            raise RuntimeError(f"sending hostile records failed: {self.error}") from self.error
        return self


def account(sent: Sequence[Sent], snapshot: Snapshot, nips: set[str], sessions: set[str]
            ) -> tuple[dict[str, Any], Snapshot]:
    """Every hostile record's fate from the run's dead letters, and the snapshot without what hostile records
    caused (what remains must equal the reference). Fates: dead-lettered with an expected reason, with another
    reason, accepted (valid-hostile records, or state-growth ones under the cap), or *vanished*.

    Accepted records are about people and sessions that are not in the day (the generator's day-safe kinds),
    so rows of NIPs outside ``nips`` or sessions outside ``sessions`` are theirs: set aside and counted."""
    at = {(d["source_topic"], d["source_partition"], d["source_offset"]): d for d in snapshot.get("deadletters", [])}
    fates: Counter[str] = Counter()
    vanished: Counter[str] = Counter()
    wrong_reason: Counter[str] = Counter()
    for s in sent:
        d = at.pop((s.topic, s.partition, s.offset), None)
        if d is None:
            if s.expect == "deadletter":
                vanished[s.kind] += 1
                fates["vanished"] += 1
            else:
                fates["accepted"] += 1
        elif s.reasons and d["reason"] not in s.reasons and not (s.expect != "deadletter" and
                                                                 d["reason"] == "state_limit"):
            wrong_reason[f"{s.kind}:{d['reason']}"] += 1
            fates["dead_lettered_other_reason"] += 1
        else:
            fates["dead_lettered"] += 1
    rest = {**snapshot, "deadletters": list(at.values())}
    aside: Counter[str] = Counter()
    for table, rows in snapshot.items():
        if table == "deadletters" or not rows or not ({"nip", "session_id", "nipBaru"} & set(rows[0])):
            continue
        kept = [r for r in rows if r.get("nip", r.get("nipBaru", next(iter(nips), None))) in nips
                and r.get("session_id", next(iter(sessions), None)) in sessions]
        aside[table] = len(rows) - len(kept)
        rest[table] = kept
    return {"sent": len(sent), "fates": dict(fates), "vanished_by_kind": dict(vanished),
            "other_reason": dict(wrong_reason), "rows_set_aside": {k: v for k, v in aside.items() if v}}, rest
