"""The outbox pusher against a fake SI ASN: delivery, rejection, outages, crash safety, superseded results."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas import events as ev
from sinks.siasn.errors import SiasnRejected, SiasnUnavailable
from sinks.siasn.push import OutboxPusher, outbox_status, pushed_results, retry_rejected
from sinks.store import ResultsStore


class Rejected(SiasnRejected):
    """What the fake raises where SI ASN refuses the data: the port's own error."""


class Unavailable(SiasnUnavailable):
    """What the fake raises where SI ASN is away: the port's own error."""


class FakeSiasn:
    def __init__(self) -> None:
        self.saved: dict[str, list[dict[str, int]]] = {}
        self.potensi: dict[str, list[dict[str, float]]] = {}
        self.down = 0
        self.reject: set[str] = set()
        self.calls = 0

    async def save_kompetensi(self, nip: str, levels: dict[str, int], *, tahun: int | None = None) -> None:
        assert tahun == 2026  # the result's year, not the delivery's
        self.calls += 1
        if self.down:
            self.down -= 1
            raise Unavailable("503")
        if nip in self.reject:
            raise Rejected("pnsId tidak ditemukan")
        self.saved.setdefault(nip, []).append(dict(levels))

    async def holds_kompetensi(self, nip: str, levels: dict[str, int], *, tahun: int | None = None) -> bool:
        return dict(levels) in self.saved.get(nip, [])

    async def save_potensi(self, nip: str, potensi: dict[str, float]) -> None:
        self.calls += 1
        self.potensi.setdefault(nip, []).append(dict(potensi))

    async def holds_potensi(self, nip: str, potensi: dict[str, float]) -> bool:
        return dict(potensi) in self.potensi.get(nip, [])


@pytest.fixture
def store(tmp_path: Path, store_cases: Any) -> ResultsStore:
    s = ResultsStore(f"sqlite:///{tmp_path / 'r.db'}")
    s.create_schema()
    return s


def pusher(store: ResultsStore, fake: FakeSiasn, clock: list[datetime]) -> OutboxPusher:
    return OutboxPusher(store, fake, retry_base_s=1, now=lambda: clock[0])


NIP_A, NIP_B = "199001012015031001", "198505122010012002"


def test_delivers_each_result_once_and_rejects_without_retry(store: ResultsStore, store_cases: Any) -> None:
    fake, clock = FakeSiasn(), [datetime.now(UTC) + timedelta(seconds=5)]  # just after the writes below
    store.write_batch([store_cases.scored(NIP_A, 1), store_cases.scored(NIP_B, 1)])
    fake.reject.add(NIP_B)
    p = pusher(store, fake, clock)
    assert asyncio.run(p.push_once()) == 2
    assert asyncio.run(p.push_once()) == 0  # nothing left: the rejected one is not retried
    assert list(fake.saved) == [NIP_A] and fake.calls == 2
    status = outbox_status(store, clock[0])
    assert (status["delivered"], status["rejected"], status["pending"]) == (1, 1, 0)
    fake.reject.clear()
    assert retry_rejected(store) == 1  # the operator fixed the data in SI ASN
    asyncio.run(p.push_once())
    assert outbox_status(store, clock[0])["delivered"] == 2 and len(fake.saved[NIP_B]) == 1


def test_outage_backs_off_then_delivers(store: ResultsStore, store_cases: Any) -> None:
    fake, clock = FakeSiasn(), [datetime.now(UTC) + timedelta(seconds=5)]  # just after the writes below
    store.write_batch([store_cases.scored(NIP_A, 1)])
    fake.down = 2
    p = pusher(store, fake, clock)
    asyncio.run(p.push_once())
    assert asyncio.run(p.push_once()) == 0  # not due yet: backing off
    for _ in range(3):
        clock[0] += timedelta(minutes=10)
        asyncio.run(p.push_once())
    assert fake.saved == {NIP_A: [fake.saved[NIP_A][0]]} and outbox_status(store, clock[0])["delivered"] == 1


