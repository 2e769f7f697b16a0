"""What an idle sink does not do any more: fetch with the short wait (sinks/runner.py ``adapt_fetch_wait``) and
wake every ``sink_batch_seconds`` to look at its stop event (``ResultsSink.next_fetch``). No broker, no sleeping:
an injected clock, a stand-in for aiokafka's Fetcher, a consumer whose fetch waits until told."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher

from schemas.fetch_wait import FetchWait, adapt_fetch_wait
from schemas.settings import Settings
from sinks.runner import IDLE_FETCH_SECONDS, ResultsSink
from sinks.store import ResultsStore

SETTINGS = Settings(fetch_max_wait_ms=50, fetch_idle_wait_ms=500, fetch_idle_after_seconds=2.0, sink_batch_seconds=0.5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StandInFetcher:
    """The three things adapt_fetch_wait touches of aiokafka's Fetcher; a fetch answers what ``answers`` says."""

    def __init__(self, clock: Clock, answers: list[bool]) -> None:
        self._fetch_max_wait_ms = 50
        self._fetcher_timeout = 0.2
        self.clock, self.answers = clock, answers
        self.sent: list[int] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        self.sent.append(self._fetch_max_wait_ms)
        self.clock.now += 1.5
        return self.answers.pop(0)


def test_the_sinks_fetches_wait_long_after_a_silence_and_short_again_on_the_first_result() -> None:
    clock = Clock()
    fetcher = StandInFetcher(clock, [True, False, False, False, True, False])
    adapt_fetch_wait(fetcher, FetchWait(SETTINGS.fetch_max_wait_ms, SETTINGS.fetch_idle_wait_ms,
                                        SETTINGS.fetch_idle_after_seconds, clock=clock))

    async def fetch_all() -> None:
        for _ in range(6):
            await fetcher._proc_fetch_request(None, 0, None)

    asyncio.run(fetch_all())
    # 1.5 s per fetch: the second empty one comes 3 s after the last results, so the third waits long
    assert fetcher.sent == [50, 50, 50, 500, 500, 50]
    assert fetcher._fetch_max_wait_ms == 50 and fetcher._fetcher_timeout == 0.2


def test_aiokafkas_fetcher_still_has_what_the_sink_adapts() -> None:
    """The private names adapt_fetch_wait relies on (aiokafka 0.14); a rename must fail here, not in production."""
    import inspect

    assert "self._proc_fetch_request(" in inspect.getsource(Fetcher._fetch_requests_routine)
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._fetcher_timeout" in inspect.getsource(Fetcher._get_actions_per_node)


class WaitingConsumer:
    """A consumer with nothing to fetch: each getmany waits its whole timeout, unless the test answers it."""

    def __init__(self) -> None:
        self.timeouts: list[int] = []
        self.pending: asyncio.Future[dict[TopicPartition, list[Any]]] | None = None
        self.cancelled = 0

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        self.timeouts.append(timeout_ms)
        self.pending = asyncio.get_running_loop().create_future()
        try:
            return await self.pending
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def commit(self) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def assignment(self) -> set[TopicPartition]:
        return set()


@pytest.fixture
def sink(tmp_path: Path) -> ResultsSink:
    store = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    store.create_schema()
    return ResultsSink(store, SETTINGS, stop=asyncio.Event())


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_an_idle_sink_waits_on_its_consumer_and_stops_at_once_when_told(sink: ResultsSink) -> None:
    consumer = WaitingConsumer()

    async def scenario() -> None:
        sink.stop = asyncio.Event()
        running = asyncio.ensure_future(sink.run(consumer))
        await settle()
        assert consumer.pending is not None
        consumer.pending.set_result({})  # the first fetch's timeout ran out with nothing
        await settle()
        sink.stop.set()  # SIGTERM while the second fetch waits
        await asyncio.wait_for(running, 1)

    asyncio.run(scenario())
    assert consumer.timeouts == [500, int(IDLE_FETCH_SECONDS * 1000)]  # after an empty fetch: the idle wait
    assert consumer.cancelled == 1  # the fetch in flight was given up, not waited out


def test_a_cancelled_sink_cancels_its_fetch(sink: ResultsSink) -> None:
    consumer = WaitingConsumer()

    async def scenario() -> None:
        sink.stop = asyncio.Event()
        running = asyncio.ensure_future(sink.run(consumer))
        await settle()
        running.cancel()  # the worker stopping its in-process sink
        with pytest.raises(asyncio.CancelledError):
            await running
        await settle()

    asyncio.run(scenario())
    assert consumer.cancelled == 1
