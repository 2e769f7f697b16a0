"""The adaptive fetch wait (streams/kafka.py ``FetchWait``, ``adapt_fetch_wait``): short while records come, long
after a silence, short again on the first record; and that aiokafka's own fetch loop picks up the wait it is
given, on a real ``Fetcher`` whose broker round trip is replaced. No broker, no sleeping: an injected clock."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition

from schemas.fetch_wait import FetchWait, adapt_fetch_wait
from schemas.settings import Settings

TP = TopicPartition("cact.lab.v1", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_stays_short_while_records_come_and_within_the_silence_allowed() -> None:
    clock = Clock()
    wait = FetchWait(50, 500, 2.0, clock=clock)
    assert wait.after_fetch(False) == 50  # a consumer just started catches up with the short wait
    clock.now += 1.9
    assert wait.after_fetch(False) == 50
    assert wait.after_fetch(True) == 50
    clock.now += 1.9
    assert wait.after_fetch(False) == 50  # 1.9 s since the last record, not since the start


def test_after_the_silence_the_wait_is_long_and_the_first_record_makes_it_short_again() -> None:
    clock = Clock()
    wait = FetchWait(50, 500, 2.0, clock=clock)
    clock.now += 2.0
    assert wait.after_fetch(False) == 500
    clock.now += 60
    assert wait.after_fetch(False) == 500
    assert wait.after_fetch(True) == 50
    clock.now += 0.5
    assert wait.after_fetch(False) == 50


def test_an_idle_wait_below_the_short_one_never_shortens_it() -> None:
    clock = Clock()
    wait = FetchWait(200, 100, 1.0, clock=clock)
    clock.now += 5
    assert wait.after_fetch(False) == 200


def test_the_settings_give_the_waits_and_the_silence() -> None:
    wait = FetchWait.from_settings(Settings(fetch_max_wait_ms=40, fetch_idle_wait_ms=700, fetch_idle_after_seconds=3))
    assert (wait.short_ms, wait.idle_ms, wait.idle_after) == (40, 700, 3)


class Cluster:
    def leader_for_partition(self, tp: TopicPartition) -> int:
        return 0

    def broker_metadata(self, node_id: int) -> Any:
        return object()


class Client:
    """What a Fetcher touches of AIOKafkaClient before it sends: the loop, the metadata age, the leader."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._metadata_max_age_ms = 300_000
        self.cluster = Cluster()


def test_aiokafkas_fetch_loop_sends_each_fetch_with_the_wait_after_the_previous_one() -> None:
    """The real fetch routine: each FetchRequest carries the wait set after the fetch before it, and its
    safety poll (0.2 s while a fetch is in flight) is stretched while idle."""
    clock = Clock()
    # what each answer brings: records, then nothing (2.5 s pass per fetch, so the second silence is idle)
    answers = [True, False, False, False, True, False]
    sent: list[tuple[int, float]] = []

    async def scenario() -> None:
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({TP})
        subscriptions.seek(TP, 0)
        fetcher = Fetcher(Client(), subscriptions, fetch_max_wait_ms=1500)
        done = asyncio.Event()

        async def round_trip(assignment: Any, node_id: int, request: Any) -> bool:
            sent.append((request._max_wait_ms, fetcher._fetcher_timeout))
            clock.now += 2.5
            if len(sent) == len(answers):
                done.set()
                try:
                    await asyncio.Event().wait()  # the last fetch stays in flight until the fetcher closes
                except asyncio.CancelledError:  # as aiokafka's own: a closed fetcher's fetch brought nothing
                    return False
            return answers[len(sent) - 1]

        fetcher._proc_fetch_request = round_trip
        adapt_fetch_wait(fetcher, FetchWait(50, 500, 2.0, clock=clock))
        await asyncio.wait_for(done.wait(), 5)
        await fetcher.close()

    asyncio.run(scenario())
    # 1st: set by adapt (short); after records: short; 1st empty 2.5 s after them: idle; ...; records: short
    assert [ms for ms, _ in sent] == [50, 50, 500, 500, 500, 50]
    assert [poll for _, poll in sent] == [0.2, 0.2, 2.0, 2.0, 2.0, 0.2]


def test_an_idle_wait_grows_with_the_silence_and_never_delays_a_record_by_more_than_a_quarter_of_it() -> None:
    clock = Clock()
    wait = FetchWait(50, 5000, 2.0, clock=clock)
    waits = []
    for silence in (1.9, 2.0, 4.0, 8.0, 20.0, 600.0):
        clock.now = 1000.0 + silence
        waits.append(wait.after_fetch(False))
    assert waits == [50, 500, 1000, 2000, 5000, 5000]
    for silence, ms in zip((2.0, 4.0, 8.0, 20.0, 600.0), waits[1:], strict=True):
        assert ms <= silence * 1000 / 4
    assert wait.after_fetch(True) == 50  # the first record: short again at once
