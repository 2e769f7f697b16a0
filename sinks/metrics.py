"""The sink's metrics, and the store-backed collectors: attendance and the SI ASN backlog as the store holds them.

The sink's metrics are registered on a registry they are given (:class:`SinkMetrics`): the worker's, when the
sink runs inside it and its /metrics shows both; prometheus_client's global one for a standalone ``cact sink``
(:func:`default_sink_metrics`), whose /metrics is served from that. The collectors read the results store at
scrape time, so their numbers are the whole day's whichever worker serves them. Names, labels and help texts
are what deploy/prometheus/alerts.yml and the dashboards in deploy/grafana/dashboards/ read: change them there
too, or not at all (tests/integration/deploy/test_dashboards.py scrapes a worker for every name they query).

Cardinality is bounded by what BKN has, never by what a day adds: series are per agency and per lab (a few
hundred of each), per activity only while it has a session within :data:`ACTIVITY_SERIES_DAYS` of the scrape,
and nothing is per session or per participant (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import platform
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sinks.models import OUTBOX_STATUSES

#: Buckets of ``cact_sink_batch_events``: a fetch holds 1 to CACT_SINK_BATCH_SIZE (500) records; the buckets
#: above it are for a larger setting. Small batches at a high rate mean the sink is keeping up event by event.
SINK_BATCH_EVENTS_BUCKETS = (1, 5, 10, 25, 50, 100, 200, 300, 400, 500, 1000, 2500, 5000)
#: An activity has series while one of its sessions starts within this many days before or after the scrape:
#: activities accumulate in the store for ever, the ones of the current fortnight are what operators watch
#: (an older activity's final numbers are in its recap report).
ACTIVITY_SERIES_DAYS = 7
#: The states of ``cact_{agency,lab,activity}_participants``: the operator page's columns. ``scheduled`` counts
#: everyone scheduled; the others are where those participants stand now, so the states overlap.
PARTICIPANT_STATES = ("scheduled", "checked_in", "no_show", "rescheduled")
#: Session states as sinks/attendance_view.py ``STATES`` names them (not imported: that module imports the SI ASN
#: pusher, which imports this one; tests/unit/sinks/test_sink_metrics.py checks they agree).
SESSION_STATES = ("not_started", "in_checkin", "window_closed", "closed")


def build_info() -> dict[str, str]:
    """What ``cact_build_info`` says: which code a process runs, to tell workers apart during a rolling upgrade."""
    def version(distribution: str) -> str:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:  # run from a source tree that was never installed
            return "unknown"

    return {"version": version("cact-pipeline"), "python_version": platform.python_version(),
            "faust_version": version("faust-streaming")}


def register_build_info(registry: CollectorRegistry) -> None:
    """``cact_build_info{version,python_version,faust_version} 1`` on ``registry``, once per registry."""
    Info("cact_build", "The running CACT pipeline's version and the Python and Faust it runs on (value 1)",
         registry=registry).info(build_info())


_global_build_info = False


def _global_registry() -> CollectorRegistry:
    """prometheus_client's global registry with ``cact_build_info`` on it: what a standalone sink or pusher serves."""
    global _global_build_info
    if not _global_build_info:
        register_build_info(REGISTRY)
        _global_build_info = True
    return REGISTRY


def count_by_event_type(metric: Counter, event_types: Iterable[str]) -> None:
    """Count a batch's events per type with one ``labels()`` per type: one per event showed in profiles."""
    for event_type, n in Tally(event_types).items():
        metric.labels(event_type=event_type).inc(n)


class SinkMetrics:
    """The results-store sink's metrics, against refused rows and database outages (sinks/runner.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.rows = Counter("cact_sink_events_total", "Output events written to the results store", ["event_type"],
                            registry=r)
        self.batch_seconds = Histogram("cact_sink_batch_seconds", "Time to write one batch to the results store",
                                       registry=r)
        self.batch_events = Histogram("cact_sink_batch_events", "Output records per batch written to the results "
                                      "store", buckets=SINK_BATCH_EVENTS_BUCKETS, registry=r)
        self.quarantined = Counter("cact_sink_quarantined_total",
                                   "Output events the results store refused and quarantined", ["event_type"],
                                   registry=r)
        self.quarantine_rows = Gauge("cact_sink_quarantine_rows", "Rows in the results store's quarantine table",
                                     registry=r)
        self.db_up = Gauge("cact_sink_db_up", "1 while the sink reaches the results store, 0 during an outage",
                           registry=r)
        self.db_retries = Counter("cact_sink_db_retries_total", "Attempts the sink repeated because the store was down",
                                  registry=r)
        self.commit_failures = Counter("cact_sink_commit_failures_total",
                                       "Refused offset commits (the batch comes again)", registry=r)


_default: SinkMetrics | None = None


def default_sink_metrics() -> SinkMetrics:
    """The sink's metrics on prometheus_client's global registry, made once per process: for a sink that was
    given none (a standalone ``cact sink``, whose /metrics is ``start_http_server`` on that registry)."""
    global _default
    if _default is None:
        _default = SinkMetrics(_global_registry())
    return _default


class PusherMetrics:
    """The SI ASN pusher's counts (sinks/siasn/push.py): what BKN staff watch to trust the automated push."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter("cact_siasn_deliveries_total", "Pushes delivered to SI ASN", ["kind"],
                                 registry=registry)
        self.rejected = Counter("cact_siasn_rejections_total", "Pushes SI ASN rejected as invalid", ["kind"],
                                registry=registry)
        self.failed = Counter("cact_siasn_failures_total", "Delivery attempts that failed and will be retried",
                              registry=registry)


