"""Crash-only: a batch is acknowledged only when it finished. Faust acknowledges a ``take_events`` batch in a
``finally`` also when the agent raises or is cancelled, so ``to_completion`` must leave the process (here: the
injected exit) before that ``finally`` can run, or let the batch finish first when the worker is stopping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams import commit as app

ACKED: list[Any] = []  # the batches acknowledged so far, as the test's miniature Faust sees them


class Exited(BaseException):
    """The injected os._exit: records what was acknowledged at that moment (a real exit ends everything there)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code, self.acked = code, list(ACKED)


@pytest.fixture(autouse=True)
def no_real_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    ACKED.clear()

    def exit_(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(app.os, "_exit", exit_)
    monkeypatch.setattr(app.logging, "shutdown", lambda: None)


def take_events(batches: list[Any], acked: list[Any], work: Any) -> Any:
    """Faust's take_events in miniature: acknowledges each batch in a finally, whatever happened."""
    async def agent() -> None:
        for batch in batches:
            try:
                await app.to_completion(work(batch))
            finally:
                acked.append(batch)
    return agent()


def test_a_failing_batch_ends_the_process_before_it_is_acknowledged() -> None:
    async def work(batch: Any) -> None:
        if batch == 2:
            raise KeyError("a bug")

    with pytest.raises(Exited) as exited:
        asyncio.run(take_events([1, 2, 3], ACKED, work))
    assert exited.value.code == app.EXIT_CRASH
    assert exited.value.acked == [1], "batch 2 failed: it and everything after it are read again on restart"


def test_a_stop_lets_the_batch_in_hand_finish_then_acknowledges_it() -> None:
    done: list[Any] = []
    in_hand, may_finish = asyncio.Event(), asyncio.Event()  # the batch's progress, told rather than timed

    async def work(batch: Any) -> None:
        in_hand.set()
        await may_finish.wait()
        done.append(batch)

    async def scenario() -> None:
        agent = asyncio.ensure_future(take_events([1, 2], ACKED, work))
        await in_hand.wait()
        agent.cancel()  # the worker is stopping while batch 1 is in hand
        may_finish.set()  # ... and batch 1 finishes after the stop
        with pytest.raises(asyncio.CancelledError):
            await agent

    asyncio.run(scenario())
    assert done == [1] and ACKED == [1]


def test_a_stop_while_the_batch_cannot_finish_exits_without_acknowledging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "STOP_GRACE_SECONDS", 0.05)

    in_hand = asyncio.Event()

    async def work(batch: Any) -> None:
        in_hand.set()
        await asyncio.Event().wait()  # the broker never acknowledges

    async def scenario() -> None:
        agent = asyncio.ensure_future(take_events([1], ACKED, work))
        await in_hand.wait()
        agent.cancel()
        await agent

    with pytest.raises(Exited) as exited:
        asyncio.run(scenario())
    assert exited.value.acked == []
