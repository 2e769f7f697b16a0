"""The worker as the ``cact worker`` command runs it: the stream processor composed with the sinks.

``streams`` knows nothing of the results store or SI ASN (the layer rule, tests/unit/test_layers.py). This is
where they meet: the store's queries become the pages' :class:`~streams.pages.OperatorViews`, the in-process
sink and the SI ASN pusher become the worker's background services, and one registry carries the worker's,
the sink's and the SI ASN pusher's metrics and ``cact_build_info``, the one the worker's /metrics serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from cact.gc_tuning import TRIM_SECONDS, heap_trimmer, settle_heap
from schemas.errors import CliError
from schemas.settings import Settings
from sinks import attendance_view
from sinks.metrics import AttendanceCollector, OutboxCollector, PusherMetrics, SinkMetrics, register_build_info
from sinks.reports import catalog
from sinks.reports.calendar import CalendarFileError, WorkingCalendar
from sinks.reports.deadlines import DueRow, ReportsCollector, due_rows, today_in_jakarta
from sinks.siasn import push
from sinks.store import ResultsStore
from streams.app import Service, create_app
from streams.broker_watch import BrokerWatch, marks_path
from streams.metrics import new_registry
from streams.pages import OperatorData

log = logging.getLogger("cact.worker")


class StoreViews:
    """The operator pages' views over the results store (streams/pages.py ``OperatorViews``)."""

    def __init__(self, store: ResultsStore, settings: Settings) -> None:
        self.store, self.settings = store, settings
        try:
            self.calendar = WorkingCalendar.from_file(settings.reports_calendar_file)
        except CalendarFileError as exc:
            raise CliError(f"{exc} (CACT_REPORTS_CALENDAR_FILE)") from None

    def attendance_overview(self, *, threshold: float, silent_after_s: float,
                            lab_last_seen: Mapping[str, float]) -> dict[str, Any]:
        return attendance_view.attendance_overview(self.store, threshold=threshold, silent_after_s=silent_after_s,
                                                   lab_last_seen=lab_last_seen)

    def absent(self, session_id: str) -> dict[str, Any] | None:
        return attendance_view.absent(self.store, session_id)

    def held_back(self) -> dict[str, Any]:
        return attendance_view.held_back(self.store)

    def outbox_status(self) -> dict[str, Any]:
        return push.outbox_status(self.store)

    def due_rows(self) -> list[DueRow]:
        return due_rows(self.store, self.calendar, today=today_in_jakarta(),
                        at_risk_working_days=self.settings.reports_at_risk_working_days)

    def reports(self) -> dict[str, Any]:
        return {"due": [r.to_json() for r in self.due_rows()], "builds": catalog.builds(self.store)}

    def report_file(self, activity_id: str, version: int, name: str) -> catalog.ReportFile | None:
        return catalog.report_file(self.store, activity_id, version, name)


def services(settings: Settings, store: ResultsStore, sink_metrics: SinkMetrics,
             pusher_metrics: PusherMetrics | None = None) -> list[Service]:
    """The background services the settings ask for: the results-store sink, the SI ASN pusher."""
    found: list[Service] = []
    if settings.sink_in_worker:
        from sinks.runner import run_sink

        async def sink() -> None:
            await run_sink(settings, metrics=sink_metrics)  # waits out database outages; returns only when stopped

        found.append(Service("sink", sink, crash="the results-store sink stopped on an unexpected error; its "
                             "offsets were not committed"))
    if settings.siasn_push_enabled:
        from sinks.siasn.client import SiasnClient
        from sinks.siasn.config import SiasnConfig
        from sinks.siasn.pusher_loop import PusherLoop

        async def siasn_pusher() -> None:
            async with SiasnClient(SiasnConfig.from_settings(settings)) as client:
                pusher = push.OutboxPusher.from_settings(store, client, settings, pusher_metrics)
                await PusherLoop(pusher, stop=asyncio.Event()).run()  # stopped by the worker's cancelling it

        found.append(Service("siasn_pusher", siasn_pusher, crash="the SI ASN pusher stopped on an unexpected "
                             "error; its claimed pushes come back after their lease"))
    return found


def build_app(settings: Settings, registry: CollectorRegistry | None = None) -> faust.App:
    """The worker's Faust app with its views, services and metrics; a fresh registry unless one is given."""
    registry = registry if registry is not None else new_registry()
    store = ResultsStore(settings.database_url)
    try:  # the operator page may be opened before the sink has written anything
        store.create_schema()
    except Exception as exc:  # the database is down: processing does not need it, the sink waits for it
        log.warning("results store not reachable at start (%s): the worker processes anyway; pages show it "
                    "once it is back", type(exc).__name__)
    sink_metrics = SinkMetrics(registry)
    pusher_metrics = PusherMetrics(registry)
    register_build_info(registry)

    views = StoreViews(store, settings)

    def store_collectors(data: OperatorData) -> list[Any]:
        return [AttendanceCollector(data.overview), OutboxCollector(data.outbox_status),
                ReportsCollector(views.due_rows)]

    app = create_app(settings, views=views, registry=registry,
                     services=services(settings, store, sink_metrics, pusher_metrics), collectors=store_collectors)
    if (trimmer := heap_trimmer()) is not None:  # cact/gc_tuning.py: peak RSS after the day's waves

        @app.timer(interval=TRIM_SECONDS, name="trim_heap")
        async def trim_heap() -> None:
            trimmer()

    return app


def run_worker(settings: Settings, loglevel: str = "warning", *, accept_broker_loss: bool = False) -> None:
    """Run a worker until SIGINT/SIGTERM; Faust handles signals, rebalancing and table recovery.

    ``accept_broker_loss``: the operator knows the broker lost its data and the labs resend; the marks that
    halted the worker are set aside (streams/broker_watch.py)."""
    from faust.worker import Worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if accept_broker_loss and (aside := BrokerWatch(marks_path(settings), end_offsets=None).accept()):  # type: ignore[arg-type]
        log.warning("broker loss accepted: the marks are kept in %s", aside)
    if settings.siasn_push_enabled:  # a push without credentials must stop the worker now, not fail at each try
        from sinks.siasn.config import SiasnConfig

        SiasnConfig.from_settings(settings)
    app = build_app(settings)
    settle_heap()  # after the app is built: cact/gc_tuning.py
    worker = Worker(app, loglevel=loglevel, quiet=True)
    # Faust's start-up spinner sets the root logger to DEBUG (so it can spin on every record) and leaves it
    # there: every debug call of Faust and aiokafka then built a LogRecord, ~5% of the worker's CPU.
    worker.spinner = None
    worker.execute_from_commandline()
