"""The results-store sink: output topics → SQLAlchemy store, one transaction per batch, commit after write.

At-least-once by construction: offsets are committed only after the batch's transaction is durable, and
every write is an idempotent upsert, so a crash between the two (or a full replay) changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer

from schemas import topics
from schemas.decode import Rejected, decode_output
from schemas.events import Event
from schemas.settings import Settings
from sinks.store import ResultsStore
from streams import metrics
from streams.kafka import client_kwargs


log = logging.getLogger("cact.sink")
SINK_TOPICS = (topics.RESULTS.name, topics.ATTENDANCE.name, topics.DEADLETTER.name)


def sink_group(settings: Settings) -> str:
    return f"{settings.app_id}-sink"


async def run_sink(settings: Settings, stop: asyncio.Event | None = None) -> None:
    store = ResultsStore(settings.database_url)
    await asyncio.to_thread(store.create_schema)
    consumer = AIOKafkaConsumer(
        *SINK_TOPICS, group_id=sink_group(settings), enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,  # see streams/faust_fixes.py: a long wait is latency
        **client_kwargs(settings),
    )
    await consumer.start()
    try:
        while stop is None or not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=int(settings.sink_batch_seconds * 1000),
                                             max_records=settings.sink_batch_size)
            if not fetched:
                continue
            batch: list[Event] = []
            for tp, messages in fetched.items():
                for m in messages:
                    try:
                        batch.append(decode_output(m.value, topic=tp.topic))
                    except Rejected as exc:  # our own output: a bug, loud but not fatal
                        log.error("undecodable output at %s[%s]@%s: %s", tp.topic, tp.partition, m.offset, exc.reason)
            if batch:
                with metrics.SINK_BATCH_SECONDS.time():
                    await asyncio.to_thread(store.write_batch, batch)
                for e in batch:
                    metrics.SINK_ROWS.labels(event_type=e.event_type).inc()
                metrics.SINK_LAG.set(len(batch))
            await consumer.commit()
    finally:
        await consumer.stop()
        store.dispose() if hasattr(store, "dispose") else None
