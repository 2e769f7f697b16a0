"""The broker watch's reader of true ends (streams/kafka.py ``WatchedEnds``): one consumer, no fetch where the log
has not moved, and still the true end, on a consumer that answers ListOffsets as Tansu does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka.structs import TopicPartition

from schemas.settings import Settings
from streams.kafka import WatchedEnds

TP0, TP1, TP2 = (TopicPartition("cact.lab.v1", p) for p in range(3))


class Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class Broker:
    """Per partition, its record batches as (base offset, count): ListOffsets says the last base + 1 (Tansu)."""

    def __init__(self) -> None:
        self.batches: dict[TopicPartition, list[tuple[int, int]]] = {TP0: [], TP1: [], TP2: []}
        self.down = False

    def append(self, tp: TopicPartition, count: int) -> None:
        self.batches[tp].append((self.true_end(tp), count))

    def true_end(self, tp: TopicPartition) -> int:
        return sum(count for _, count in self.batches[tp])

    def reported(self, tp: TopicPartition) -> int:
        return self.batches[tp][-1][0] + 1 if self.batches[tp] else 0


class Consumer:
    def __init__(self, broker: Broker, log: list[str]) -> None:
        self.broker, self.log = broker, log
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self.log.append("start")

    async def stop(self) -> None:
        self.log.append("stop")

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        if self.broker.down:
            raise ConnectionError("broker away")
        return {tp: self.broker.reported(tp) for tp in tps}

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def getmany(self, *tps: TopicPartition, timeout_ms: int = 0) -> dict[TopicPartition, list[Record]]:
        self.log.append("fetch " + ",".join(str(tp.partition) for tp in tps))
        out = {}
        for tp in tps:  # the whole batch holding the position, and what follows
            base = max(b for b, _ in self.broker.batches[tp] if b <= self.positions[tp])
            out[tp] = [Record(o) for o in range(base, self.broker.true_end(tp))]
        return out

    def highwater(self, tp: TopicPartition) -> int | None:
        return None  # as a fetch whose response was not kept: the records alone must say the end

    def unsubscribe(self) -> None:
        self.positions = {}


@pytest.fixture
def broker() -> Broker:
    b = Broker()
    b.append(TP0, 50)
    b.append(TP0, 50)
    b.append(TP1, 7)
    return b


def reader(broker: Broker, log: list[str]) -> WatchedEnds:
    return WatchedEnds(Settings(), consumer=lambda: Consumer(broker, log))  # type: ignore[arg-type, return-value]


def test_a_log_that_has_not_moved_is_not_fetched_again_and_its_true_end_is_still_given(broker: Broker) -> None:
    log: list[str] = []
    ends = reader(broker, log)

    async def day() -> list[dict[TopicPartition, int]]:
        return [await ends([TP0, TP1]) for _ in range(3)]

    first, second, third = asyncio.run(day())
    assert first == second == third == {TP0: 100, TP1: 7}  # not Tansu's short 51
    assert log == ["start", "fetch 0,1"] or log == ["start", "fetch 1,0"]  # one consumer, one fetch, three reads
    assert ends.fetched == 2


def test_an_empty_partition_is_answered_without_a_fetch_and_not_counted_as_fetched(broker: Broker) -> None:
    log: list[str] = []
    ends = reader(broker, log)

    async def day() -> list[dict[TopicPartition, int]]:
        return [await ends([TP0, TP1, TP2]) for _ in range(2)]

    assert asyncio.run(day()) == [{TP0: 100, TP1: 7, TP2: 0}] * 2
    assert sorted(log) == ["fetch 0,1", "start"] or sorted(log) == ["fetch 1,0", "start"]
    assert ends.fetched == 2


def test_a_partition_that_grew_or_lost_its_log_is_fetched_again(broker: Broker) -> None:
    log: list[str] = []
    ends = reader(broker, log)

    async def day() -> list[dict[TopicPartition, int]]:
        seen = [await ends([TP0, TP1])]
        broker.append(TP1, 3)  # a new batch: ListOffsets moves
        seen.append(await ends([TP0, TP1]))
        broker.batches[TP0] = [(0, 20)]  # the broker restarted empty and the labs resent less
        seen.append(await ends([TP0, TP1]))
        return seen

    assert asyncio.run(day()) == [{TP0: 100, TP1: 7}, {TP0: 100, TP1: 10}, {TP0: 20, TP1: 10}]
    assert log[1:] in (["fetch 0,1", "fetch 1", "fetch 0"], ["fetch 1,0", "fetch 1", "fetch 0"])
    assert log.count("start") == 1


def test_a_failed_read_drops_the_consumer_and_the_next_one_starts_afresh(broker: Broker) -> None:
    log: list[str] = []
    ends = reader(broker, log)

    async def day() -> dict[TopicPartition, int]:
        await ends([TP0])
        broker.down = True
        with pytest.raises(ConnectionError):
            await ends([TP0])
        broker.down = False
        again = await ends([TP0])
        await ends.close()
        return again

    assert asyncio.run(day()) == {TP0: 100}
    # what was confirmed before the failure is not trusted after it: the fresh consumer fetches again
    assert log == ["start", "fetch 0", "stop", "start", "fetch 0", "stop"]


def test_close_without_a_read_is_harmless() -> None:
    asyncio.run(WatchedEnds(Settings()).close())
