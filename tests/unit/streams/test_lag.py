"""The worker's consumer lag (streams/lag.py): the arithmetic, the adapter over a consumer, and its metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sinks.metrics import AttendanceCollector
from streams.lag import Freshness, LagWatch, PartitionLag, lag_of, position_of
from streams.metrics import ConsumerLagCollector

LAB, SCHEDULE = "cact.lab.v1", "cact.schedule.v1"


class TP(NamedTuple):
    topic: str
    partition: int


@pytest.mark.parametrize(("processed", "committed", "start", "position"), [
    (41, 30, 0, 42),  # one past the last finished record
    (10, 30, 0, 30),  # the committed offset is further (another worker's progress before a rebalance)
    (None, 30, 0, 30),  # nothing finished in this process yet
    (None, None, 5, 5),  # a new group reads from the partition's first record
    (None, None, None, None),
])
def test_position(processed: int | None, committed: int | None, start: int | None, position: int | None) -> None:
    assert position_of(processed, committed, start) == position


def test_lag_is_end_minus_position_never_negative_and_unknown_without_both() -> None:
    assert lag_of(100, 42) == 58
    assert lag_of(40, 42) == 0  # a high watermark fetched before the last records were finished
    assert lag_of(None, 42) is None and lag_of(100, None) is None


def test_freshness_sums_partitions_and_says_up_to_when_the_data_is_complete() -> None:
    at = datetime(2026, 11, 3, 5, 0, tzinfo=UTC).timestamp()
    caught_up = Freshness(at, (PartitionLag(LAB, 0, 10, 10, at - 50), PartitionLag(LAB, 1, 0, 0)))
    assert (caught_up.behind, caught_up.as_of) == (0, at)
    behind = Freshness(at, (PartitionLag(LAB, 0, 110, 10, at - 50), PartitionLag(LAB, 1, 20, 5, at - 90),
                            PartitionLag(LAB, 2, 7, 7, at - 400)))
    # complete up to the oldest last-finished record of the partitions that are behind (not the idle one)
    assert (behind.behind, behind.as_of) == (115, at - 90)
    assert Freshness(at, (PartitionLag(LAB, 0, 110, 0, None),)).as_of is None  # nothing finished there yet
    assert Freshness(at, ()).behind is None  # before partitions are assigned: unknown, not 0
    assert Freshness(at, (PartitionLag(LAB, 0, None, 0),)).behind is None  # no fetch yet
    served = behind.to_json()
    assert served["messages_behind"] == 115 and served["partitions_assigned"] == 3
    assert served["as_of"] == datetime.fromtimestamp(at - 90, UTC).isoformat()
    assert [(p["partition"], p["lag"]) for p in served["partitions"]] == [(0, 100), (1, 15), (2, 0)]


@dataclass
class FakeConsumer:
    """Faust's consumer as the watch sees it: an assignment, fetched high watermarks, committed offsets."""

    tps: list[TP]
    ends: dict[TP, int | None]
    firsts: dict[TP, int] = field(default_factory=dict)
    _committed_offset: dict[TP, int | None] = field(default_factory=dict)
    earliest_asked: list[list[TP]] = field(default_factory=list)

    def assignment(self) -> Iterable[TP]:
        return set(self.tps)

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.ends:
            raise AssertionError("Partition is not assigned")
        return self.ends[tp]

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        self.earliest_asked.append(sorted(partitions))
        return {tp: self.firsts.get(tp, 0) for tp in partitions}


def sample(watch: LagWatch, consumer: Any) -> Freshness:
    return asyncio.run(watch.sample(consumer))


def test_the_watch_reads_the_consumers_own_partitions_only() -> None:
    lab0, lab1, sched0, table = TP(LAB, 0), TP(LAB, 1), TP(SCHEDULE, 0), TP("cact-pipeline-cact-sessions-changelog", 0)
    consumer = FakeConsumer([lab0, lab1, sched0, table], {lab0: 500, lab1: 40, sched0: 12, table: 900},
                            firsts={lab1: 3}, _committed_offset={sched0: 12})
    watch = LagWatch([LAB, SCHEDULE], clock=lambda: 1000.0)
    assert watch.latest() is None
    watch.processed(LAB, 0, 199, 990.0)
    watch.processed(LAB, 0, 150, 900.0)  # an older record again (a redelivery): the position does not go back
    got = sample(watch, consumer)
    assert {(p.topic, p.partition): p.lag for p in got.partitions} == {(LAB, 0): 300, (LAB, 1): 37, (SCHEDULE, 0): 0}
    assert got.behind == 337 and got.as_of is None  # lab 1 is behind and nothing of it is finished yet
    assert consumer.earliest_asked == [[lab1]]  # asked once, for the partition with no position at all
    watch.processed(LAB, 1, 39, 995.0)
    watch.processed(LAB, 0, 499, 998.0)
    got = sample(watch, consumer)
    assert (got.behind, got.as_of) == (0, 1000.0) and watch.latest() is got
    assert consumer.earliest_asked == [[lab1]]


