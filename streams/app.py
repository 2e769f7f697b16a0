"""The Faust application: topics, tables and two thin agents around :class:`SessionProcessor`.

- ``process`` reads the schedule and lab topics (co-partitioned by session), applies each event to the
  per-session and per-participant tables, and emits results, attendance and dead letters;
- the ``sink`` task writes the output topics to the results store in batches and commits after each write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import generate_latest

from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Reason, Rejected, decode_event
from schemas.events import Event
from schemas.settings import Settings
from streams import metrics
from streams.deadletter import dead_letter
from streams.kafka import faust_broker_kwargs
from streams.processor import AttendancePolicy, SessionProcessor
from streams.scoring import ScoringPolicy
from streams.state import TableOverlay

log = logging.getLogger("cact.worker")


def create_app(settings: Settings) -> faust.App:
    blueprints = {"current": BlueprintRegistry.from_dir(settings.blueprint_dir)}
    policy = ScoringPolicy.load(settings.scoring_policy)
    attendance = AttendancePolicy(late_admitted=settings.late_checkin_admitted)

    app = faust.App(
        settings.app_id,
        **faust_broker_kwargs(settings),
        store=settings.table_store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        # Tables hold JSON (str keys, dict values). Faust's recovery decodes changelogs with these app-wide
        # defaults whatever a table's schema says, so they must be the tables' codec; topics say "raw" explicitly.
        key_serializer="json",
        value_serializer="json",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee="at_least_once",
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.group_session_timeout_seconds,
        broker_rebalance_timeout=settings.group_rebalance_timeout_seconds,
        broker_heartbeat_interval=settings.group_heartbeat_seconds,
        table_standby_replicas=0,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
    )

    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*(t.name for t in topics.INPUT_TOPICS), **raw)
    outputs = {t.name: app.topic(t.name, **raw) for t in (*topics.OUTPUT_TOPICS, topics.SCHEDULE)}
    sessions = app.Table("cact-sessions", partitions=settings.topic_partitions)
    participants = app.Table("cact-participants", partitions=settings.topic_partitions)

    async def handle_batch(batch: Sequence[EventT]) -> None:
        started = time.perf_counter()
        session_view, participant_view = TableOverlay(sessions), TableOverlay(participants)
        processor = SessionProcessor(blueprints["current"], policy, session_view, participant_view, attendance,
                                     reload=blueprints["current"].reload)
        out: list[Event] = []
        for event in batch:
            msg = event.message
            session_view.event = participant_view.event = event
            try:
                decoded = decode_event(msg.value, topic=msg.topic)
                out.extend(processor.handle(decoded))
                metrics.EVENTS_IN.labels(event_type=decoded.event_type).inc()
            except Rejected as exc:
                out.append(dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                                       value=msg.value, timestamp=msg.timestamp, reason=exc.reason, detail=exc.detail))
            except Exception as exc:  # a bug must not stop the lab's other sessions: park the message
                log.exception("processing failed at %s[%s]@%s", msg.topic, msg.partition, msg.offset)
                out.append(dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                                       value=msg.value, timestamp=msg.timestamp, reason=Reason.PROCESSING_ERROR,
                                       detail=f"{type(exc).__name__}: {exc}"))
        # Outputs first, acknowledged by the broker; only then the new state (see streams/state.py).
        pending = [await outputs[o.topic.name].send(key=o.key().encode(), value=o.to_bytes(), force=True) for o in out]
        if pending:
            await asyncio.gather(*pending)
        for o in out:
            metrics.EMITTED.labels(event_type=o.event_type).inc()
        blueprints["current"] = processor.registry  # keeps a key correction loaded by a rescore
        written = session_view.flush() + participant_view.flush()
        metrics.STATE_WRITES.inc(written)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    @app.agent(inputs)
    async def process(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            await handle_batch(batch)

    @app.task
    async def sink() -> None:
        from sinks.runner import run_sink  # the store is optional for a worker that only processes

        if settings.sink_in_worker:
            await run_sink(settings)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type="text/plain")

    return app


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run a worker until SIGINT/SIGTERM; Faust handles signals, rebalancing and table recovery."""
    from faust.worker import Worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
