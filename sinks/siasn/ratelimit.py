"""Client-side pacing of SI ASN calls: BKN throttles per consumer key, so concurrent callers must not add up.

A token bucket of our own rather than a library (aiolimiter would do the same): it is 30 lines, it waits in
arrival order (a lock), a rate of 0 switches it off, and its clock and sleep can be injected by a test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: A token refilled up to float rounding is a token: else a wait of 1e-15 s would be asked for (and a clock that
#: cannot advance by that little would spin).
_EPSILON = 1e-9


class TokenBucket:
    """Async token bucket shared by every request of one client.

    With the default burst of 1 the requests are simply spaced ``1/rate`` apart. A rate of 0 disables the limit.
    """

    def __init__(self, rate_per_s: float, burst: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.rate = rate_per_s
        self.burst = max(1.0, burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:  # FIFO: waiters are served in arrival order
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1 - _EPSILON:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate)
