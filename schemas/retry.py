"""The one retry policy of the pipeline: exponential backoff, capped, with a chosen share of jitter.

Why one policy: four places wait before trying again (the SI ASN client within a delivery, the outbox pusher
between deliveries, the results-store sink during a database outage, the lab emitter between connections to
Kafka), and each had its own formula. They now share this one, so "how long until the next try" has a single
answer and a single test::

    window(n) = min(max_s, base_s · 2^(n-1))          n = 1 for the wait after the first failure
    delay(n)  = uniform(window(n) · (1 - jitter), window(n))
    delay(n)  = max(delay(n), min(retry_after, max_s)) when the server said Retry-After

``jitter`` is the share of the window drawn at random: 1 is "full jitter" (anywhere from 0 to the window, the
spread that keeps many clients coming back after an outage from hitting a recovering server in lockstep),
0 is a fixed doubling. Each place keeps the spread it had (and its tests assert):

====================  =======================================================  ======  =============================
place                 base, max (Settings)                                     jitter  why that spread
====================  =======================================================  ======  =============================
SI ASN client         ``CACT_SIASN_BACKOFF_BASE_S`` / ``_MAX_S``               1       many workers, one SI ASN
outbox pusher         ``CACT_SIASN_RETRY_BASE_SECONDS`` / ``_MAX_SECONDS``     0.5     a push never comes back early:
                                                                                       at least half the window
sink (database)       ``CACT_SINK_RETRY_BASE_SECONDS`` / ``_MAX_SECONDS``      0       one sink per worker; "doubles
                                                                                       up to the maximum"
lab emitter (Kafka)   ``CACT_LAB_RETRY_BASE_SECONDS`` / ``_MAX_SECONDS``       0       a fixed, predictable pace
====================  =======================================================  ======  =============================

The pusher does not sleep: it stores the delay as the push's ``next_attempt_at``, and the emitter as its next
connection time; both call :meth:`RetryPolicy.delay`. The loops that do sleep in place use tenacity
(:meth:`RetryPolicy.retrying`): it brings the attempt counting, the give-up rule, the retry predicate and the
hook for a log line, with the sleep injectable, so a unit test never really waits. tenacity rather than
stamina: stamina's jitter is an added constant, not a share of the window, and its random source cannot be
seeded, so the full-jitter bounds could not be asserted; tenacity takes any wait strategy, and this policy is one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_never

Sleep = Callable[[float], Awaitable[None]]

#: Beyond this many doublings every window is ``max_s`` (and 2^n stays a small float).
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before try ``n + 1`` after ``n`` failures. Pure: no clock, no sleep of its own.

    ``rng`` makes the jitter reproducible in tests; by default each policy has its own ``random.Random``.
    """

    base_s: float
    max_s: float
    jitter: float = 1.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < 0:
            raise ValueError(f"retry waits cannot be negative, got base_s={self.base_s} max_s={self.max_s}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a share of the window from 0 to 1, got {self.jitter}")

    def window(self, attempt: int) -> float:
        """The longest wait after failure number ``attempt`` (1-based): ``base_s`` doubling, capped at ``max_s``."""
        return min(self.max_s, self.base_s * 2.0 ** min(max(attempt - 1, 0), _MAX_EXPONENT))

    def delay(self, attempt: int, *, retry_after: float | None = None) -> float:
        """The wait after failure number ``attempt``; a server's ``retry_after`` (seconds) is a floor, up to max_s."""
        cap = self.window(attempt)
        wait = cap if self.jitter == 0 else self.rng.uniform(cap * (1 - self.jitter), cap)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_s))
        return wait

    def wait(self, state: RetryCallState) -> float:
        """tenacity's wait strategy: :meth:`delay` for the attempt just failed, honouring the error's ``retry_after``.

        An exception that knows how long the server asked to wait carries it as a ``retry_after`` attribute.
        """
        error = state.outcome.exception() if state.outcome is not None else None
        return self.delay(state.attempt_number, retry_after=getattr(error, "retry_after", None))

    def retrying(self, *, retry_on: Callable[[BaseException], bool], attempts: int | None = None,
                 sleep: Sleep | None = None,
                 before_sleep: Callable[[RetryCallState], Any] | None = None) -> AsyncRetrying:
        """A tenacity loop on this policy: ``attempts`` tries at most (None: until it works), retrying only the
        errors ``retry_on`` accepts; any other error, and the last one once the tries are spent, is raised as is."""
        return AsyncRetrying(wait=self.wait, stop=stop_never if attempts is None else stop_after_attempt(attempts),
                             retry=retry_if_exception(retry_on), sleep=sleep or asyncio.sleep,
                             before_sleep=before_sleep, reraise=True)


class BackoffCursor:
    """The waits of one outage, one after the other: for loops that keep their own count between calls.

    ``next_delay`` gives the wait after one more failure; ``reset`` once the thing works again.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.attempts = 0

    def next_delay(self) -> float:
        self.attempts += 1
        return self.policy.delay(self.attempts)

    def reset(self) -> None:
        self.attempts = 0
