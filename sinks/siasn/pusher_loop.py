"""The SI ASN pusher's loop, in the worker (``CACT_SIASN_PUSH_ENABLED``) and as ``cact siasn push`` alike.

On its own the pusher must stop well, because a container is stopped with SIGTERM at every deploy: a claim left
behind makes its pushes wait out the lease (``CACT_SIASN_LEASE_SECONDS``, 2 minutes) before another pusher may
take them. So on a stop the push in flight is finished (for at most :data:`STOP_GRACE_SECONDS`, then it is left
to its lease and read back by whoever takes it next, as after a crash) and the rest of the claim is released at
once. Inside the worker the loop is cancelled with the worker instead, which leaves its claim to the lease.

Several pushers side by side are safe by the outbox's leases (``FOR UPDATE SKIP LOCKED``, sinks/siasn/push.py).
One more rule here keeps them so when SI ASN is slow: a claimed push is sent only while at least half its lease
is left. A batch that took longer than that hands its remaining pushes back instead of sending them after
another pusher may have taken them over. A database outage is waited out (one log line per outage), like the
sink does; anything else is a bug and stops the process (crash-only: its supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from schemas.retry import BackoffCursor, RetryPolicy
from sinks import models as m
from sinks.quarantine import one_line
from sinks.siasn.push import OutboxPusher
from sinks.store import ResultsStore

log = logging.getLogger("cact.siasn")

#: How long a stop waits for the push in flight; below the 30 s Docker, Compose (deploy/compose/) and
#: Kubernetes give a container between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 20.0
#: Waits between attempts while the results store is down: half a second, doubling up to 30 s.
STORE_RETRY = RetryPolicy(0.5, 30.0, jitter=0.5)

Sleep = Callable[[float], Awaitable[None]]


def release(store: ResultsStore, rows: Sequence[dict[str, Any]], now: datetime) -> int:
    """Give claimed, unsent pushes back to the outbox: claimable at once by any pusher. Returns how many.

    Only while the claim is still live (``claimed_until > now``): then it is ours, as nobody else may claim a
    live lease. A push that had outlived an earlier claim (``was_claimed``) may have reached SI ASN then, so its
    lease is ended rather than cleared: whoever takes it reads it back before saving it again."""
    o = m.SiasnOutbox
    released = 0
    with Session(store.engine) as s, s.begin():
        for row in rows:
            result = s.execute(update(o).where(
                o.nip == row["nip"], o.activity_id == row["activity_id"], o.result_version == row["result_version"],
                o.kind == row["kind"], o.status == "pending", o.attempts == row["attempts"], o.claimed_until > now)
                .values(claimed_until=now if row["was_claimed"] else None))
            released += cast(CursorResult[Any], result).rowcount or 0
    return released


class PusherLoop:
    """Rounds of claim → deliver → record until ``stop`` is set; ``sleep`` is injectable for tests."""

    def __init__(self, pusher: OutboxPusher, *, stop: asyncio.Event, idle_s: float = 1.0,
                 grace_s: float = STOP_GRACE_SECONDS, sleep: Sleep | None = None) -> None:
        self.pusher, self.store, self.stop = pusher, pusher.store, stop
        self.idle_s, self.grace_s = idle_s, grace_s
        self._sleep = sleep or self._sleep_unless_stopped
        self.store_retry = BackoffCursor(STORE_RETRY)
        self.store_down = False
        self.released = 0  # pushes handed back on a stop or at the lease's half-life, for the exit line

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def prepare(self) -> bool:
        """Migrate the store (as the sink does: the pusher may start before any worker), waiting for it while it
        is down. False when told to stop meanwhile."""
        while not self.stop.is_set():
            try:
                await asyncio.to_thread(self.store.create_schema)
            except Exception as exc:
                if not await self._outage(exc):
                    raise
                continue
            self._store_back()
            return True
        return False

    async def run(self) -> None:
        if not await self.prepare():
            return
        while not self.stop.is_set():
            try:
                sent = await self.round()
            except Exception as exc:
                if not await self._outage(exc):
                    raise
                continue
            self._store_back()
            if sent == 0:
                await self._sleep(self.idle_s)

    async def round(self) -> int:
        """One claim, delivered while the lease allows and no stop came; the rest released. Returns the claim's size."""
        claimed_at = self.pusher.now()
        rows = await asyncio.to_thread(self.pusher.claim)
        send_until = claimed_at + self.pusher.lease / 2
        for i, row in enumerate(rows):
            if self.stop.is_set() or self.pusher.now() >= send_until:
                await self._release(rows[i:])
                break
            if not await self._deliver(row):
                await self._release(rows[i + 1:])
                break
        return len(rows)

    async def _deliver(self, row: dict[str, Any]) -> bool:
        """Deliver one push; on a stop, give it ``grace_s`` to finish. False when it had to be abandoned."""
        delivery = asyncio.ensure_future(self.pusher.deliver(row))
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({delivery, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not delivery.done():
                try:
                    await asyncio.wait_for(delivery, self.grace_s)  # cancels it when the grace is over
                except TimeoutError:
                    log.warning("stopping: a push still in flight after %.0f s is left to its lease; the next "
                                "pusher reads it back from SI ASN before saving it", self.grace_s)
                    return False
            delivery.result()  # the store's errors (an outage) reach run()
            return True
        finally:
            stopped.cancel()
            if not delivery.done():
                delivery.cancel()

    async def _release(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.released += await asyncio.to_thread(release, self.store, rows, self.pusher.now())

    async def _outage(self, exc: Exception) -> bool:
        """The store is down: say so once, wait (unless stopping) and return True; False for any other error."""
        if not self.store.is_outage(exc):
            return False
        if not self.store_down:
            log.warning("results store unreachable (%s): the SI ASN pusher waits and retries; claimed pushes "
                        "come back after their lease", one_line(exc))
            self.store_down = True
        self.store.dispose()  # every pooled connection died with the server
        await self._sleep(self.store_retry.next_delay())
        return True

    def _store_back(self) -> None:
        if self.store_down:
            log.warning("results store reachable again: the SI ASN pusher goes on")
            self.store_down = False
        self.store_retry.reset()
