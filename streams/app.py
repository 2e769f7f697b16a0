"""The Faust application: topics, tables, the ``process`` agent, the timers, and the wiring of the pieces.

Everything here is wiring; each rule lives in a module of its own, unit-tested without Faust:

* the intake (decode → unpack → handle → dead letters): streams/intake.py;
* when an input record may be acknowledged, and the crash-only exits: streams/commit.py;
* the wall-clock fallback and the silent-lab watch: streams/wall_clock.py;
* the pages and /metrics: streams/pages.py, streams/web_auth.py; the metrics: streams/metrics.py;
* what Faust needs corrected: streams/faust_fixes.py; a broker that lost its data: streams/broker_watch.py.

The results store is none of the worker's business: the composition root (cact/worker.py) hands
:func:`create_app` the store's views for the pages, the background services (the in-process sink, the SI ASN
pusher) and the registry to count on, so this package imports no sink and a process can build two apps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from schemas import topics
from schemas.accreditation import AccreditationRegistry
from schemas.blueprint import BlueprintRegistry
from schemas.events import Event
from schemas.settings import Settings
from streams import faust_fixes
from streams.broker_watch import BrokerWatch, marks_path
from streams.commit import EXIT_CRASH, Committer, exit_without_ack, halt, run_batch, to_completion
from streams.intake import Chunk, Intake
from streams.kafka import WatchedEnds, faust_broker_kwargs
from streams.lag import Freshness, LagWatch
from streams.metrics import ConsumerLagCollector, WorkerMetrics
from streams.pages import OperatorData, OperatorViews, add_pages
from streams.processor import AttendancePolicy, LabTrust, SessionProcessor, StateLimits, held_events
from streams.scoring import ScoringPolicy
from streams.state import TableOverlay
from streams.wall_clock import LabActivity, WallClockFallback, is_scheduled

log = logging.getLogger("cact.worker")
#: How often the worker samples its consumer lag (the page polls every 2 s).
LAG_SAMPLE_SECONDS = 1.0

#: Faust's built-in pages, all off (faust/web/base.py BLUEPRINT_FLAGS); with stats off, "/" is Faust's
#: {"status": "OK"} index.
FAUST_PAGES_OFF: dict[str, Any] = {"web_tables_enabled": False, "web_router_enabled": False,
                                   "web_stats_enabled": False, "web_graph_enabled": False,
                                   "web_metrics_enabled": False}


@dataclass(frozen=True)
class Service:
    """A background task the composition root runs inside the worker (the in-process sink, the SI ASN pusher).

    ``crash``: the message of a crash-only service: if it stops on an unexpected error the worker exits (70)
    without acknowledging, rather than stay up without it. Without one, Faust logs the error and goes on."""

    name: str
    run: Callable[[], Awaitable[None]]
    crash: str | None = None


def _no_collectors(data: OperatorData) -> Iterable[Collector]:
    return ()


def create_app(settings: Settings, *, views: OperatorViews, registry: CollectorRegistry,
               services: Sequence[Service] = (),
               collectors: Callable[[OperatorData], Iterable[Collector]] = _no_collectors) -> faust.App:
    """The worker's Faust app; ``collectors(data)`` are the store-backed collectors to add to ``registry``."""
    faust_fixes.install(fetch_max_wait_ms=settings.fetch_max_wait_ms, settings=settings)
    metrics = WorkerMetrics(registry)
    blueprints = {"current": BlueprintRegistry.from_settings(settings)}
    policy = ScoringPolicy.load(settings.scoring_policy)
    accreditation = AccreditationRegistry.from_settings(settings)
    attendance = AttendancePolicy(late_admitted=settings.late_checkin_admitted)
    limits = StateLimits(unscheduled_sessions=settings.unscheduled_sessions_max,
                         unexpected_participants=settings.unexpected_participants_max,
                         held_events=settings.held_events_max)
    trust = LabTrust(before_start=timedelta(hours=settings.lab_time_before_start_hours),
                     after_end=timedelta(hours=settings.lab_time_after_end_hours))

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
        # A send the broker does not acknowledge in this time fails, and the worker stops without acknowledging
        # its input (crash-only), instead of waiting out Faust's 20-minute default with the process up.
        producer_request_timeout=settings.produce_timeout_seconds,
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
        table_standby_replicas=settings.table_standby_replicas,
        # web_host is only the name the worker advertises; web_bind is where it listens. Faust's own pages
        # are off: /table/ serves table data (participants' names, NIPs, answers), /router/ the cluster's
        # layout, the stats and graph pages the worker's internals (docs/operations.md, "Web surface").
        web_host=settings.worker_web_host,
        web_bind=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
        **FAUST_PAGES_OFF,
        # Settings come from Settings alone: Faust would otherwise let its own environment variables (WEB_BIND,
        # WEB_PORT, APP_WEB_TABLES_ENABLED, BROKER_URL, ...) override these, e.g. a Kubernetes service named
        # "web" sets WEB_PORT in every pod.
        env={},
    )

    inputs = app.topic(*(t.name for t in topics.INPUT_TOPICS), key_serializer="raw", value_serializer="raw")
    sessions = app.Table("cact-sessions", partitions=settings.topic_partitions)
    participants = app.Table("cact-participants", partitions=settings.topic_partitions)
    # strict: an end not confirmed by a fetch may be Tansu's short answer, which would look like a loss
    ends = WatchedEnds(settings, strict=True, timeout=15)
    watch = BrokerWatch(marks_path(settings), ends, metrics=metrics)

    @app.on_before_shutdown.connect
    async def close_ends(app: faust.App, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await ends.close()

    lag_watch = LagWatch(t.name for t in topics.INPUT_TOPICS)  # the freshness line and cact_consumer_lag_messages
    activity = LabActivity()

    def on_lab_event(event: Event, chunk: Chunk) -> None:
        """An accepted lab event was judged to come from its session's hosting lab (streams/processor.py)."""
        if not is_scheduled(chunk.sessions.get(event.key())):
            return  # held until the schedule arrives: not yet known to be the host's
        if not activity.heard(event.key(), event.lab_id):
            metrics.labs_not_tracked.inc()

    # The participants' records, nearly all of the state's memory, are kept as their changelog bytes (a RocksDB
    # store encodes what it is given itself). The sessions' stay records: they are small, and the wall-clock
    # fallback and the held-events gauge below read that table in place.
    in_memory = settings.table_store.startswith("memory:")

    def new_chunk() -> Chunk:
        overlays = TableOverlay(sessions, keep_bytes=False), TableOverlay(participants, keep_bytes=in_memory)
        processor = SessionProcessor(blueprints["current"], policy, *overlays, attendance,
                                     reload=blueprints["current"].reload, limits=limits, trust=trust,
                                     accreditation=accreditation)
        return Chunk(processor, *overlays)

    intake = Intake(new_chunk, max_message_bytes=settings.max_message_bytes, on_lab_event=on_lab_event)

    def acknowledged(chunk: Chunk, written: int) -> None:
        """Step 3 of the commit protocol (streams/commit.py): outputs and state are on the broker."""
        blueprints["current"] = chunk.processor.registry  # keeps a key correction loaded by a rescore
        metrics.chunk_committed(written=written, accepted=chunk.accepted, emitted=(o.event_type for o in chunk.out),
                                deadletters=chunk.deadletters)
        for record in chunk.records:
            msg = record.message
            watch.processed(msg.topic, msg.partition, msg.offset)
            lag_watch.processed(msg.topic, msg.partition, msg.offset, msg.timestamp)
        intake.forget_parked()
        for lab_id, seen in activity.labs.items():
            metrics.lab_last_event.labels(lab_id=lab_id).set(seen)
        metrics.batch_seconds.observe(time.perf_counter() - chunk.started)

    committer = Committer(lambda: app.producer, acknowledged, latency=metrics.event_latency.observe)

    @app.agent(inputs)
    async def process(stream: faust.StreamT) -> None:
        checked = False
        faust_fixes.quiet_batch_timer(stream)  # no 50 ms wake-ups while idle (streams/faust_fixes.py, point 6)
        # take_events is Stream's, and StreamT (the type Faust's agent decorator asks for) does not declare it
        batches = stream.take_events(settings.batch_max, within=settings.batch_seconds)  # type: ignore[attr-defined]
        async for batch in batches:
            if not checked:  # before the first batch: a worker restarted after a broker loss must not go on
                await watch.check()
                checked = True
            if watch.lost:
                await halt(watch.message)
            await to_completion(handle_batch(batch))

    async def handle_batch(batch: Sequence[EventT]) -> None:
        await run_batch(batch, intake, chunk_events=settings.chunk_events, commit=committer.commit)

    @app.timer(interval=settings.broker_check_seconds)
    async def broker_check() -> None:
        """Save the broker marks, look for a broker that lost them, and report the state's size."""
        try:
            watch.save()
            await watch.check()
            metrics.state_keys.labels(table="sessions").set(len(sessions))
            metrics.state_keys.labels(table="participants").set(len(participants))
            metrics.held_events.set(held_events(sessions, map(str, range(settings.topic_partitions))))
        except Exception:  # a failed look must not stop the worker: the next tick tries again
            log.exception("broker check failed")

    fallback = WallClockFallback(activity, lag_s=settings.wall_clock_lag_seconds, send=committer.send)

    @app.timer(interval=settings.window_check_seconds)
    async def wall_clock_fallback() -> None:
        """Close check-in windows of sessions whose lab went silent, so their no-shows are still declared."""
        try:
            if not watch.lost:
                await fallback.tick(list(sessions.items()))
        except Exception:  # a failed look must not stop the worker: the next tick tries again
            log.exception("wall-clock fallback failed")

    @app.timer(interval=LAG_SAMPLE_SECONDS)
    async def consumer_lag() -> None:
        """Sample how far behind its input partitions this worker is (streams/lag.py)."""
        try:
            await lag_watch.sample(app.consumer)
        except Exception:  # a failed look must not stop the worker: the next tick tries again
            log.exception("consumer lag sample failed")

    def freshness() -> dict[str, Any]:
        sample = lag_watch.latest()
        return (sample or Freshness(time.time(), ())).to_json()

    data = OperatorData(views, settings, activity)
    add_pages(app, settings=settings, data=data, freshness=freshness, registry=registry,
              login_failures=metrics.login_failures)
    registry.register(ConsumerLagCollector(lag_watch.latest))
    for collector in collectors(data):
        registry.register(collector)
    for service in services:
        app.task(_task(service))
    return app


def _task(service: Service) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        if service.crash is None:
            await service.run()
            return
        try:
            await service.run()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - crash-only: a dead service must not leave a worker up
            exit_without_ack(EXIT_CRASH, service.crash, exc)

    run.__name__ = run.__qualname__ = service.name
    return run
