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
    outputs = {t.name: app.topic(t.name, **raw) for t in topics.ALL_TOPICS}
    sessions = app.Table("cact-sessions", partitions=settings.topic_partitions)
    participants = app.Table("cact-participants", partitions=settings.topic_partitions)

    # Wall-clock time each lab and each session was last heard from (this worker's partitions): for the
    # silent-lab marker and the wall-clock fallback. Memory only: after a restart everything counts as just heard.
    lab_seen: dict[str, float] = {}
    session_seen: dict[str, float] = {}
    started_at = time.time()

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
                if msg.topic == topics.LAB.name and decoded.lab_id != PIPELINE_ID:
                    lab_seen[decoded.lab_id] = session_seen[decoded.key()] = time.time()
                    metrics.LAB_LAST_EVENT.labels(lab_id=decoded.lab_id).set(lab_seen[decoded.lab_id])
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
                await outputs[topics.LAB.name].send(key=session_id.encode(), value=event.to_bytes(), force=True)
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
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
