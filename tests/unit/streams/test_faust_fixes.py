"""What each correction of streams/faust_fixes.py changes in Faust, on Faust's own classes and without a broker:
the worker consumer's fetch wait, where table recovery stops, a seek that holds the flow, and that installing
twice patches once. (Which offsets may be committed: tests/unit/streams/test_strict_commits.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust
import pytest
from aiokafka.structs import TopicPartition
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from streams import faust_fixes, kafka

CHANGELOG = "cact-pipeline-cact-sessions-changelog"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def new_app() -> faust.App:
    """An app that never connects: its consumer and consumer thread are Faust's, built lazily."""
    return faust.App("cact-fixes-test", broker="kafka://127.0.0.1:9", env={})


def test_the_worker_consumer_fetches_with_the_configured_wait_not_fausts_1500_ms() -> None:
    async def scenario() -> int:
        faust_fixes.install(fetch_max_wait_ms=50)
        app = new_app()
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert run(scenario()) == 50


def test_installing_again_changes_the_wait_but_patches_once() -> None:
    faust_fixes.install(fetch_max_wait_ms=50)
    patched = (AIOKafkaConsumerThread._create_worker_consumer, AIOKafkaConsumerThread._highwaters,
               Consumer._new_offset, Consumer._add_gap, Consumer.perform_seek)
    faust_fixes.install(fetch_max_wait_ms=120)
    assert patched == (AIOKafkaConsumerThread._create_worker_consumer, AIOKafkaConsumerThread._highwaters,
                       Consumer._new_offset, Consumer._add_gap, Consumer.perform_seek)
    assert all(getattr(fn, faust_fixes._PATCHED, False) for fn in patched if fn is not Consumer._add_gap)

    async def wait() -> int:
        app = new_app()
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert run(wait()) == 120  # the latest asked for
    faust_fixes.install(fetch_max_wait_ms=50)


class ShortEnds:
    """What Tansu 0.6 answers to ListOffsets(latest): the base offset of the last batch + 1."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self.ends = ends

    async def end_offsets(self, partitions: Sequence[TP]) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in partitions}


def highwaters(monkeypatch: pytest.MonkeyPatch, reported: dict[TP, int], true: dict[tuple[str, int], int] | None,
               *, settings: Any = "the worker's settings") -> dict[TP, int]:
    faust_fixes.install(fetch_max_wait_ms=50)
    monkeypatch.setattr(faust_fixes, "_settings", settings)
    asked: list[Any] = []

    async def end_offsets(s: Any, tps: list[TopicPartition], *, strict: bool, timeout: float) -> Any:
        asked.append((s, strict))
        if true is None:
            raise AssertionError("no fetch expected")
        return {tp: true[(tp.topic, tp.partition)] for tp in tps if (tp.topic, tp.partition) in true}

    monkeypatch.setattr(kafka, "end_offsets", end_offsets)

    async def scenario() -> dict[TP, int]:
        thread = new_app().consumer._thread
        thread._consumer = ShortEnds(reported)  # type: ignore[assignment]
        return dict(await thread._highwaters(list(reported)))

    found = run(scenario())
    if true is not None:
        assert asked == [(settings, True)]  # strict: a slow broker must not make recovery stop short
    return found


def test_recovery_reads_a_changelog_to_its_true_end_not_the_short_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    tp0, tp1, tp2 = TP(CHANGELOG, 0), TP(CHANGELOG, 1), TP(CHANGELOG, 2)
    found = highwaters(monkeypatch, {tp0: 101, tp1: 7, tp2: 0}, {(CHANGELOG, 0): 450, (CHANGELOG, 1): 7})
    assert found == {tp0: 450, tp1: 7, tp2: 0}  # the higher of the two; a partition not fetched keeps its answer


def test_without_the_workers_settings_recovery_keeps_fausts_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    tp0 = TP(CHANGELOG, 0)
    assert highwaters(monkeypatch, {tp0: 101}, None, settings=None) == {tp0: 101}


def test_a_seek_to_the_committed_offsets_holds_the_flow_and_resumes_it() -> None:
    faust_fixes.install(fetch_max_wait_ms=50)

    async def scenario() -> tuple[list[bool], bool, dict[TP, int | None]]:
        consumer = new_app().consumer
        during: list[bool] = []

        async def seek_to_committed() -> dict[TP, int]:
            during.append(consumer.flow_active)
            await asyncio.sleep(0)  # the fetch loop runs here: with the flow stopped it drops what it holds
            return {TP("cact.lab.v1", 0): 17}

        consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
        await consumer.perform_seek()
        return during, consumer.flow_active, dict(consumer._read_offset)

    during, after, read = run(scenario())
    assert during == [False] and after is True
    assert read == {TP("cact.lab.v1", 0): 17}  # Faust's own bookkeeping of the seek is unchanged


def test_a_failed_seek_still_resumes_the_flow_and_a_stopped_flow_stays_stopped() -> None:
    faust_fixes.install(fetch_max_wait_ms=50)

    async def scenario() -> tuple[bool, bool]:
        consumer = new_app().consumer

        async def fails() -> dict[TP, int]:
            raise ConnectionError("coordinator moved")

        consumer.seek_to_committed = fails  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await consumer.perform_seek()
        resumed = consumer.flow_active

        async def ok() -> dict[TP, int]:
            return {}

        consumer.seek_to_committed = ok  # type: ignore[method-assign]
        consumer.stop_flow()  # stopped by a rebalance: the seek must not start it again
        await consumer.perform_seek()
        return resumed, consumer.flow_active

    assert run(scenario()) == (True, False)


def test_the_group_leader_assigns_with_the_sticky_assignor() -> None:
    """Faust's PartitionAssignor builds its per-group assignor from its module's name at assignment time: the
    leader of the group (whichever worker it is) must find the sticky one there."""
    from faust.assignor import partition_assignor

    from streams.sticky_assignor import StickyCopartitionedAssignor

    faust_fixes.install(fetch_max_wait_ms=50)
    assert partition_assignor.CopartitionedAssignor is StickyCopartitionedAssignor
