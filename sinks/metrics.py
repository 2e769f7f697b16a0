"""The sink's metrics, and the store-backed collectors: attendance and the SI ASN backlog as the store holds them.

The sink's metrics are registered on a registry they are given (:class:`SinkMetrics`): the worker's, when the
sink runs inside it and its /metrics shows both; prometheus_client's global one for a standalone ``cact sink``
(:func:`default_sink_metrics`), whose /metrics is served from that. The collectors read the results store at
scrape time, so their numbers are the whole day's whichever worker serves them. Names, labels and help texts
are what deploy/prometheus/alerts.yml reads: change them there too, or not at all.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sinks.models import OUTBOX_STATUSES


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
        self.batch_size = Gauge("cact_sink_batch_size", "Events in the last batch written to the results store",
                                registry=r)
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
        _default = SinkMetrics(REGISTRY)
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
        _default_pusher = PusherMetrics(REGISTRY)
    return _default_pusher


_SESSION_LABELS = ["session_id", "lab_id", "agency_id", "activity_id"]


class AttendanceCollector(Collector):
    """Attendance counts and no-show rates, read from the results store at scrape time.

    Computed from the store rather than this worker's own partitions, so the numbers are the whole day's. A
    rate is over participants whose check-in window has closed (sinks/attendance_view.py); a dimension with no
    closed window yet has no ``cact_no_show_rate`` series at all (not 0: that would read as perfect attendance).
    """

    def __init__(self, overview: Callable[[], dict[str, Any]]) -> None:
        self._overview = overview

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            data = self._overview()
        except Exception:  # the store may not exist yet at the first scrape, or the database is down
            return
        counts = {c: GaugeMetricFamily(f"cact_attendance_{c}", f"Participants {c.replace('_', ' ')} per session",
                                       labels=_SESSION_LABELS)
                  for c in ("scheduled", "checked_in", "no_show", "rescheduled")}
        counts["in_closed_windows"] = GaugeMetricFamily(
            "cact_attendance_in_closed_windows", "Participants (checked in or no-show) per session whose check-in "
            "window has closed: the no-show rate's denominator", labels=_SESSION_LABELS)
        for s in data["sessions"]:
            for c, family in counts.items():
                family.add_metric([s["session_id"], s["lab_id"], s["agency_id"], s["activity_id"]], s[c])
        yield from counts.values()
        rate = GaugeMetricFamily("cact_no_show_rate", "No-show rate over participants whose check-in window has "
                                 "closed (no series while none has)", labels=["dimension", "key"])
        rows = [("overall", "all", data["overall"])]
        for dim, key in (("agency", "agency_id"), ("lab", "lab_id"), ("activity", "activity_id")):
            rows += [(dim, row[key], row) for row in data[f"by_{dim}"]]
        rows += [("session", s["session_id"], s) for s in data["sessions"]]
        for dim, key, row in rows:
            if row["no_show_rate"] is not None:
                rate.add_metric([dim, key], row["no_show_rate"])
        yield rate
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
