"""The Faust application: topics, tables, the ``process`` agent around :class:`Intake`, and the worker's pages.

The commit protocol, in one sentence: an input record is acknowledged to Faust (so its offset can be
committed) only after every output it caused, its dead letter if any, and its state change are acknowledged by
the broker, in that order (``finish``). Anything unexpected stops the process without acknowledging
(``_exit_without_ack``: crash-only, a supervisor or the operator restarts it), because Faust, when an agent
raises, restarts the agent and acknowledges the batch it was in. docs/operations.md states the guarantee.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import faust
from faust.types import EventT
from prometheus_client import REGISTRY, generate_latest

from schemas import topics
from schemas.accreditation import AccreditationRegistry
from schemas.blueprint import BlueprintRegistry
from schemas.events import CheckinWindowClosed, Event, derived_id, new_event
from schemas.settings import Settings
from sinks.attendance_view import absent, attendance_overview, held_back
from sinks.siasn_push import outbox_status
from sinks.store import ResultsStore
from streams import faust_fixes, metrics, web_auth
from streams.broker_watch import BrokerWatch
from streams.intake import Chunk, Intake
from streams.kafka import end_offsets, faust_broker_kwargs
from streams.lag import Freshness, LagWatch
from streams.metrics import AttendanceCollector, ConsumerLagCollector, OutboxCollector
from streams.processor import AttendancePolicy, LabTrust, SessionProcessor, StateLimits, held_events
from streams.scoring import ScoringPolicy
from streams.state import TableOverlay

log = logging.getLogger("cact.worker")
PIPELINE_ID = "cact-pipeline"
OPERATOR_PAGE = Path(__file__).parent / "web" / "operator.html"
ABSENT_PAGE = Path(__file__).parent / "web" / "absent.html"
#: How often the worker samples its consumer lag (the page polls every 2 s).
LAG_SAMPLE_SECONDS = 1.0
#: Exit code of a worker stopped by an unexpected error (EX_SOFTWARE): nothing of its batch was acknowledged.
EXIT_CRASH = 70
#: Labs the silent-lab watch keeps (a real day has a few hundred); events from more are still processed.
LABS_TRACKED_MAX = 2000
#: How long a stopping worker lets the batch in hand finish before it exits without acknowledging it.
STOP_GRACE_SECONDS = 30.0


def _exit_without_ack(code: int, message: str, exc: BaseException | None = None) -> NoReturn:
    """Leave now, before Faust's clean-up acknowledges the batch in hand: its records are read again on restart."""
    if exc is not None:
        log.critical("%s: %s: %s", message, type(exc).__name__, exc, exc_info=exc)
    else:
        log.critical("%s", message)
    logging.shutdown()
    os._exit(code)


