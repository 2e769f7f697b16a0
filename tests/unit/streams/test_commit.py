"""The commit protocol (streams/commit.py) with fakes for the producer and the tables: outputs acknowledged, then
state acknowledged, then the bookkeeping, and the records acknowledged last; a failure anywhere before that
leaves everything after it undone and the process gone (the injected exit)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from schemas import events as ev
from streams import commit
from streams.commit import Committer, run_batch, send, to_completion
from streams.intake import Chunk

AT = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


class Exited(BaseException):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture(autouse=True)
def no_real_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(commit.os, "_exit", exit_)
    monkeypatch.setattr(commit.logging, "shutdown", lambda: None)


class Log(list[str]):
    """What happened, in order, across the fakes."""


class Producer:
    """Each send returns a future the broker resolves a little later (``refuse``: that topic's sends fail)."""

    def __init__(self, log: Log, refuse: str | None = None) -> None:
        self.log, self.refuse = log, refuse

    async def send(self, topic: str, key: Any, value: Any, partition: Any, timestamp: Any, headers: Any) -> Any:
        self.log.append(f"send {topic}")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def answer() -> None:
            if topic == self.refuse:
                fut.set_exception(ConnectionError(f"broker refused {topic}"))
            else:
                self.log.append(f"ack {topic}")
                fut.set_result(None)

        asyncio.get_running_loop().call_later(0.001, answer)
        return fut


class Overlay:
    """A table overlay whose flush is the changelog write of the protocol's step 2."""

    def __init__(self, name: str, log: Log, keys: int = 1, fail: bool = False) -> None:
        self.name, self.log, self.keys, self.fail = name, log, keys, fail

    async def flush(self, producer: Any) -> int:
        self.log.append(f"flush {self.name}")
        await asyncio.sleep(0.001)
        if self.fail:
            raise ConnectionError("changelog write refused")
        self.log.append(f"flushed {self.name}")
        return self.keys


def output(session_id: str = "S1") -> ev.Event:
    return ev.new_event(ev.CheckinWindowClosed, lab_id="cact-pipeline", occurred_at=AT,
                        payload={"session_id": session_id})


def chunk(log: Log, outputs: int = 2, *, flush_fails: bool = False) -> Chunk:
    return Chunk(SimpleNamespace(), Overlay("sessions", log, 2, flush_fails),  # type: ignore[arg-type]
                 Overlay("participants", log, 3), out=[output(f"S{i}") for i in range(outputs)])  # type: ignore[arg-type]


def committer(log: Log, producer: Producer) -> tuple[Committer, list[int]]:
    written: list[int] = []

    def acknowledged(c: Chunk, n: int) -> None:
        log.append("bookkeeping")
        written.append(n)

    return Committer(lambda: producer, acknowledged), written


def test_outputs_are_acknowledged_before_state_is_written_and_bookkeeping_comes_last() -> None:
    log = Log()
    c, written = committer(log, Producer(log))
    asyncio.run(c.commit(chunk(log, outputs=2)))
    topic = output().topic.name
    assert log[:4] == [f"send {topic}", f"send {topic}", f"ack {topic}", f"ack {topic}"]
    assert set(log[4:8]) == {"flush sessions", "flush participants", "flushed sessions", "flushed participants"}
    assert log[8:] == ["bookkeeping"] and written == [5]


def test_a_refused_output_means_no_state_write_and_no_bookkeeping() -> None:
    log = Log()
    topic = output().topic.name
    c, written = committer(log, Producer(log, refuse=topic))
    with pytest.raises(ConnectionError):
        asyncio.run(c.commit(chunk(log)))
    assert not any(step.startswith("flush") for step in log) and written == []


def test_a_refused_state_write_means_no_bookkeeping() -> None:
    log = Log()
    c, written = committer(log, Producer(log))
    with pytest.raises(ConnectionError):
        asyncio.run(c.commit(chunk(log, flush_fails=True)))
    assert "bookkeeping" not in log and written == []


def test_send_waits_for_every_acknowledgement_and_sends_nothing_for_nothing() -> None:
    log = Log()
    asyncio.run(send(Producer(log), []))
    assert log == []
    asyncio.run(send(Producer(log), [output("S1"), output("S2")]))
    assert [s.split()[0] for s in log] == ["send", "send", "ack", "ack"]


class Intake:
    """The intake's side of a batch: a chunk counts one event per record."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def new_chunk(self) -> Chunk:
        return Chunk(SimpleNamespace(), Overlay("s", self.log), Overlay("p", self.log))  # type: ignore[arg-type]

    def take(self, c: Chunk, record: Any) -> Chunk:
        c.records.append(record)
        c.events += 1
        return c


def test_a_batch_is_committed_every_chunk_events_and_once_at_its_end() -> None:
    committed: list[list[Any]] = []

    async def commit_(c: Chunk) -> None:
        committed.append(list(c.records))

    asyncio.run(run_batch(list(range(7)), Intake(Log()), chunk_events=3, commit=commit_))  # type: ignore[arg-type]
    assert committed == [[0, 1, 2], [3, 4, 5], [6]]


def test_records_are_acknowledged_only_after_the_whole_batch_committed() -> None:
    """Faust's take_events in miniature: the batch is acknowledged in a ``finally``; the protocol decides
    whether that ``finally`` ever runs."""
    log = Log()
    producer = Producer(log)

    def acknowledged(c: Chunk, n: int) -> None:
        log.append("bookkeeping")

    c = Committer(lambda: producer, acknowledged)

    async def agent(batches: list[list[int]]) -> None:
        for batch in batches:
            try:
                work = run_batch(batch, Intake(log), chunk_events=10, commit=c.commit)  # type: ignore[arg-type]
                await to_completion(work)
            finally:
                log.append(f"records acknowledged {batch}")

    asyncio.run(agent([[1, 2]]))
    assert log.index("bookkeeping") < log.index("records acknowledged [1, 2]")
    assert log.index("flushed s") < log.index("bookkeeping")


def test_a_failed_send_inside_a_batch_exits_before_its_records_are_acknowledged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    log = Log()
    at_exit: list[str] = []

    def exit_(code: int) -> None:  # a real exit ends everything here: keep what had happened by then
        at_exit.extend(log)
        raise Exited(code)

    monkeypatch.setattr(commit.os, "_exit", exit_)
    topic = output().topic.name
    producer = Producer(log, refuse=topic)

    class Outputs(Intake):
        def take(self, c: Chunk, record: Any) -> Chunk:
            c.out.append(output())
            return super().take(c, record)

    c = Committer(lambda: producer, lambda chunk, n: log.append("bookkeeping"))

    async def agent() -> None:
        try:
            await to_completion(run_batch([1], Outputs(log), chunk_events=10, commit=c.commit))  # type: ignore[arg-type]
        finally:
            log.append("records acknowledged")

    with pytest.raises(Exited) as exited:
        asyncio.run(agent())
    assert exited.value.code == commit.EXIT_CRASH
    assert "records acknowledged" not in at_exit and "bookkeeping" not in at_exit
    assert at_exit and not any(step.startswith("flush") for step in at_exit)


def test_a_halted_worker_exits_without_acknowledging_when_stopped() -> None:
    said: list[str] = []

    async def scenario() -> None:
        def message() -> str:
            said.append("lost")
            return "the broker lost records"

        halted = asyncio.ensure_future(commit.halt(message))
        await asyncio.sleep(0)  # halt says it, then waits
        halted.cancel()
        await halted

    with pytest.raises(Exited) as exited:
        asyncio.run(scenario())
    assert exited.value.code == commit.EXIT_CRASH and said == ["lost"]
