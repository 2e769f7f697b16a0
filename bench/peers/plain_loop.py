"""The plain-aiokafka peer: one consume loop, the project's rules over dicts, the store written in the loop.

What a competent user writes without a stream framework: fetch a batch, run every record through the
project's decode and ``SessionProcessor``, write the batch's outputs with ``ResultsStore.write_batch`` (one
transaction) and produce the few outputs that are input again (a reschedule's arrival side) back to their
topic, then commit the offsets: at-least-once with idempotent writes, as the project. What it does not
do, and the project must: its state lives in two dicts only, so a crash or a rebalance loses it (the day would
have to be replayed from the start), and there is no output topic between scoring and the store, so other
consumers of results (the SI ASN pusher, a second store) have nothing to read.

``python -m bench.peers.plain_loop``: settings from the environment, as ``cact worker``; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.peers import FED_BACK_TOPICS, apply_message
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.events import Event
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from sinks.store import ResultsStore
from streams.processor import SessionProcessor
from streams.scoring import ScoringPolicy


def group(settings: Settings) -> str:
    return f"{settings.app_id}-plain"


async def run(settings: Settings, stop: asyncio.Event) -> None:
    store = ResultsStore(settings.database_url)
    store.create_schema()
    processor = SessionProcessor(BlueprintRegistry.from_settings(settings),
                                 ScoringPolicy.load(settings.scoring_policy), {}, {})
    consumer = AIOKafkaConsumer(*(t.name for t in topics.INPUT_TOPICS), group_id=group(settings),
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, **client_kwargs(settings))
    producer = AIOKafkaProducer(acks="all", **client_kwargs(settings))
    await consumer.start()
    await producer.start()
    print("ready", file=sys.stderr, flush=True)
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_max)
            if not fetched:
                continue
            outputs: list[Event] = []
            for tp, records in fetched.items():
                for r in records:
                    outputs.extend(apply_message(processor, tp.topic, tp.partition, r.offset, r.key, r.value,
                                                 r.timestamp / 1000 if r.timestamp is not None else None))
            again = [o for o in outputs if o.topic.name in FED_BACK_TOPICS]
            if again:
                await asyncio.gather(*[await producer.send(o.topic.name, key=o.key().encode(), value=o.to_bytes())
                                       for o in again])
            if len(again) < len(outputs):
                store.write_batch([o for o in outputs if o.topic.name not in FED_BACK_TOPICS])
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
        store.dispose()


def main() -> None:
    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(Settings(), stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
