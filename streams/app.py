"""The Faust application: topics, tables and two thin agents around :class:`SessionProcessor`.

- ``process`` reads the schedule and lab topics (co-partitioned by session), applies each event to the
  per-session and per-participant tables, and emits results, attendance and dead letters;
- the ``sink`` task writes the output topics to the results store in batches and commits after each write.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import generate_latest

from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.decode import Reason, Rejected, at_index, decode_event, unpack
from schemas.events import Event
from schemas.settings import Settings
from streams import faust_fixes, metrics
from streams.deadletter import dead_letter
from streams.kafka import faust_broker_kwargs
from streams.processor import AttendancePolicy, SessionProcessor
from streams.scoring import ScoringPolicy
from streams.state import TableOverlay
from sinks.attendance_view import attendance_overview
from sinks.store import ResultsStore
from schemas.events import CheckinWindowClosed, derived_id, new_event
from sinks.siasn_push import outbox_status
from streams.metrics import AttendanceCollector, OutboxCollector
from prometheus_client import REGISTRY
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("cact.worker")
PIPELINE_ID = "cact-pipeline"
OPERATOR_PAGE = Path(__file__).parent / "web" / "operator.html"


def create_app(settings: Settings) -> faust.App:
    faust_fixes.install(fetch_max_wait_ms=settings.fetch_max_wait_ms)
    blueprints = {"current": BlueprintRegistry.from_dir(settings.blueprint_dir)}
    view_store = ResultsStore(settings.database_url)
    view_store.create_schema()  # the operator page may be opened before the sink has written anything
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
        # Results (~3 kB each) and state go out in large produce requests, not Faust's default 16 kB batches:
        # per-request cost dominated the producer in the profile (docs/benchmarks.md).
        producer_max_batch_size=1_000_000,
        producer_linger=0.005,
        # Messages read ahead of the agent; Faust's default (4,096) held a whole replayed day of EventBatches
        # (~300 MB) in memory at once, while 256 already keep the agent fed.
        stream_buffer_maxsize=256,
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

    inputs = app.topic(*(t.name for t in topics.INPUT_TOPICS), key_serializer="raw", value_serializer="raw")
    sessions = app.Table("cact-sessions", partitions=settings.topic_partitions)
    participants = app.Table("cact-participants", partitions=settings.topic_partitions)

    # Wall-clock time each lab and each session was last heard from (this worker's partitions): for the
    # silent-lab marker and the wall-clock fallback. Memory only: after a restart everything counts as just heard.
    lab_seen: dict[str, float] = {}
    session_seen: dict[str, float] = {}
    started_at = time.time()

    class Chunk:
        """Events processed against one private copy of the state, then emitted and written together."""

        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.sessions, self.participants = TableOverlay(sessions), TableOverlay(participants)
            self.processor = SessionProcessor(blueprints["current"], policy, self.sessions, self.participants,
                                              attendance, reload=blueprints["current"].reload)
            self.out: list[Event] = []
            self.accepted: list[str] = []  # event types, counted once per chunk
            self.events = 0

    def handle_message(chunk: Chunk, event: EventT) -> None:
        msg = event.message
        chunk.sessions.event = chunk.participants.event = event
        failures: list[tuple[str, str]] = []
        try:
            for index, decoded in unpack(decode_event(msg.value, topic=msg.topic), topic=msg.topic):
                chunk.events += 1
                if isinstance(decoded, Rejected):
                    failures.append((decoded.reason, decoded.detail))
                    continue
                try:
                    if msg.topic == topics.LAB.name and decoded.lab_id != PIPELINE_ID:
                        lab_seen[decoded.lab_id] = session_seen[decoded.key()] = time.time()
                    chunk.out.extend(chunk.processor.handle(decoded))
                    chunk.accepted.append(decoded.event_type)
                except Rejected as exc:
                    failures.append((exc.reason, at_index(index) + exc.detail))
                except Exception as exc:  # a bug must not stop the lab's other sessions: park the event
                    log.exception("processing failed at %s[%s]@%s %s", msg.topic, msg.partition, msg.offset,
                                  at_index(index))
                    failures.append((Reason.PROCESSING_ERROR, f"{at_index(index)}{type(exc).__name__}: {exc}"))
        except Rejected as exc:
            chunk.events += 1
            failures.append((exc.reason, exc.detail))
        if failures:
            # One dead letter per source message (the store keeps one per source position); a batch's bad
            # events are all named in it, with their index, and each is counted under its own reason.
            for reason, _ in failures[1:]:
                metrics.DEADLETTERS.labels(reason=reason, source_topic=msg.topic).inc()
            chunk.out.append(dead_letter(topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
                                         value=msg.value, timestamp=msg.timestamp, reason=failures[0][0],
                                         detail="; ".join(d for _, d in failures)))

    async def send(events: Sequence[Event]) -> None:
        """Send events to their topics and wait until the broker has acknowledged them all.

        Straight to the producer: the events are bytes already, and Topic.send's channel, codec and sensor
        layers cost more per message than the send itself (docs/benchmarks.md)."""
        producer = app.producer
        pending = [await producer.send(e.topic.name, e.key().encode(), e.to_bytes(), None, None, None) for e in events]
        if pending:
            await asyncio.gather(*pending)

    async def finish(chunk: Chunk) -> None:
        # Outputs first, acknowledged by the broker; only then the new state (see streams/state.py).
        await send(chunk.out)
        metrics.count_by_event_type(metrics.EVENTS_IN, chunk.accepted)
        metrics.count_by_event_type(metrics.EMITTED, (o.event_type for o in chunk.out))
        blueprints["current"] = chunk.processor.registry  # keeps a key correction loaded by a rescore
        written = chunk.sessions.flush() + chunk.participants.flush()
        metrics.STATE_WRITES.inc(written)
        for lab_id, seen in lab_seen.items():
            metrics.LAB_LAST_EVENT.labels(lab_id=lab_id).set(seen)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - chunk.started)

    async def handle_batch(batch: Sequence[EventT]) -> None:
        """A Faust batch counts messages, and an EventBatch message holds many events: results go out, and
        state is written, every ``batch_max`` events, so the sink and memory never wait for a whole batch."""
        chunk = Chunk()
        for event in batch:
            handle_message(chunk, event)
            if chunk.events >= settings.batch_max:
                await finish(chunk)
                chunk = Chunk()
        await finish(chunk)

    @app.agent(inputs)
    async def process(stream: faust.StreamT) -> None:
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            await handle_batch(batch)

    closing: set[str] = set()

    @app.timer(interval=settings.window_check_seconds)
    async def wall_clock_fallback() -> None:
        """Close check-in windows of sessions whose lab went silent, so their no-shows are still declared."""
        try:
            await close_silent_windows()
        except Exception:  # a failed look must not stop the worker: the next tick tries again
            log.exception("wall-clock fallback failed")

    async def close_silent_windows() -> None:
        now = time.time()
        for session_id, state in list(sessions.items()):
            meta = state.get("meta")
            if not meta or state.get("window_closed") or session_id in closing:
                continue
            closes = datetime.fromisoformat(meta["checkin_closes_at"]).timestamp()
            quiet_since = session_seen.get(session_id, started_at)
            if now > closes + settings.wall_clock_lag_seconds and now - quiet_since > settings.wall_clock_lag_seconds:
                closing.add(session_id)
                event = new_event(CheckinWindowClosed, lab_id=PIPELINE_ID, occurred_at=datetime.now(UTC),
                                  event_id=derived_id("wall-clock", session_id), payload={"session_id": session_id})
                await send([event])
                log.warning("check-in window of session %s closed by the wall clock: its lab is silent", session_id)

    def overview() -> dict[str, Any]:
        return attendance_overview(view_store, threshold=settings.noshow_threshold,
                                   silent_after_s=settings.lab_silent_after_seconds, lab_last_seen=dict(lab_seen))

    @app.page("/attendance.json")
    async def attendance_json(web: Any, request: Any) -> Any:
        return web.json(await asyncio.to_thread(overview))

    @app.page("/operator")
    async def operator_page(web: Any, request: Any) -> Any:
        return web.html(OPERATOR_PAGE.read_text(encoding="utf-8"))

    REGISTRY.register(AttendanceCollector(overview))
    REGISTRY.register(OutboxCollector(lambda: outbox_status(view_store)))

    @app.task
    async def siasn_pusher() -> None:
        if not settings.siasn_push_enabled:
            return
        from sinks.siasn_client import SiasnClient, SiasnConfig, SiasnRejected, SiasnUnavailable
        from sinks.siasn_push import OutboxPusher

        async with SiasnClient(SiasnConfig.from_env()) as client:
            await OutboxPusher(view_store, client, rejected_exc=SiasnRejected, unavailable_exc=SiasnUnavailable,
                               batch=settings.siasn_push_batch, lease_s=settings.siasn_lease_seconds,
                               retry_base_s=settings.siasn_retry_base_seconds,
                               retry_max_s=settings.siasn_retry_max_seconds).run()

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
    if settings.siasn_push_enabled:  # a push without credentials must stop the worker now, not fail at each try
        from sinks.siasn_client import SiasnConfig

        SiasnConfig.from_env()
    app = create_app(settings)
    # Decoding allocates a dict per answer, so the default collector ran a full pass over every table's
    # state again and again; fewer, later collections of young objects only (docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    # Faust's start-up spinner sets the root logger to DEBUG (so it can spin on every record) and leaves it
    # there: every debug call of Faust and aiokafka then built a LogRecord, ~5% of the worker's CPU.
    worker.spinner = None
    worker.execute_from_commandline()
