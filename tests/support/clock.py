"""A clock that moves only when the test moves it.

Code whose behaviour depends on time passing (a spool owner's lease, a token's life, a retry's back-off, a
session's check-in window) takes ``clock=`` (seconds), ``now=`` (a datetime) or ``sleep=``; a test hands it a
``FakeClock`` and calls :meth:`FakeClock.advance` instead of sleeping. The test then takes no time, and it
asserts what happens at exactly the instant it names rather than after "long enough".
"""

from __future__ import annotations

from datetime import UTC, datetime


class FakeClock:
    """``clock()`` is ``now``; ``sleep`` and ``asleep`` advance it at once (and record what was asked)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds``; the new time."""
        self.now += seconds
        return self.now

    def sleep(self, seconds: float) -> None:
        """For code that takes ``sleep=``: the time passes, nothing waits."""
        self.slept.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        """``sleep`` for code that awaits its ``sleep=``."""
        self.sleep(seconds)

    def datetime(self) -> datetime:
        """``now`` as an aware UTC datetime, for code that takes ``now=``."""
        return datetime.fromtimestamp(self.now, UTC)
