"""Delivers the SI ASN outbox: every result reaches SI ASN once, through outages, restarts and replays.

Rows are claimed with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers can push side by
side), delivered, and marked delivered or rejected in their own transaction. A claim that outlived a crash
(the lease expired with the row still pending) may already have reached SI ASN, so it is read back first:
a crash between SI ASN's answer and our commit never makes a second save.

The pusher knows SI ASN only as the port (sinks/siasn/port.py) and its errors: :class:`SiasnRejected` marks a
push rejected, :class:`SiasnUnavailable` schedules it again on the retry policy (schemas/retry.py), the delay
stored as the push's ``next_attempt_at`` rather than slept.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from schemas.nip import mask_nip
from schemas.retry import RetryPolicy
from schemas.settings import Settings
from sinks import models as m
from sinks.metrics import PusherMetrics, default_pusher_metrics
from sinks.siasn.errors import SiasnRejected, SiasnUnavailable
from sinks.siasn.port import SiasnPort
from sinks.store import ResultsStore

log = logging.getLogger("cact.siasn")

#: A push that failed on an outage comes back after at least half its window (never at once: each delivery
#: already cost SI ASN up to CACT_SIASN_MAX_ATTEMPTS calls inside the client).
PUSH_JITTER = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


class OutboxPusher:
    """Claims due pushes, delivers them through ``client`` one at a time and records each outcome."""

    def __init__(self, store: ResultsStore, client: SiasnPort, *, batch: int = 20, lease_s: float = 120,
                 retry_base_s: float = 2.0, retry_max_s: float = 300.0, now: Callable[[], datetime] = _now,
                 rng: random.Random | None = None, metrics: PusherMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics or default_pusher_metrics()
        self.client = client
        self.batch = batch
        self.lease = timedelta(seconds=lease_s)
        self.retry = RetryPolicy(retry_base_s, retry_max_s, jitter=PUSH_JITTER, rng=rng or random.Random())
        self.now = now

    @classmethod
    def from_settings(cls, store: ResultsStore, client: SiasnPort, settings: Settings,
                      metrics: PusherMetrics | None = None) -> OutboxPusher:
        """Batch, lease and retry waits from ``CACT_SIASN_PUSH_BATCH``, ``…_LEASE_SECONDS``, ``…_RETRY_*_SECONDS``."""
        return cls(store, client, batch=settings.siasn_push_batch, lease_s=settings.siasn_lease_seconds,
                   retry_base_s=settings.siasn_retry_base_seconds, retry_max_s=settings.siasn_retry_max_seconds,
                   metrics=metrics)

    def retry_delay(self, attempts: int) -> timedelta:
        """How long a push waits after its ``attempts``-th failed delivery: from half to all of
        ``min(retry_max_s, retry_base_s·2^attempts)``, so the first retry comes after base to 2·base seconds."""
        return timedelta(seconds=self.retry.delay(attempts + 1))

    def claim(self) -> list[dict[str, Any]]:
        o = m.SiasnOutbox
        now = self.now()
        with Session(self.store.engine) as s, s.begin():
            rows = s.scalars(select(o).where(o.status == "pending", o.next_attempt_at <= now,
                                             (o.claimed_until.is_(None)) | (o.claimed_until < now))
                             .order_by(o.next_attempt_at).limit(self.batch).with_for_update(skip_locked=True)).all()
            claimed = [{"nip": r.nip, "activity_id": r.activity_id, "result_version": r.result_version, "kind": r.kind,
                        "payload": r.payload, "attempts": r.attempts, "was_claimed": r.claimed_until is not None}
                       for r in rows]
            for r in rows:
                r.claimed_until = now + self.lease
        return claimed

    def _finish(self, row: dict[str, Any], **values: Any) -> None:
        o = m.SiasnOutbox
        with Session(self.store.engine) as s, s.begin():
            s.execute(update(o).where(o.nip == row["nip"], o.activity_id == row["activity_id"],
                                      o.result_version == row["result_version"], o.kind == row["kind"],
                                      o.status == "pending")
                      .values(claimed_until=None, **values))

    async def _send(self, row: dict[str, Any]) -> None:
        """One save; a claim that outlived a crash is read back first (an earlier claim may have got through)."""
        nip, payload = row["nip"], row["payload"]
        if row["kind"] == "potensi":
            scores = payload["scores"]
            if not (row["was_claimed"] and await self.client.holds_potensi(nip, scores)):
                await self.client.save_potensi(nip, scores)
            return
        levels, tahun = payload["levels"], payload.get("tahun")
        if not (row["was_claimed"] and await self.client.holds_kompetensi(nip, levels, tahun=tahun)):
            await self.client.save_kompetensi(nip, levels, tahun=tahun)

    async def deliver(self, row: dict[str, Any]) -> str:
        attempts = row["attempts"] + 1
        try:
            await self._send(row)
        except SiasnRejected as exc:
            await asyncio.to_thread(self._finish, row, status="rejected", attempts=attempts, last_error=str(exc)[:2000])
            self.metrics.rejected.labels(kind=row["kind"]).inc()
            log.warning("SI ASN rejected the result of %s: %s", mask_nip(row["nip"]), exc)
            return "rejected"
        except SiasnUnavailable as exc:
            await asyncio.to_thread(self._finish, row, attempts=attempts, last_error=str(exc)[:2000],
                                    next_attempt_at=self.now() + self.retry_delay(attempts))
            self.metrics.failed.inc()
            return "retry"
        await asyncio.to_thread(self._finish, row, status="delivered", attempts=attempts, delivered_at=self.now(),
                                last_error=None)
        self.metrics.delivered.labels(kind=row["kind"]).inc()
        return "delivered"

    async def push_once(self) -> int:
        rows = await asyncio.to_thread(self.claim)
        for row in rows:  # one at a time: the client's rate limit paces SI ASN
            await self.deliver(row)
        return len(rows)


def outbox_status(store: ResultsStore, now: datetime | None = None) -> dict[str, Any]:
    """Pushes per status (``held``: waiting for an operator, ``void``: withdrawn by one) and the age of the oldest
    pending push. Held pushes are not a backlog: they wait for a decision, not for SI ASN."""
    o = m.SiasnOutbox
    now = now or _now()
    with Session(store.engine) as s:
        counts = dict(s.execute(select(o.status, func.count()).group_by(o.status)).all())
        oldest = _aware(s.scalar(select(func.min(o.created_at)).where(o.status == "pending")))
    return {**{status: counts.get(status, 0) for status in m.OUTBOX_STATUSES},
            "oldest_pending_age_s": round((now - oldest).total_seconds(), 1) if oldest else 0.0}


def results_by_standing(store: ResultsStore) -> dict[str, int]:
    """Current results per standing: how many count, wait for evidence, or were not recognised."""
    r = m.Result
    with Session(store.engine) as s:
        counts = dict(s.execute(select(r.standing, func.count()).where(r.status == "current")
                                .group_by(r.standing)).all())
    return {standing: counts.get(standing, 0) for standing in m.RESULT_STANDINGS}


def pushed_results(store: ResultsStore) -> int:
    """Current results every push of which SI ASN has acknowledged (the demo's ``results_pushed_to_siasn``)."""
    o, r = m.SiasnOutbox, m.Result
    same = (o.nip == r.nip) & (o.activity_id == r.activity_id) & (o.result_version == r.result_version)
    with Session(store.engine) as s:
        return s.scalar(select(func.count()).select_from(r).where(
            r.status == "current", select(o.kind).where(same).exists(),
            ~select(o.kind).where(same, o.status != "delivered").exists())) or 0


def retry_rejected(store: ResultsStore) -> int:
    """After SI ASN data was fixed: send the rejected pushes again (of current results only)."""
    o, r = m.SiasnOutbox, m.Result
    current = select(r.result_version).where(r.nip == o.nip, r.activity_id == o.activity_id, r.status == "current")
    with Session(store.engine) as s, s.begin():
        again = (update(o).where(o.status == "rejected", o.result_version.in_(current.scalar_subquery()))
                 .values(status="pending", attempts=0, next_attempt_at=_now(), claimed_until=None))
        res = cast(CursorResult[Any], s.execute(again))
        return res.rowcount or 0  # an UPDATE's result is a CursorResult