_default_pusher: PusherMetrics | None = None


def default_pusher_metrics() -> PusherMetrics:
    """The pusher's metrics on the global registry, made once per process, for a pusher that was given none."""
    global _default_pusher
    if _default_pusher is None:
        _default_pusher = PusherMetrics(_global_registry())
    return _default_pusher


#: Per dimension: the overview's rows, their key, and who a row counts (sinks/attendance_view.py).
_DIMENSIONS = (("agency", "by_agency", "agency_id", "persons of the agency (a susulan participant counts for "
                "their home agency)"),
               ("lab", "by_lab", "lab_id", "seats of the lab's sessions"),
               ("activity", "by_activity", "activity_id", "persons of the activity"))


def recent_activities(sessions: Iterable[Mapping[str, Any]], now: datetime,
                      days: float = ACTIVITY_SERIES_DAYS) -> set[str]:
    """Activities with a session starting within ``days`` of ``now``, before or after: the ones with series."""
    window = timedelta(days=days)
    return {s["activity_id"] for s in sessions if abs(datetime.fromisoformat(s["starts_at"]) - now) <= window}


class AttendanceCollector(Collector):
    """Attendance counts and no-show ratios, read from the results store at scrape time.

    Computed from the store rather than this worker's own partitions, so the numbers are the whole day's and
    every worker serves the same ones. A ratio is over participants whose check-in window has closed
    (sinks/attendance_view.py); an agency, lab or activity with no closed window yet has no ratio series at
    all (not 0: that would read as perfect attendance). One family per dimension, one label each; no session
    series (a day adds thousands of sessions, a year of them would grow Prometheus without bound).
    """

    def __init__(self, overview: Callable[[], dict[str, Any]], *, activity_days: float = ACTIVITY_SERIES_DAYS) -> None:
        self._overview = overview
        self._activity_days = activity_days

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            data = self._overview()
        except Exception:  # the store may not exist yet at the first scrape, or the database is down
            return
        overall = GaugeMetricFamily("cact_no_show_ratio", "No-shows over the participants whose check-in window "
                                    "has closed, all agencies (no series while no window has closed)")
        if data["overall"]["no_show_rate"] is not None:
            overall.add_metric([], data["overall"]["no_show_rate"])
        yield overall
        yield GaugeMetricFamily("cact_no_show_threshold_ratio", "The no-show ratio the operator page highlights "
                                "above (CACT_NOSHOW_THRESHOLD)", value=data["threshold"])
        recent = recent_activities(data["sessions"], datetime.fromisoformat(data["generated_at"]),
                                   self._activity_days)
        for dim, rows_key, key, counted in _DIMENSIONS:
            rows = [r for r in data[rows_key] if dim != "activity" or r[key] in recent]
            scope = f" ({self._activity_days:g} days either side of now)" if dim == "activity" else ""
            ratio = GaugeMetricFamily(f"cact_{dim}_no_show_ratio", f"No-shows over the participants whose check-in "
                                      f"window has closed, per {dim}{scope}: {counted} (no series while none has "
                                      "closed)", labels=[key])
            people = GaugeMetricFamily(f"cact_{dim}_participants", f"Participants per {dim}{scope} and state "
                                       f"({', '.join(PARTICIPANT_STATES)}; scheduled includes the others): "
                                       f"{counted}", labels=[key, "state"])
            closed = GaugeMetricFamily(f"cact_{dim}_closed_window_participants", f"Participants per {dim}{scope} "
                                       "checked in or no-show in sessions whose check-in window has closed: the "
                                       "no-show ratio's denominator", labels=[key])
            for row in rows:
                if row["no_show_rate"] is not None:
                    ratio.add_metric([row[key]], row["no_show_rate"])
                for state in PARTICIPANT_STATES:
                    people.add_metric([row[key], state], row[state])
                closed.add_metric([row[key]], row["in_closed_windows"])
            yield from (ratio, people, closed)
        sessions = GaugeMetricFamily("cact_sessions", "Sessions in the results store by state (not_started, "
                                     "in_checkin, window_closed, closed)", labels=["state"])
        by_state = Tally(s["state"] for s in data["sessions"])
        for state in SESSION_STATES:
            sessions.add_metric([state], by_state[state])
        yield sessions
        active = GaugeMetricFamily("cact_lab_sessions_in_progress", "Sessions in check-in or past it and not closed, "
                                   "per lab", labels=["lab_id"])
        silent = GaugeMetricFamily("cact_lab_silent", "1 when a lab with a session in progress is silent",
                                   labels=["lab_id"])
        for lab in data["by_lab"]:
            active.add_metric([lab["lab_id"]], lab["sessions_in_progress"])
            silent.add_metric([lab["lab_id"]], 1.0 if lab["silent"] else 0.0)
        yield active
        yield silent
        standing = GaugeMetricFamily("cact_results_current", "Current results by standing (incomplete: held back "
                                     "from SI ASN; not_recognised: never sent)", labels=["standing"])
        for name, n in data.get("results", {}).items():
            standing.add_metric([name], n)
        yield standing


class OutboxCollector(Collector):
    """SI ASN push backlog, read from the outbox at scrape time: what BKN staff watch to trust the push."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            data = self._status()
        except Exception:
            return
        backlog = GaugeMetricFamily("cact_siasn_outbox", "SI ASN pushes by status", labels=["status"])
        for status in OUTBOX_STATUSES:
            backlog.add_metric([status], data.get(status, 0))
        yield backlog
        yield GaugeMetricFamily("cact_siasn_oldest_pending_age_seconds", "Age of the oldest pending SI ASN push",
                                value=data["oldest_pending_age_s"])
