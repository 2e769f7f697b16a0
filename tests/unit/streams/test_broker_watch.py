"""The broker watch: a log that ends below what this worker processed is a loss, said once and remembered."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from streams.broker_watch import BrokerWatch
from streams.metrics import WorkerMetrics

LAB = "cact.lab.v1"


class Ends:
    def __init__(self, ends: dict[tuple[str, int], int] | None = None, fail: bool = False) -> None:
        self.ends, self.fail, self.calls = ends or {}, fail, 0

    async def __call__(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("broker down")
        return {tp: self.ends.get((tp.topic, tp.partition), 0) for tp in tps}


def test_marks_survive_a_restart_and_merge_with_another_worker(tmp_path: Path) -> None:
    path = tmp_path / "marks.json"
    one, two = BrokerWatch(path, Ends(), clock=lambda: 10.0), BrokerWatch(path, Ends(), clock=lambda: 11.0)
    one.processed(LAB, 0, 99)
    one.processed(LAB, 0, 41)  # an older record processed again after a restart does not lower the mark
    one.save()
    two.processed(LAB, 1, 7)
    two.processed(LAB, 0, 10)
    two.save()
    assert BrokerWatch(path, Ends()).marks == {(LAB, 0): 100, (LAB, 1): 8}
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_log_shorter_than_processed_is_a_loss(tmp_path: Path) -> None:
    ends = Ends({(LAB, 0): 100, (LAB, 1): 3})
    metrics = WorkerMetrics(CollectorRegistry())
    watch = BrokerWatch(tmp_path / "marks.json", ends, metrics=metrics)
    watch.processed(LAB, 0, 99)
    watch.processed(LAB, 1, 40)
    before = metrics.broker_records_missing.labels(topic=LAB)._value.get()
    losses = asyncio.run(watch.check())
    assert [(x.partition, x.processed_up_to, x.log_end) for x in losses] == [(1, 41, 3)]
    assert watch.lost and metrics.broker_log_lost._value.get() == 1
    assert metrics.broker_records_missing.labels(topic=LAB)._value.get() - before == 38
    assert "cact lab resend --since" in watch.message() and "--accept-broker-loss" in watch.message()
    asyncio.run(watch.check())  # said once: a second look does not count the loss again
    assert metrics.broker_records_missing.labels(topic=LAB)._value.get() - before == 38
    metrics.broker_log_lost.set(0)


def test_an_unreachable_broker_or_a_growing_log_is_no_loss(tmp_path: Path) -> None:
    watch = BrokerWatch(tmp_path / "marks.json", Ends(fail=True))
    watch.processed(LAB, 0, 5)
    assert asyncio.run(watch.check()) == [] and not watch.lost
    watch._end_offsets = Ends({(LAB, 0): 6})
    assert asyncio.run(watch.check()) == [] and not watch.lost


def test_accepting_a_loss_sets_the_marks_aside(tmp_path: Path) -> None:
    path = tmp_path / "marks.json"
    watch = BrokerWatch(path, Ends({}), clock=lambda: 1234.0)
    watch.processed(LAB, 0, 5)
    watch.save()
    aside = BrokerWatch(path, Ends({}), clock=lambda: 1234.0).accept()
    assert aside == tmp_path / "marks.json.lost-1234" and not path.exists()
    assert json.loads(aside.read_text())["marks"] == [[LAB, 0, 6]]
    fresh = BrokerWatch(path, Ends({}))
    assert asyncio.run(fresh.check()) == [] and not fresh.lost
