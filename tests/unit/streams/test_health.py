"""The worker's probes without a broker (streams/pages.py): when /readyz says ready, what it says otherwise,
and that a hanging results store costs one query, not one per probe. Served for real, open and without
personal data, in tests/integration/streams/test_health_routes.py."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import OperationalError

from streams.pages import StoreProbe, readiness, worker_unready


@dataclass
class Recovery:
    completed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Tables:
    recovery: Recovery = field(default_factory=Recovery)


@dataclass
class FakeApp:
    """The three things of a Faust app readiness reads."""

    should_stop: bool = False
    in_recovery: bool = False
    tables: Tables = field(default_factory=Tables)


def test_ready_once_the_first_recovery_is_done_and_not_during_a_later_one() -> None:
    app = FakeApp()
    assert worker_unready(app) == "starting: joining the consumer group and recovering its tables"
    app.tables.recovery.completed.set()
    assert worker_unready(app) is None
    app.in_recovery = True  # a rebalance moved partitions here: their tables are being replayed
    assert worker_unready(app) == "recovering its tables after a rebalance"
    app.in_recovery, app.should_stop = False, True
    assert worker_unready(app) == "stopping"


def test_the_store_counts_only_when_given_and_only_after_the_worker_itself() -> None:
    app = FakeApp()
    asked: list[str] = []

    async def down() -> str | None:
        asked.append("store")
        return "results store unavailable (OperationalError)"

    assert (asyncio.run(readiness(app, down)) or "").startswith("starting")
    assert asked == []  # not asked while the worker itself is not ready
    app.tables.recovery.completed.set()
    assert asyncio.run(readiness(app, down)) == "results store unavailable (OperationalError)"
    assert asyncio.run(readiness(app, None)) is None  # CACT_SINK_IN_WORKER=false: the store is not its business


def test_the_store_probe_names_the_error_type_only() -> None:
    def refused() -> Any:
        raise OperationalError("SELECT", {}, Exception("could not connect to postgres:secret@db.internal"))

    why = asyncio.run(StoreProbe(refused)())
    assert why == "results store unavailable (OperationalError)"
    assert asyncio.run(StoreProbe(lambda: {"pending": 3})()) is None


def test_a_hanging_store_is_one_query_however_many_probes_come() -> None:
    released, calls = threading.Event(), []

    def hangs() -> None:
        calls.append(1)
        released.wait(10)

    probe = StoreProbe(hangs, timeout=0.05)

    async def probes() -> list[str | None]:
        first = await asyncio.gather(*(probe() for _ in range(5)))  # Kubernetes and a curious operator at once
        later = await asyncio.gather(*(probe() for _ in range(5)))  # the next period, the query still out
        released.set()  # the database answers at last (and asyncio.run's exit need not wait for its thread)
        return [*first, *later]

    answers = asyncio.run(probes())
    assert answers == ["results store did not answer within 0.05 s"] * 10
    assert len(calls) == 1
