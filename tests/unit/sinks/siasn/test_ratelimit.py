"""The client-side token bucket on an injected clock and sleep: the waits it asks for, without waiting them."""

from __future__ import annotations

import asyncio

import pytest

from sinks.siasn.ratelimit import TokenBucket


def waits(rate: float, calls: int, burst: float = 1.0) -> list[float]:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        assert len(slept) <= 10 * calls, slept[-5:]  # a bucket that spins fails, not eats the memory
        now[0] += seconds

    async def scenario() -> None:
        bucket = TokenBucket(rate, burst, clock=lambda: now[0], sleep=sleep)
        await asyncio.gather(*(bucket.acquire() for _ in range(calls)))

    asyncio.run(scenario())
    return slept


def test_calls_are_spaced_one_over_the_rate_apart() -> None:
    assert waits(20, 4) == pytest.approx([0.05, 0.05, 0.05])  # the first goes at once


def test_a_burst_goes_at_once_then_the_rate_applies() -> None:
    assert waits(10, 5, burst=3) == pytest.approx([0.1, 0.1])


def test_a_rate_of_zero_switches_the_limit_off() -> None:
    assert waits(0, 50) == []
