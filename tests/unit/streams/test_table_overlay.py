"""TableOverlay (streams/state.py) against a fake Faust table and a fake producer: what the processor reads is
a private copy, what it writes reaches the changelog partition of the event that wrote it, and the table's
memory changes only once the broker has acknowledged every changelog record of the batch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from streams.state import TableOverlay

CHANGELOG = "cact-pipeline-cact-participants-changelog"


class FakeTable:
    """What TableOverlay uses of a Faust table: ``get``, its memory ``data`` and its changelog topic."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(data or {})
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: CHANGELOG)

    def get(self, key: str) -> Any:
        return self.data.get(key)


class FakeProducer:
    """Faust's producer as the overlay calls it: ``send`` returns a future the broker resolves later; here the
    test resolves it (``ack``) or fails it (``refuse``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.pending: list[asyncio.Future[None]] = []
        self._sent_one = asyncio.Event()

    async def send(self, topic: str, key: bytes, value: bytes, partition: int, timestamp: Any,
                   headers: Any) -> asyncio.Future[None]:
        assert timestamp is None and headers is None
        self.sent.append((topic, key, value, partition))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        self._sent_one.set()
        return future

    async def until_sent(self, count: int) -> None:
        while len(self.sent) < count:
            self._sent_one.clear()
            await self._sent_one.wait()

    def ack(self, index: int) -> None:
        self.pending[index].set_result(None)

    def refuse(self, index: int) -> None:
        self.pending[index].set_exception(RuntimeError("KafkaTimeoutError: the broker did not acknowledge"))


def record(partition: int) -> Any:
    """A Faust event as the overlay reads it: the partition of its message."""
    return SimpleNamespace(message=SimpleNamespace(partition=partition))


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


# --------------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------------


def test_a_read_is_a_private_copy_kept_for_the_batch() -> None:
    table = FakeTable({"S1/A": {"nips": ["A"], "meta": {"lab_id": "kanreg-iv"}}})
    overlay = TableOverlay(table)  # type: ignore[arg-type]
    value = overlay["S1/A"]
    value["nips"].append("B")
    value["meta"]["lab_id"] = None
    assert table.data["S1/A"] == {"nips": ["A"], "meta": {"lab_id": "kanreg-iv"}}, "the table's memory is untouched"
    assert overlay.get("S1/A") is value, "the batch goes on with its own copy"


def test_a_record_kept_as_bytes_reads_as_a_private_copy_and_a_recovered_one_too() -> None:
    written = {"nips": ["A"], "meta": {"lab_id": "kanreg-iv"}}
    table = FakeTable({"S1": orjson.dumps(written), "S2": {"nips": ["B"]}})  # S2 as Faust's recovery decodes it
    overlay = TableOverlay(table)  # type: ignore[arg-type]
    assert overlay["S1"] == written and overlay["S2"] == {"nips": ["B"]}
    overlay["S1"]["nips"].append("C")
    overlay["S2"]["nips"].append("C")
    assert table.data == {"S1": orjson.dumps(written), "S2": {"nips": ["B"]}}, "the table's memory is untouched"
    assert overlay["S1"]["nips"] == ["A", "C"], "the batch goes on with its own copy"


def test_a_store_that_encodes_values_itself_is_given_the_records() -> None:
    async def scenario() -> None:
        table, producer = FakeTable(), FakeProducer()
        overlay = TableOverlay(table, keep_bytes=False)  # type: ignore[arg-type]
        overlay.event = record(0)
        overlay["S1"] = {"v": 1}
        flush = asyncio.ensure_future(overlay.flush(producer))
        await producer.until_sent(1)
        producer.ack(0)
        await flush
        assert table.data == {"S1": {"v": 1}} and producer.sent[0][2] == b'{"v":1}'

    run(scenario)


def test_a_missing_key_reads_as_missing() -> None:
    overlay = TableOverlay(FakeTable())  # type: ignore[arg-type]
    assert overlay.get("S9") is None and overlay.get("S9", {"x": 1}) == {"x": 1}
    assert "S9" not in overlay
    with pytest.raises(KeyError):
        overlay["S9"]
    assert len(overlay) == 0 and list(overlay) == []


def test_a_write_needs_the_event_being_processed_and_is_never_a_delete() -> None:
    overlay = TableOverlay(FakeTable())  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        overlay["S1"] = {"v": 1}
    overlay.event = record(0)
    overlay["S1"] = {"v": 1}
    assert overlay["S1"] == {"v": 1} and "S1" in overlay and list(overlay) == ["S1"] and len(overlay) == 1
    with pytest.raises(NotImplementedError):
        del overlay["S1"]


# --------------------------------------------------------------------------------------------------
# Flushing: the acknowledgement order
# --------------------------------------------------------------------------------------------------


def test_the_table_changes_only_after_every_send_was_acknowledged() -> None:
    async def scenario() -> None:
        table, producer = FakeTable({"S1": {"v": 0}}), FakeProducer()
        overlay = TableOverlay(table)  # type: ignore[arg-type]
        overlay.event = record(1)
        overlay["S1"] = {"v": 1}
        overlay["S2"] = {"v": 2}
        flush = asyncio.ensure_future(overlay.flush(producer))
        await producer.until_sent(2)
        assert table.data == {"S1": {"v": 0}}, "sent, not acknowledged: nothing changes"
        producer.ack(1)
        await asyncio.wait([flush], timeout=0)
        assert not flush.done() and table.data == {"S1": {"v": 0}}, "one acknowledgement is not enough"
        producer.ack(0)
        assert await flush == 2
        assert table.data == {"S1": b'{"v":1}', "S2": b'{"v":2}'}, "the acknowledged bytes themselves"

    run(scenario)


def test_each_record_is_the_json_of_its_key_and_value() -> None:
    async def scenario() -> None:
        table, producer = FakeTable(), FakeProducer()
        overlay = TableOverlay(table)  # type: ignore[arg-type]
        overlay.event = record(0)
        value = {"session_id": "S1", "nip": "199001012015031001", "sheets": {"mansoskul": {"answers": "AB-."}}}
        overlay["S1/199001012015031001"] = value
        flush = asyncio.ensure_future(overlay.flush(producer))
        await producer.until_sent(1)
        [(topic, key, raw, _partition)] = producer.sent
        assert topic == CHANGELOG and key == b'"S1/199001012015031001"'
        assert orjson.loads(raw) == value and raw == orjson.dumps(value), "key order kept: the same bytes"
        producer.ack(0)
        await flush
        assert table.data["S1/199001012015031001"] is raw, "the table's memory keeps the record as it was sent"

    run(scenario)


def test_a_refused_send_leaves_the_table_as_it_was() -> None:
    async def scenario() -> None:
        table, producer = FakeTable({"S1": {"v": 0}}), FakeProducer()
        overlay = TableOverlay(table)  # type: ignore[arg-type]
        overlay.event = record(0)
        overlay["S1"] = {"v": 1}
        overlay["S2"] = {"v": 2}
        flush = asyncio.ensure_future(overlay.flush(producer))
        await producer.until_sent(2)
        producer.ack(0)
        producer.refuse(1)
        with pytest.raises(RuntimeError, match="did not acknowledge"):
            await flush
        assert table.data == {"S1": {"v": 0}}, "not even the acknowledged key: the batch is read again"

    run(scenario)


def test_each_key_goes_to_the_partition_of_the_event_that_changed_it_once_per_flush() -> None:
    async def scenario() -> None:
        table, producer = FakeTable(), FakeProducer()
        overlay = TableOverlay(table)  # type: ignore[arg-type]
        overlay.event = record(2)
        overlay["S1"] = {"v": 1}
        overlay.event = record(5)
        overlay["S2"] = {"v": 1}
        overlay.event = record(7)
        overlay["S1"] = {"v": 2}  # written again by a later event: one record, with its value and partition
        flush = asyncio.ensure_future(overlay.flush(producer))
        await producer.until_sent(2)
        assert [(k, orjson.loads(v), p) for _, k, v, p in producer.sent] == [(b'"S1"', {"v": 2}, 7),
                                                                           (b'"S2"', {"v": 1}, 5)]
        producer.ack(0)
        producer.ack(1)
        assert await flush == 2
        assert await overlay.flush(producer) == 0 and len(producer.sent) == 2, "nothing left to write"

    run(scenario)


def test_a_read_after_the_flush_sees_the_acknowledged_value() -> None:
    async def scenario() -> None:
        table, producer = FakeTable(), FakeProducer()
        writer = TableOverlay(table)  # type: ignore[arg-type]
        writer.event = record(0)
        writer["S1"] = {"nips": ["A"]}
        flush = asyncio.ensure_future(writer.flush(producer))
        await producer.until_sent(1)
        producer.ack(0)
        await flush
        reader = TableOverlay(table)  # type: ignore[arg-type]  # the next batch's overlay
        assert reader["S1"] == {"nips": ["A"]}
        reader["S1"]["nips"].append("B")
        assert orjson.loads(table.data["S1"]) == {"nips": ["A"]}

    run(scenario)
