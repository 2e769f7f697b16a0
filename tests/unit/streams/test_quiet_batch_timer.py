"""Point 6 of streams/faust_fixes.py: the waits ``Stream.take_events`` makes, on a ``mode.Service`` (what a
Faust stream is) driven the way take_events drives it, ``wait_for_stopped(buffer_full, timeout=within)`` in a
loop, with its processors called per event. Faust's own take_events runs over it in every integration test of
the worker and in the soak."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mode import Service

from streams import faust_fixes


class StreamLike(Service):
    """The two things of a Faust stream the fix uses, and a count of the timed waits it asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.processors: list[Callable[[Any], Any]] = []
        self.timed_waits = 0
        original = self.wait_for_stopped

        async def counting(*waiting: Any, timeout: Any = None) -> bool:
            self.timed_waits += timeout is not None
            return bool(await original(*waiting, timeout=timeout))

        self.wait_for_stopped = counting  # type: ignore[method-assign]

    def add_processor(self, processor: Callable[[Any], Any]) -> None:
        self.processors.append(processor)

    def arrive(self, value: Any, buffer: list[Any]) -> None:
        for processor in self.processors:
            value = processor(value)
        buffer.append(value)


async def take_loop(stream: StreamLike, buffer: list[Any], batches: list[list[Any]], within: float) -> None:
    """take_events' loop: wait for a full buffer or ``within``, then hand over what is buffered."""
    buffer_full = asyncio.Event()
    while not stream.should_stop:
        await stream.wait_for_stopped(buffer_full, timeout=within)
        if buffer:
            batches.append(list(buffer))
            buffer.clear()


async def run(fixed: bool, idle_s: float) -> tuple[int, list[list[Any]], StreamLike]:
    stream = StreamLike()
    if fixed:
        faust_fixes.quiet_batch_timer(stream)
    buffer: list[Any] = []
    batches: list[list[Any]] = []
    task = asyncio.ensure_future(take_loop(stream, buffer, batches, within=0.01))
    await asyncio.sleep(idle_s)
    idle_timed = stream.timed_waits
    stream.arrive("first", buffer)
    stream.arrive("second", buffer)
    await asyncio.wait_for(_until(lambda: bool(batches)), 5)
    await stream.stop()
    await asyncio.wait_for(task, 5)
    return idle_timed, batches, stream


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def test_without_the_fix_an_idle_loop_wakes_every_interval() -> None:
    idle_timed, batches, _ = asyncio.run(run(fixed=False, idle_s=0.2))
    assert idle_timed >= 5
    assert batches == [["first", "second"]]


def test_with_the_fix_an_idle_loop_sets_no_timer_and_the_first_events_still_make_a_batch() -> None:
    idle_timed, batches, stream = asyncio.run(run(fixed=True, idle_s=0.2))
    assert idle_timed == 0
    assert batches == [["first", "second"]]
    assert stream.timed_waits >= 1  # the batch went out after one `within` wait, not on an idle wake-up


def test_a_stop_ends_an_idle_wait() -> None:
    async def scenario() -> bool:
        stream = StreamLike()
        faust_fixes.quiet_batch_timer(stream)
        task = asyncio.ensure_future(take_loop(stream, [], [], within=0.01))
        await asyncio.sleep(0.05)
        await stream.stop()
        await asyncio.wait_for(task, 5)
        return task.done()

    assert asyncio.run(scenario())


def test_events_that_arrive_while_a_batch_is_in_hand_go_out_next_without_waiting_for_another() -> None:
    async def scenario() -> list[list[Any]]:
        stream = StreamLike()
        faust_fixes.quiet_batch_timer(stream)
        buffer: list[Any] = []
        batches: list[list[Any]] = []
        buffer_full = asyncio.Event()

        async def loop() -> None:
            while not stream.should_stop:
                await stream.wait_for_stopped(buffer_full, timeout=0.01)
                if buffer:
                    batches.append(list(buffer))
                    buffer.clear()
                    if len(batches) == 1:
                        stream.arrive("during", buffer)  # came while the first batch was processed

        task = asyncio.ensure_future(loop())
        await asyncio.sleep(0.02)
        stream.arrive("first", buffer)
        await asyncio.wait_for(_until(lambda: len(batches) == 2), 5)
        await stream.stop()
        await asyncio.wait_for(task, 5)
        return batches

    assert asyncio.run(scenario()) == [["first"], ["during"]]
