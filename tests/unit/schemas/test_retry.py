"""The one retry policy (schemas/retry.py): its windows, its jitter's bounds, Retry-After, and its tenacity loop on
an injected sleep, so nothing here really waits."""

from __future__ import annotations

import asyncio
import random

import pytest

from schemas.retry import BackoffCursor, RetryPolicy


class Flaky(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retry_after = retry_after


class Broken(Exception):
    pass


def test_the_window_doubles_from_base_and_stops_at_max() -> None:
    policy = RetryPolicy(0.5, 3.0, jitter=0)
    assert [policy.window(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert policy.window(0) == 0.5  # "no failure yet" is treated as the first
    assert policy.window(10**6) == 3.0  # no overflow, however long the outage


def test_without_jitter_the_delay_is_the_window_and_draws_nothing() -> None:
    rng = random.Random(1)
    policy = RetryPolicy(0.2, 5.0, jitter=0, rng=rng)
    state = rng.getstate()
    assert [policy.delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert rng.getstate() == state


@pytest.mark.parametrize("jitter", [1.0, 0.5, 0.25])
def test_jitter_draws_from_its_share_of_the_window(jitter: float) -> None:
    policy = RetryPolicy(1.0, 60.0, jitter=jitter, rng=random.Random(7))
    for attempt in range(1, 12):
        window = policy.window(attempt)
        delays = [policy.delay(attempt) for _ in range(300)]
        assert all(window * (1 - jitter) <= d <= window for d in delays), attempt
        spread = max(delays) - min(delays)
        assert spread > 0.9 * jitter * window  # the whole share is used, not a corner of it


def test_full_jitter_reaches_down_to_zero() -> None:
    policy = RetryPolicy(0.5, 30.0, rng=random.Random(3))  # full jitter is the default
    first = [policy.delay(1) for _ in range(300)]
    assert max(first) <= 0.5 and min(first) < 0.02


def test_the_same_seed_gives_the_same_delays() -> None:
    a, b = (RetryPolicy(2.0, 300.0, jitter=0.5, rng=random.Random(42)) for _ in range(2))
    assert [a.delay(n) for n in range(1, 10)] == [b.delay(n) for n in range(1, 10)]


def test_retry_after_is_a_floor_capped_at_max() -> None:
    policy = RetryPolicy(0.01, 5.0, rng=random.Random(0))
    assert policy.delay(1, retry_after=2.0) == 2.0
    assert policy.delay(1, retry_after=600) == 5.0  # a server cannot park us beyond our own maximum
    assert policy.delay(1, retry_after=0) <= 0.01 and policy.delay(1, retry_after=-3) <= 0.01


@pytest.mark.parametrize(("base", "maximum", "jitter"), [(-1, 5, 1), (1, -5, 1), (1, 5, 1.5), (1, 5, -0.1)])
def test_nonsense_is_refused(base: float, maximum: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(base, maximum, jitter)


def test_a_cursor_counts_the_failures_of_one_outage() -> None:
    cursor = BackoffCursor(RetryPolicy(0.5, 3.0, jitter=0))
    assert [cursor.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    cursor.reset()
    assert cursor.next_delay() == 0.5


# ---- the tenacity loop ------------------------------------------------------------------------------


def run_loop(policy: RetryPolicy, failures: list[BaseException], attempts: int | None) -> tuple[list[float], int]:
    """Call something that fails with ``failures`` in turn, then works; the sleeps it asked for, the calls made."""
    slept: list[float] = []
    calls = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "done"

    async def scenario() -> None:
        async for attempt in policy.retrying(retry_on=lambda e: isinstance(e, Flaky), attempts=attempts,
                                             sleep=sleep):
            with attempt:
                assert await flaky() == "done"

    asyncio.run(scenario())
    return slept, calls


def test_the_loop_sleeps_the_policy_s_delays_through_the_injected_sleep() -> None:
    slept, calls = run_loop(RetryPolicy(0.5, 3.0, jitter=0), [Flaky() for _ in range(4)], attempts=None)
    assert slept == [0.5, 1.0, 2.0, 3.0] and calls == 5


def test_the_loop_honours_an_error_s_retry_after() -> None:
    slept, _ = run_loop(RetryPolicy(0.001, 10.0, rng=random.Random(0)), [Flaky(retry_after=4.0), Flaky()],
                        attempts=5)
    assert slept[0] == 4.0 and slept[1] <= 0.002


def test_the_loop_gives_up_after_its_attempts_with_the_last_error() -> None:
    failures: list[BaseException] = [Flaky() for _ in range(10)]
    with pytest.raises(Flaky):
        run_loop(RetryPolicy(0.1, 1.0, jitter=0), failures, attempts=3)
    assert len(failures) == 7  # three tries, two sleeps between them


def test_an_error_the_loop_does_not_retry_is_raised_at_once() -> None:
    failures: list[BaseException] = [Broken(), Flaky()]
    with pytest.raises(Broken):
        run_loop(RetryPolicy(0.1, 1.0, jitter=0), failures, attempts=5)
    assert len(failures) == 1