def test_a_crash_after_siasn_saved_never_saves_twice(store: ResultsStore, store_cases: Any) -> None:
    fake, clock = FakeSiasn(), [datetime.now(UTC) + timedelta(seconds=5)]  # just after the writes below
    store.write_batch([store_cases.scored(NIP_A, 1)])
    p = pusher(store, fake, clock)
    (row,) = p.claim()
    # SI ASN saved; the worker died here
    asyncio.run(fake.save_kompetensi(row["nip"], row["payload"]["levels"], tahun=row["payload"]["tahun"]))
    clock[0] += timedelta(minutes=5)  # the lease runs out
    asyncio.run(p.push_once())
    assert len(fake.saved[NIP_A]) == 1 and outbox_status(store, clock[0])["delivered"] == 1


def test_superseded_result_is_not_pushed(store: ResultsStore, store_cases: Any) -> None:
    fake, clock = FakeSiasn(), [datetime.now(UTC) + timedelta(seconds=5)]  # just after the writes below
    store.write_batch([store_cases.scored(NIP_A, 1)])
    store.write_batch([store_cases.scored(NIP_A, 2, blueprint_version="2026.2", level=4)])
    asyncio.run(pusher(store, fake, clock).push_once())
    assert fake.saved == {NIP_A: [dict.fromkeys(fake.saved[NIP_A][0], 4)]}
    assert outbox_status(store, clock[0])["superseded"] == 1


POTENTIAL = {"berfikirKritis": 61.5, "intelektual": 70.0, "interpersonal": 55.25, "kesadaranDiri": 80.0,
             "motivasiKomitmen": 66.67, "total": 66.68}


def with_potential(event: Any) -> Any:
    return event.model_copy(update={"payload": event.payload.model_copy(update={
        "potential": ev.PotentialScores(**POTENTIAL)})})


def test_potential_is_pushed_beside_the_levels_once_even_after_a_crash(store: ResultsStore, store_cases: Any) -> None:
    fake, clock = FakeSiasn(), [datetime.now(UTC) + timedelta(seconds=5)]
    store.write_batch([with_potential(store_cases.scored(NIP_A, 1)), store_cases.scored(NIP_B, 1)])
    assert sorted((r["nip"], r["kind"]) for r in store_cases.snapshot(store)["siasn_outbox"]) == [
        (NIP_B, "kompetensi"), (NIP_A, "kompetensi"), (NIP_A, "potensi")]
    p = pusher(store, fake, clock)
    claimed = p.claim()
    (row,) = [r for r in claimed if r["kind"] == "potensi"]
    asyncio.run(fake.save_potensi(row["nip"], row["payload"]["scores"]))  # SI ASN saved; the worker died here
    clock[0] += timedelta(minutes=5)  # the lease runs out
    asyncio.run(p.push_once())
    assert fake.potensi == {NIP_A: [POTENTIAL]}
    assert {n: len(v) for n, v in fake.saved.items()} == {NIP_A: 1, NIP_B: 1}
    assert outbox_status(store, clock[0])["delivered"] == 3 and pushed_results(store) == 2


def test_a_push_that_met_an_outage_is_due_again_on_the_retry_policy(store: ResultsStore, store_cases: Any) -> None:
    """The stored next_attempt_at is the policy's delay: from half to all of min(max, base·2^attempts)."""
    fake, clock = FakeSiasn(), [datetime.now(UTC) + timedelta(seconds=5)]
    store.write_batch([store_cases.scored(NIP_A, 1)])
    fake.down = 1
    asyncio.run(OutboxPusher(store, fake, retry_base_s=2, retry_max_s=300, now=lambda: clock[0]).push_once())
    (row,) = store_cases.snapshot(store)["siasn_outbox"]
    due = datetime.fromisoformat(str(row["next_attempt_at"])).replace(tzinfo=UTC)
    assert row["attempts"] == 1 and 2 <= (due - clock[0]).total_seconds() <= 4  # the first retry: base to 2·base

    p = OutboxPusher(store, fake, retry_base_s=2, retry_max_s=300, rng=random.Random(11))
    for attempts in range(1, 20):
        window = min(300, 2 * 2 ** attempts)
        delays = [p.retry_delay(attempts).total_seconds() for _ in range(200)]
        assert all(window / 2 <= d <= window for d in delays), attempts
        assert max(delays) - min(delays) > 0.4 * window  # jittered over that half, not a fixed step
