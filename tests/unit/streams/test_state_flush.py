"""The overlay's flush: state reaches the table only after the broker acknowledged its changelog records."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.state import TableOverlay


class Table(dict):
    def __init__(self) -> None:
        super().__init__()
        self.data = self
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "cact-pipeline-cact-sessions-changelog")


class Producer:
    """Acknowledges only when the test says so; ``fail`` makes the broker refuse."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.acks: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, timestamp: Any, headers: Any) -> Any:
        self.sent.append((topic, key, value, partition))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        return fut


def record(partition: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(partition=partition))


def test_flush_waits_for_every_ack_before_the_table_changes() -> None:
    async def scenario() -> None:
        table, producer = Table(), Producer()
        table["S1"] = {"v": 0}
        overlay = TableOverlay(table)  # type: ignore[arg-type]
        overlay.event = record(2)
        overlay["S1"] = {"v": 1}
        overlay.event = record(3)
        overlay["S2"] = {"v": 2}
        flush = asyncio.ensure_future(overlay.flush(producer))
        await asyncio.sleep(0)
        assert [(k, p) for _, k, _, p in producer.sent] == [(b'"S1"', 2), (b'"S2"', 3)]
        assert orjson.loads(producer.sent[1][2]) == {"v": 2}
        producer.acks[0].set_result(None)
        await asyncio.sleep(0)
        assert not flush.done() and table == {"S1": {"v": 0}}, "nothing changes before the last ack"
        producer.acks[1].set_result(None)
        assert await flush == 2
        assert table == {"S1": b'{"v":1}', "S2": b'{"v":2}'}, "as the bytes the broker acknowledged"
        assert await overlay.flush(producer) == 0  # written once

    asyncio.run(scenario())


def test_a_refused_changelog_write_leaves_the_table_as_it_was() -> None:
    async def scenario() -> None:
        table, producer = Table(), Producer()
        overlay = TableOverlay(table)  # type: ignore[arg-type]
        overlay.event = record(0)
        overlay["S1"] = {"v": 1}
        flush = asyncio.ensure_future(overlay.flush(producer))
        await asyncio.sleep(0)
        producer.acks[0].set_exception(ConnectionError("broker gone"))
        with pytest.raises(ConnectionError):
            await flush
        assert table == {}

    asyncio.run(scenario())