def test_before_assignment_and_after_a_rebalance() -> None:
    lab0, lab1 = TP(LAB, 0), TP(LAB, 1)
    watch = LagWatch([LAB], clock=lambda: 1000.0)
    assert sample(watch, FakeConsumer([], {})).behind is None
    assert sample(watch, FakeConsumer([lab0], {lab0: None})).behind is None  # assigned, not fetched yet
    watch.processed(LAB, 0, 99, 900.0)
    assert sample(watch, FakeConsumer([lab0], {lab0: 100})).behind == 0
    # lab 0 moves to another worker and comes back later, read again from its committed offset
    assert [p.partition for p in sample(watch, FakeConsumer([lab1], {lab1: 5})).partitions] == [1]
    back = sample(watch, FakeConsumer([lab0], {lab0: 100}, _committed_offset={lab0: 60}))
    assert back.behind == 40  # what this worker finished before the rebalance no longer counts


def test_a_partition_revoked_while_sampled_is_left_out() -> None:
    lab0, lab1 = TP(LAB, 0), TP(LAB, 1)
    got = sample(LagWatch([LAB]), FakeConsumer([lab0, lab1], {lab0: 10}, _committed_offset={lab0: 10}))
    assert [p.partition for p in got.partitions] == [0] and got.behind == 0


def scrape(*collectors: Any) -> str:
    registry = CollectorRegistry()
    for c in collectors:
        registry.register(c)
    return generate_latest(registry).decode()


def test_lag_metric_per_partition_and_no_series_while_unknown() -> None:
    sample_ = Freshness(1000.0, (PartitionLag(LAB, 0, 110, 10), PartitionLag(LAB, 1, None, 0)))
    text = scrape(ConsumerLagCollector(lambda: sample_))
    assert 'cact_consumer_lag_messages{partition="0",topic="cact.lab.v1"} 100.0' in text
    assert 'cact_consumer_lag_messages{partition="1"' not in text
    assert 'cact_consumer_partition_assigned{partition="1",topic="cact.lab.v1"} 1.0' in text  # owned, not read yet
    assert 'cact_consumer_partition_assigned{partition="0",topic="cact.lab.v1"} 1.0' in text
    empty = scrape(ConsumerLagCollector(lambda: None))
    assert "cact_consumer_lag_messages{" not in empty and "cact_consumer_partition_assigned{" not in empty


def test_rate_metrics_leave_out_dimensions_without_a_closed_window() -> None:
    row = {"scheduled": 10, "checked_in": 8, "no_show": 2, "rescheduled": 0, "in_closed_windows": 10}
    data = {"generated_at": "2026-11-03T05:00:00+00:00", "threshold": 0.15, "overall": {"no_show_rate": None},
            "by_agency": [{"agency_id": "bps", "no_show_rate": 0.2, **row},
                          {"agency_id": "lan", "no_show_rate": None, **row, "in_closed_windows": 0}],
            "by_lab": [], "by_activity": [],
            "sessions": [{"session_id": "S1", "lab_id": "L", "agency_id": "bps", "activity_id": "A",
                          "starts_at": "2026-11-03T01:00:00+00:00", "state": "window_closed", "no_show_rate": 0.2,
                          **row}], "results": {"counted": 5, "incomplete": 1, "not_recognised": 2}}
    text = scrape(AttendanceCollector(lambda: data))
    assert 'cact_agency_no_show_ratio{agency_id="bps"} 0.2' in text
    assert 'cact_agency_no_show_ratio{agency_id="lan"}' not in text  # not 0: absent
    assert not re.search(r"^cact_no_show_ratio ", text, re.M)
    assert 'cact_agency_closed_window_participants{agency_id="bps"} 10.0' in text
    assert "session_id" not in text  # no per-session series
    assert 'cact_results_current{standing="not_recognised"} 2.0' in text
