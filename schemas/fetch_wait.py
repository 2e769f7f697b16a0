"""How long a consumer's next fetch waits on the broker: short while records come, long once they stopped.

One rule for the worker's consumer (streams/faust_fixes.py point 2) and the sink's (sinks/runner.py), here at
the bottom of the layers because both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from schemas.settings import Settings

#: The safety poll of an idle consumer's fetch loop (aiokafka's is 0.2 s): everything it waits for wakes it anyway.
FETCHER_IDLE_POLL_SECONDS = 2.0

#: An idle consumer's fetch waits this share of the silence so far (up to ``idle_ms``): the first record after a
#: silence is never delayed by more than a quarter of it, and a consumer idle for long fetches rarely.
IDLE_WAIT_SHARE = 0.25


class FetchWait:
    """The wait of a consumer's next fetch: ``short_ms`` while records come; after ``idle_after`` s without one,
    a quarter of the silence so far, at most ``idle_ms``.

    Tansu answers a waiting fetch only when its wait is over, so the short wait that keeps latency low costs an
    idle consumer one fetch round trip per wait (20/s at 50 ms): most of an idle worker's and sink's CPU, and
    the broker's. Records less than ``idle_after`` apart (a running exam) keep the short wait; the first record
    after a silence of S seconds may wait up to S/4 more (at most ``idle_ms``): a pause of seconds between two
    waves of a day costs little latency, a consumer idle overnight fetches once per ``idle_ms``. On Apache Kafka
    a fetch returns as soon as records arrive, so there the longer wait costs nothing."""

    def __init__(self, short_ms: int, idle_ms: int, idle_after: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.short_ms, self.idle_ms, self.idle_after = short_ms, max(short_ms, idle_ms), idle_after
        self._clock = clock
        self._last_records = clock()  # a consumer just started is not idle: it catches up first

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchWait:
        return cls(settings.fetch_max_wait_ms, settings.fetch_idle_wait_ms, settings.fetch_idle_after_seconds)

    def after_fetch(self, had_records: bool) -> int:
        """The wait (ms) for the next fetch, given whether this one brought records."""
        now = self._clock()
        if had_records:
            self._last_records = now
        silence = now - self._last_records
        if silence < self.idle_after:
            return self.short_ms
        return max(self.short_ms, min(self.idle_ms, int(silence * 1000 * IDLE_WAIT_SHARE)))


def adapt_fetch_wait(fetcher: Any, wait: FetchWait) -> None:
    """After each fetch of an aiokafka ``Fetcher``, set the wait of its next one.

    aiokafka builds every FetchRequest from ``Fetcher._fetch_max_wait_ms``, and ``_proc_fetch_request`` returns
    whether the response added records (or an error) for the consumer. The fetcher's routine also wakes every
    ``_fetcher_timeout`` (0.2 s) while a fetch is in flight, only to find nothing to do (what it waits for, the
    fetch's answer, a consumed buffer, a new assignment, wakes it anyway): while idle, every
    ``FETCHER_IDLE_POLL_SECONDS`` or once per fetch wait, whichever is longer. All three are private, pinned
    by tests/unit/streams/test_fetch_wait.py and tests/unit/sinks/test_sink_fetch_wait.py."""
    fetch = fetcher._proc_fetch_request
    poll = fetcher._fetcher_timeout
    fetcher._fetch_max_wait_ms = wait.short_ms

    async def adapting(*args: Any, **kwargs: Any) -> Any:
        woke = await fetch(*args, **kwargs)
        wait_ms = wait.after_fetch(bool(woke))
        fetcher._fetch_max_wait_ms = wait_ms
        fetcher._fetcher_timeout = poll if wait_ms == wait.short_ms else max(poll, FETCHER_IDLE_POLL_SECONDS,
                                                                             wait_ms / 1000)
        return woke

    fetcher._proc_fetch_request = adapting