async def _to_completion(work: Coroutine[Any, Any, None]) -> None:
    """Run one batch so that only a finished batch is ever acknowledged.

    Faust acknowledges a ``take_events`` batch in a ``finally``, also when the agent is cancelled (a stop or a
    rebalance) or raises. So: a cancel lets the batch finish first (bounded by STOP_GRACE_SECONDS), and a
    batch that fails or cannot finish ends the process before that ``finally`` runs."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_SECONDS)
        except BaseException as exc:  # noqa: BLE001 - whatever it was, the batch is not done
            _exit_without_ack(EXIT_CRASH, "stopped in the middle of a batch; it was not acknowledged", exc)
        raise
    except BaseException as exc:  # noqa: BLE001
        _exit_without_ack(EXIT_CRASH, "the worker stopped on an unexpected error; nothing of the batch in hand "
                          "was acknowledged, it is processed again on restart", exc)


async def _halt(watch: BrokerWatch) -> NoReturn:
    """Stop processing for good, loudly, and keep serving /metrics; a stop exits without acknowledging."""
    try:
        while True:
            log.error(watch.message())
            await asyncio.sleep(60)
    except asyncio.CancelledError:
        _exit_without_ack(EXIT_CRASH, "stopped while halted on a broker loss; nothing was acknowledged")


#: Faust's built-in pages, all off (faust/web/base.py BLUEPRINT_FLAGS); with stats off, "/" is Faust's
#: {"status": "OK"} index.
FAUST_PAGES_OFF = {"web_tables_enabled": False, "web_router_enabled": False, "web_stats_enabled": False,
                   "web_graph_enabled": False, "web_metrics_enabled": False}


_COLLECTORS: list[Any] = []


def _register_collectors(*collectors: Any) -> None:
    """The latest app's collectors replace the previous app's: the registry is global, an app is not."""
    for old in _COLLECTORS:
        REGISTRY.unregister(old)
    _COLLECTORS[:] = collectors
    for new in collectors:
        REGISTRY.register(new)


def create_app(settings: Settings) -> faust.App:
    faust_fixes.install(fetch_max_wait_ms=settings.fetch_max_wait_ms, settings=settings)
    blueprints = {"current": BlueprintRegistry.from_settings(settings)}
    view_store = ResultsStore(settings.database_url)
    try:  # the operator page may be opened before the sink has written anything
        view_store.create_schema()
    except Exception as exc:  # the database is down: processing does not need it, the sink waits for it
        log.warning("results store not reachable at start (%s): the worker processes anyway; pages show it "
                    "once it is back", type(exc).__name__)
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
        table_standby_replicas=0,
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
    watch = BrokerWatch(broker_marks_path(settings), lambda tps: end_offsets(settings, tps, strict=True, timeout=15))
    lag_watch = LagWatch(t.name for t in topics.INPUT_TOPICS)  # the freshness line and cact_consumer_lag_messages

    # Wall-clock time each lab and each scheduled session was last heard from (this worker's partitions): for
    # the silent-lab marker and the wall-clock fallback. Memory only: after a restart everything counts as just
    # heard. Bounded: only scheduled sessions, and at most LABS_TRACKED_MAX labs.
    lab_seen: dict[str, float] = {}
    session_seen: dict[str, float] = {}
    started_at = time.time()

    def on_lab_event(event: Event, chunk: Chunk) -> None:
        """An accepted lab event was judged to come from its session's hosting lab (streams/processor.py)."""
        session_id = event.key()
        state = chunk.sessions.get(session_id)
        if not state or not state.get("meta"):
            return  # held until the schedule arrives: not yet known to be the host's
        now = session_seen[session_id] = time.time()
        if event.lab_id in lab_seen or len(lab_seen) < LABS_TRACKED_MAX:
            lab_seen[event.lab_id] = now
        else:
            metrics.LABS_NOT_TRACKED.inc()

    def new_chunk() -> Chunk:
        overlays = TableOverlay(sessions), TableOverlay(participants)
        processor = SessionProcessor(blueprints["current"], policy, *overlays, attendance,
                                     reload=blueprints["current"].reload, limits=limits, trust=trust,
                                     accreditation=accreditation)
        return Chunk(processor, *overlays)

    intake = Intake(new_chunk, max_message_bytes=settings.max_message_bytes, on_lab_event=on_lab_event)

    async def send(events: Sequence[Event]) -> None:
        """Send events to their topics and wait until the broker has acknowledged them all.

        Straight to the producer: the events are bytes already, and Topic.send's channel, codec and sensor
        layers cost more per message than the send itself (docs/benchmarks.md)."""
        producer = app.producer
        pending = [await producer.send(e.topic.name, e.key().encode(), e.to_bytes(), None, None, None) for e in events]
        if pending:
            await asyncio.gather(*pending)

    async def finish(chunk: Chunk) -> None:
        """The commit protocol's order: outputs and dead letters acknowledged, then the new state acknowledged
        (streams/state.py), then the counters and the broker marks; the caller acknowledges the records last."""
        await send(chunk.out)
        blueprints["current"] = chunk.processor.registry  # keeps a key correction loaded by a rescore
        written = sum(await asyncio.gather(chunk.sessions.flush(app.producer), chunk.participants.flush(app.producer)))
        metrics.STATE_WRITES.inc(written)
        metrics.count_by_event_type(metrics.EVENTS_IN, chunk.accepted)
        metrics.count_by_event_type(metrics.EMITTED, (o.event_type for o in chunk.out))
        for reason, topic in chunk.deadletters:
            metrics.DEADLETTERS.labels(reason=reason, source_topic=topic).inc()
        for record in chunk.records:
            msg = record.message
            watch.processed(msg.topic, msg.partition, msg.offset)
            lag_watch.processed(msg.topic, msg.partition, msg.offset, msg.timestamp)
        intake.forget_parked()
        for lab_id, seen in lab_seen.items():
            metrics.LAB_LAST_EVENT.labels(lab_id=lab_id).set(seen)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - chunk.started)

    async def handle_batch(batch: Sequence[EventT]) -> None:
        """A Faust batch counts messages, and an EventBatch message holds many events: results go out, and
        state is written, every ``batch_max`` events, so the sink and memory never wait for a whole batch."""
        chunk = new_chunk()
        for record in batch:
            chunk = intake.take(chunk, record)
            if chunk.events >= settings.batch_max:
                await finish(chunk)
                chunk = new_chunk()
        await finish(chunk)

    @app.agent(inputs)
    async def process(stream: faust.StreamT) -> None:
        checked = False
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            if not checked:  # before the first batch: a worker restarted after a broker loss must not go on
                await watch.check()
                checked = True
            if watch.lost:
                await _halt(watch)
            await _to_completion(handle_batch(batch))

    @app.timer(interval=settings.broker_check_seconds)
    async def broker_check() -> None:
        """Save the broker marks, look for a broker that lost them, and report the state's size."""
        try:
            watch.save()
            await watch.check()
            metrics.STATE_KEYS.labels(table="sessions").set(len(sessions))
            metrics.STATE_KEYS.labels(table="participants").set(len(participants))
            metrics.HELD_EVENTS.set(held_events(sessions, map(str, range(settings.topic_partitions))))
        except Exception:  # a failed look must not stop the worker: the next tick tries again
            log.exception("broker check failed")

    closing: set[str] = set()

    @app.timer(interval=settings.window_check_seconds)
    async def wall_clock_fallback() -> None:
        """Close check-in windows of sessions whose lab went silent, so their no-shows are still declared."""
        try:
            await close_silent_windows()
        except Exception:  # a failed look must not stop the worker: the next tick tries again
            log.exception("wall-clock fallback failed")

    async def close_silent_windows() -> None:
        if watch.lost:
            return
        now = time.time()
        for session_id, state in list(sessions.items()):
            meta = state.get("meta")
            if not meta or state.get("window_closed") or session_id in closing:
                continue
            closes = datetime.fromisoformat(meta["checkin_closes_at"]).timestamp()
            quiet_since = session_seen.get(session_id, started_at)
            if now > closes + settings.wall_clock_lag_seconds and now - quiet_since > settings.wall_clock_lag_seconds:
                event = new_event(CheckinWindowClosed, lab_id=PIPELINE_ID, occurred_at=datetime.now(UTC),
                                  event_id=derived_id("wall-clock", session_id), payload={"session_id": session_id})
                await send([event])
                closing.add(session_id)  # only once sent: a failed send is tried again at the next tick
                log.warning("check-in window of session %s closed by the wall clock: its lab is silent", session_id)

    def overview() -> dict[str, Any]:
        return attendance_overview(view_store, threshold=settings.noshow_threshold,
                                   silent_after_s=settings.lab_silent_after_seconds, lab_last_seen=dict(lab_seen))

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

    # Every page with operational or personal data needs the operator token (streams/web_auth.py);
    # /metrics and Faust's "/" ({"status": "OK"}) carry neither and stay open for Prometheus and health checks.
    operator_token = web_auth.OperatorToken.from_settings(settings)
    operator_token.log_startup()
    app.page("/login")(web_auth.login_view(operator_token))
    app.page("/logout")(web_auth.logout_view())

    @app.page("/attendance.json")
    @web_auth.guarded(operator_token, as_json=True)
    async def attendance_json(web: Any, request: Any) -> Any:
        try:
            return web.json({**await asyncio.to_thread(overview), "freshness": freshness()})
        except Exception as exc:  # the database is down: say so, the page keeps polling
            return web.json({"error": f"results store unavailable ({type(exc).__name__})", "freshness": freshness()},
                            status=503)

    # Lists with NIPs, each behind the operator token: who is absent from a session, which results are held back.
    @app.page("/absent.json")
    @web_auth.guarded(operator_token, as_json=True)
    async def absent_json(web: Any, request: Any) -> Any:
        session_id = request.query.get("session", "")
        if not session_id:
            return web.json({"error": "name the session: /absent.json?session=<session_id>"}, status=400)
        try:
            found = await asyncio.to_thread(absent, view_store, session_id)
        except Exception as exc:
            return web.json({"error": f"results store unavailable ({type(exc).__name__})"}, status=503)
        if found is None:
            return web.json({"error": f"no session {session_id[:64]!r} in the results store"}, status=404)
        return web.json(found)

    @app.page("/held-back.json")
    @web_auth.guarded(operator_token, as_json=True)
    async def held_back_json(web: Any, request: Any) -> Any:
        try:
            return web.json(await asyncio.to_thread(held_back, view_store))
        except Exception as exc:
            return web.json({"error": f"results store unavailable ({type(exc).__name__})"}, status=503)

    @app.page("/operator/absent")
    @web_auth.guarded(operator_token, as_json=False)
    async def absent_page(web: Any, request: Any) -> Any:
        return web.html(ABSENT_PAGE.read_text(encoding="utf-8"))

    @app.page("/operator")
    @web_auth.guarded(operator_token, as_json=False)
    async def operator_page(web: Any, request: Any) -> Any:
        return web.html(OPERATOR_PAGE.read_text(encoding="utf-8"))

    _register_collectors(AttendanceCollector(overview), OutboxCollector(lambda: outbox_status(view_store)),
                         ConsumerLagCollector(lag_watch.latest))

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

        if not settings.sink_in_worker:
            return
        try:
            await run_sink(settings)  # waits out database outages by itself; returns only when stopped
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - crash-only: a dead sink must not leave a worker up
            _exit_without_ack(EXIT_CRASH, "the results-store sink stopped on an unexpected error; its offsets "
                              "were not committed", exc)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type="text/plain")

    return app


def broker_marks_path(settings: Settings) -> Path:
    return settings.data_dir / f"{settings.app_id}-broker-marks.json"


def run_worker(settings: Settings, loglevel: str = "warning", *, accept_broker_loss: bool = False) -> None:
    """Run a worker until SIGINT/SIGTERM; Faust handles signals, rebalancing and table recovery.

    ``accept_broker_loss``: the operator knows the broker lost its data and the labs resend; the marks that
    halted the worker are set aside (streams/broker_watch.py)."""
    from faust.worker import Worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if accept_broker_loss and (aside := BrokerWatch(broker_marks_path(settings), end_offsets=None).accept()):  # type: ignore[arg-type]
        log.warning("broker loss accepted: the marks are kept in %s", aside)
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
