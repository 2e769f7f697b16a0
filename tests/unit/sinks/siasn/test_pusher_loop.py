"""The standalone pusher's loop (sinks/siasn/pusher_loop.py): a stop finishes the push in flight and hands the
rest of the claim back at once, a claim past half its lease is not sent, an outage is waited out, a bug is not.

SI ASN is a fake whose saves can be held open, the clock is the test's, and the store is SQLite: what is
checked is the outbox's rows, who can claim them next and whether they are read back first.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from sinks.siasn.push import OutboxPusher, outbox_status
from sinks.siasn.pusher_loop import PusherLoop, release
from sinks.store import ResultsStore
from support.store_scenarios import nip

NIPS = [nip(i) for i in range(1, 6)]


class FakeSiasn:
    """Saves kompetensi; ``gate`` (when set) holds every save open until the test lets it through."""

    def __init__(self) -> None:
        self.saved: list[str] = []
        self.read_back: list[str] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.on_save: Any = None

    async def save_kompetensi(self, nip: str, levels: dict[str, int], *, tahun: int | None = None) -> None:
        self.entered.set()
        if self.on_save is not None:
            self.on_save(nip)
        if self.gate is not None:
            await self.gate.wait()
        self.saved.append(nip)

    async def holds_kompetensi(self, nip: str, levels: dict[str, int], *, tahun: int | None = None) -> bool:
        self.read_back.append(nip)
        return nip in self.saved

    async def save_potensi(self, nip: str, potensi: dict[str, float]) -> None:
        raise AssertionError("no potential in these results")

    async def holds_potensi(self, nip: str, potensi: dict[str, float]) -> bool:
        raise AssertionError("no potential in these results")


@pytest.fixture
def store(tmp_path: Path, store_cases: Any) -> ResultsStore:
    s = ResultsStore(f"sqlite:///{tmp_path / 'r.db'}")
    s.create_schema()
    s.write_batch([store_cases.scored(n, 1) for n in NIPS])
    return s


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC) + timedelta(seconds=5)  # just after the writes: every push is due

    def __call__(self) -> datetime:
        return self.at


def outbox(store: ResultsStore, store_cases: Any) -> dict[str, dict[str, Any]]:
    return {r["nip"]: r for r in store_cases.snapshot(store)["siasn_outbox"]}


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def test_a_stop_finishes_the_push_in_flight_and_hands_the_rest_back(store: ResultsStore, store_cases: Any) -> None:
    clock, fake = Clock(), FakeSiasn()
    first = OutboxPusher(store, fake, batch=5, now=clock)

    async def scenario() -> PusherLoop:
        stop = asyncio.Event()
        fake.gate = asyncio.Event()
        loop = PusherLoop(first, stop=stop, sleep=no_sleep)
        running = asyncio.ensure_future(loop.run())
        await fake.entered.wait()  # the first push is with SI ASN
        stop.set()  # SIGTERM
        await asyncio.sleep(0.01)
        assert not running.done()  # it waits for the push in flight
        fake.gate.set()
        await asyncio.wait_for(running, 5)
        return loop

    loop = asyncio.run(scenario())
    assert len(fake.saved) == 1 and loop.released == 4
    rows = outbox(store, store_cases)
    assert rows[fake.saved[0]]["status"] == "delivered"
    rest = [r for n, r in rows.items() if n not in fake.saved]
    assert all(r["status"] == "pending" and r["claimed_until"] is None and r["attempts"] == 0 for r in rest)
    # another pusher takes them at once (no lease to wait out) and, as nobody sent them, saves without reading back
    fake.gate = None
    second = OutboxPusher(store, fake, batch=5, now=clock)
    assert asyncio.run(second.push_once()) == 4
    assert sorted(fake.saved) == sorted(NIPS) and fake.read_back == []
    assert outbox_status(store, clock.at)["delivered"] == 5


def test_a_push_stuck_past_the_grace_is_left_to_its_lease_and_read_back(store: ResultsStore,
                                                                        store_cases: Any) -> None:
    clock, fake = Clock(), FakeSiasn()
    pusher = OutboxPusher(store, fake, batch=5, now=clock)

    async def scenario() -> None:
        stop = asyncio.Event()
        fake.gate = asyncio.Event()  # never let through: SI ASN hangs
        loop = PusherLoop(pusher, stop=stop, grace_s=0.05, sleep=no_sleep)
        running = asyncio.ensure_future(loop.run())
        await fake.entered.wait()
        stop.set()
        await asyncio.wait_for(running, 5)
        assert loop.released == 4

    asyncio.run(scenario())
    rows = outbox(store, store_cases)
    stuck = [r for r in rows.values() if r["claimed_until"] is not None]
    assert len(stuck) == 1 and stuck[0]["status"] == "pending"  # its claim stands: SI ASN may have saved it
    fake.gate = None
    clock.at += timedelta(seconds=pusher.lease.total_seconds() + 1)  # the lease runs out
    asyncio.run(OutboxPusher(store, fake, batch=5, now=clock).push_once())
    assert stuck[0]["nip"] in fake.read_back and sorted(fake.saved) == sorted(NIPS)


def test_a_claim_past_half_its_lease_is_handed_back_unsent(store: ResultsStore, store_cases: Any) -> None:
    """SI ASN so slow that the batch outlives half its lease: the rest is released, never sent late."""
    clock, fake = Clock(), FakeSiasn()
    pusher = OutboxPusher(store, fake, batch=5, lease_s=120, now=clock)

    def slow(_nip: str) -> None:
        clock.at += timedelta(seconds=25)  # each save takes 25 s: the third starts 50 s in, the fourth 75 s

    fake.on_save = slow

    async def one_round() -> tuple[int, int]:
        loop = PusherLoop(pusher, stop=asyncio.Event(), sleep=no_sleep)
        return await loop.round(), loop.released

    assert asyncio.run(one_round()) == (5, 2)
    rows = outbox(store, store_cases)
    assert len(fake.saved) == 3 and {rows[n]["status"] for n in fake.saved} == {"delivered"}
    assert [r["claimed_until"] for n, r in rows.items() if n not in fake.saved] == [None, None]


def test_release_hands_back_only_live_claims_and_keeps_the_read_back_of_an_old_one(
        store: ResultsStore, store_cases: Any) -> None:
    clock = Clock()
    pusher = OutboxPusher(store, FakeSiasn(), batch=2, lease_s=120, now=clock)
    crashed = pusher.claim()  # a pusher claims two and dies
    clock.at += timedelta(seconds=121)
    taken = [r for r in pusher.claim() if r["was_claimed"]]  # its claims, taken over after the lease
    assert {r["nip"] for r in taken} == {r["nip"] for r in crashed}
    assert release(store, taken, clock.at) == 2
    rows = outbox(store, store_cases)
    for r in taken:  # ended, not cleared: the next pusher reads it back before saving
        ended = datetime.fromisoformat(str(rows[r["nip"]]["claimed_until"])).replace(tzinfo=UTC)
        assert ended == clock.at
    clock.at += timedelta(seconds=1)
    again = pusher.claim()
    assert {r["nip"] for r in again if r["was_claimed"]} == {r["nip"] for r in crashed}
    # a claim whose lease is over may be someone else's by now: never released
    clock.at += timedelta(seconds=500)
    assert release(store, again, clock.at) == 0


def test_a_database_outage_is_waited_out_and_said_once(store: ResultsStore, store_cases: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    clock, fake = Clock(), FakeSiasn()
    pusher = OutboxPusher(store, fake, batch=5, now=clock)
    real_claim, failures = pusher.claim, [3]
    waits: list[float] = []

    def claim() -> list[dict[str, Any]]:
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))
        return real_claim()

    pusher.claim = claim  # type: ignore[method-assign]

    async def scenario() -> None:
        stop = asyncio.Event()

        async def sleep(seconds: float) -> None:
            waits.append(seconds)
            if len(fake.saved) == 5:
                stop.set()
            await asyncio.sleep(0)

        await PusherLoop(pusher, stop=stop, sleep=sleep).run()

    caplog.set_level(logging.WARNING, logger="cact.siasn")
    asyncio.run(scenario())
    assert sorted(fake.saved) == sorted(NIPS)
    assert waits[:3] == [pytest.approx(w, rel=0.5) for w in (0.5, 1.0, 2.0)] and all(w > 0 for w in waits[:3])
    said = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in said) == 1 and sum("reachable again" in m for m in said) == 1


def test_anything_else_stops_the_pusher(store: ResultsStore) -> None:
    pusher = OutboxPusher(store, FakeSiasn(), now=Clock())

    def broken() -> list[dict[str, Any]]:
        raise KeyError("a bug")

    pusher.claim = broken  # type: ignore[method-assign]
    with pytest.raises(KeyError):
        asyncio.run(PusherLoop(pusher, stop=asyncio.Event(), sleep=no_sleep).run())
