"""The sink against a real database outage: PostgreSQL behind a TCP proxy that the test cuts and restores.

Events flow through the embedded broker the whole time. The database is down when the sink starts (it must
wait for its migration) and goes away again in the middle of the stream, killing the sink's open connection.
What must hold: the sink never exits, commits no offset while the database is away, and afterwards every
row is in the store exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from bench.faults.tcp_proxy import TcpProxy
from schemas.events import Event
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from sinks import models as m
from sinks.runner import SINK_TOPICS, Backoff, run_sink, sink_group
from streams.kafka import group_lag
from support.store_scenarios import nip

T0 = datetime(2026, 11, 3, 8, 0, tzinfo=timezone(timedelta(hours=7)))


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


async def committed(settings: Settings) -> dict[TopicPartition, int | None]:
    """The sink group's committed offsets, read by a consumer that joins nothing (see streams/kafka.py)."""
    consumer = AIOKafkaConsumer(group_id=sink_group(settings), enable_auto_commit=False, **client_kwargs(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in SINK_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        return {tp: await consumer.committed(tp) for tp in tps}
    finally:
        await consumer.stop()


@pytest.mark.broker
@pytest.mark.postgres
def test_the_sink_waits_out_a_database_outage_while_events_flow(pipeline_kafka: Settings, pg_database: str,
                                                                 store_cases: Any) -> None:
    asyncio.run(_outage(pipeline_kafka, pg_database, store_cases))


async def _outage(base: Settings, pg_database: str, cases: Any) -> None:
    n = 150
    events: list[Event] = []
    for i in range(1, n + 1):
        session = f"S-JKT-{i % 7:02d}"
        events += [cases.scored(nip(i), session=session), cases.attendance(nip(i), "checked_in", T0, session=session)]
    events += [cases.deadletter(offset) for offset in range(30)]  # random event ids: deduplicated by position
    direct = make_url(pg_database)
    db = create_engine(pg_database)

    async def count(model: type[m.Base]) -> int:
        def q() -> int:
            try:
                with db.connect() as conn:
                    return conn.scalar(select(func.count()).select_from(model)) or 0
            except ProgrammingError:  # the sink has not migrated the store yet
                return 0
        return await asyncio.to_thread(q)

    with TcpProxy(direct.host or "127.0.0.1", direct.port or 5432, lifetime_s=300) as proxy:
        proxy.cut()  # the database is down when the sink starts
        url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = base.model_copy(update={"database_url": url, "sink_batch_size": 20, "sink_batch_seconds": 0.2})
        stop = asyncio.Event()
        retries = metric("cact_sink_db_retries_total")
        sink = asyncio.create_task(run_sink(settings, stop, backoff=Backoff(0.05, 0.5)))
        producer = AIOKafkaProducer(**client_kwargs(settings))
        await producer.start()

        async def send(chunk: list[Event]) -> None:
            await asyncio.gather(*[await producer.send(e.topic.name, e.to_bytes(), key=e.key().encode())
                                   for e in chunk])

        try:
            # 1. Down at start: the sink waits for its migration; nothing is committed.
            await send(events[:60])
            await until("the sink retrying its migration", lambda: _true(metric("cact_sink_db_retries_total")
                                                                          - retries >= 3))
            assert set((await committed(settings)).values()) == {None}
            assert not sink.done()
            proxy.restore()
            await until("the first 60 events stored", lambda: _sum_is(count, 60 // 2, 60 // 2))

            # 2. Down while events flow: the open connection is reset mid-stream.
            rest = events[60:]
            flowing = asyncio.create_task(_trickle(send, rest, chunk=15, pause=0.1))
            await until("a few more results stored", lambda: _more_than(count(m.Result), 45))
            proxy.cut()
            await until("the sink noticing the outage", lambda: _true(metric("cact_sink_db_up") == 0.0))
            at_cut = await committed(settings)
            retries = metric("cact_sink_db_retries_total")
            await flowing  # the rest is produced while the database is away
            await until("the sink retrying", lambda: _true(metric("cact_sink_db_retries_total") - retries >= 5))
            assert await committed(settings) == at_cut, "offsets moved while the database was away"
            assert await group_lag(settings, sink_group(settings), SINK_TOPICS) > 0
            assert not sink.done(), "the sink exited during the outage"
            assert proxy.stats.reset >= 1  # the cut really killed a live connection
            proxy.restore()

            # 3. Back: everything arrives, once.
            await until("the sink catching up", lambda: _lag_zero(settings), timeout=90)
            assert not sink.done() and metric("cact_sink_db_up") == 1.0
        finally:
            stop.set()
            await producer.stop()
            await asyncio.wait_for(sink, 30)
    with db.connect() as conn:
        results = sorted(conn.execute(select(m.Result.nip, m.Result.result_version)).all())
        attendance = sorted(conn.execute(select(m.Attendance.session_id, m.Attendance.nip)).all())
        deadletters = conn.scalar(select(func.count()).select_from(m.DeadLetter))
        outbox = conn.scalar(select(func.count()).select_from(m.SiasnOutbox))
        quarantined = conn.scalar(select(func.count()).select_from(m.QuarantinedRow))
    db.dispose()
    assert results == sorted((nip(i), 1) for i in range(1, n + 1))
    assert attendance == sorted((f"S-JKT-{i % 7:02d}", nip(i)) for i in range(1, n + 1))
    assert (deadletters, outbox, quarantined) == (30, n, 0)


async def _true(value: bool) -> bool:
    return value


async def _more_than(n: Awaitable[int], floor: int) -> bool:
    return await n > floor


async def _sum_is(count: Callable[[type[m.Base]], Awaitable[int]], results: int, attendance: int) -> bool:
    return (await count(m.Result), await count(m.Attendance)) == (results, attendance)


async def _lag_zero(settings: Settings) -> bool:
    return await group_lag(settings, sink_group(settings), SINK_TOPICS) == 0


async def _trickle(send: Callable[[list[Event]], Awaitable[None]], events: list[Event], *, chunk: int,
                   pause: float) -> None:
    for i in range(0, len(events), chunk):
        await send(events[i:i + chunk])
        await asyncio.sleep(pause)


@pytest.mark.postgres
def test_the_proxy_forwards_refuses_when_cut_and_forwards_again() -> None:
    """The fault injector itself: a cut resets live connections and refuses new ones until restored."""
    import psycopg

    with TcpProxy("127.0.0.1", 5432, lifetime_s=60) as proxy:
        dsn = f"host=127.0.0.1 port={proxy.port} user=postgres dbname=test connect_timeout=5"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            proxy.cut()
            with pytest.raises(psycopg.OperationalError, match="server closed the connection"):
                conn.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="refused"):
            psycopg.connect(dsn)
        proxy.restore()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 2").fetchone() == (2,)
        assert (proxy.stats.accepted, proxy.stats.reset, proxy.stats.cuts) == (2, 1, 1)
