"""Prometheus metrics of the worker; one registry so /metrics shows processing, dead letters and sinks."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sinks.models import OUTBOX_STATUSES

EVENTS_IN = Counter("cact_events_in_total", "Input events accepted by the worker", ["event_type"])
DEADLETTERS = Counter("cact_deadletters_total", "Messages sent to the dead-letter topic", ["reason", "source_topic"])
EMITTED = Counter("cact_events_out_total", "Events emitted by the worker", ["event_type"])
BATCH_SECONDS = Histogram("cact_batch_seconds", "Time to process one batch of input events",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
STATE_WRITES = Counter("cact_state_writes_total", "Keys written to the state tables")
SINK_ROWS = Counter("cact_sink_events_total", "Output events written to the results store", ["event_type"])
SINK_BATCH_SECONDS = Histogram("cact_sink_batch_seconds", "Time to write one batch to the results store")
SINK_LAG = Gauge("cact_sink_batch_size", "Events in the last batch written to the results store")
LAB_LAST_EVENT = Gauge("cact_lab_last_event_timestamp_seconds", "Wall-clock time of the last event from a lab",
                       ["lab_id"])
BROKER_LOG_LOST = Gauge("cact_broker_log_lost", "1 when the broker no longer holds input this worker processed "
                        "(its data was lost or topics recreated): the worker has stopped processing")
BROKER_RECORDS_MISSING = Counter("cact_broker_records_missing_total",
                                 "Processed input records found missing from the broker's log", ["topic"])
STATE_KEYS = Gauge("cact_state_keys", "Keys held in the worker's state tables (this worker's partitions)", ["table"])
HELD_EVENTS = Gauge("cact_held_events", "Lab events held for sessions whose schedule has not arrived (this worker's "
                    "partitions; judged when it does, dead-lettered state_limit past CACT_HELD_EVENTS_MAX)")
LABS_NOT_TRACKED = Counter("cact_labs_not_tracked_total",
                           "Lab events from labs beyond the silent-lab watch's cap (CACT_LABS_TRACKED_MAX)")


def count_by_event_type(metric: Counter, event_types: Iterable[str]) -> None:
    """Count a batch's events per type with one ``labels()`` per type: one per event showed in profiles."""
    for event_type, n in Tally(event_types).items():
        metric.labels(event_type=event_type).inc(n)


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
                                       labels=_SESSION_LABELS) for c in ("scheduled", "checked_in", "no_show", "rescheduled")}
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
        silent = GaugeMetricFamily("cact_lab_silent", "1 when a lab with a session in progress is silent", labels=["lab_id"])
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


class ConsumerLagCollector(Collector):
    """The worker's input lag per partition (streams/lag.py), as of its last sample: only its own partitions."""

    def __init__(self, latest: Callable[[], Any]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("cact_consumer_lag_messages", "Input messages this worker has not processed yet, per "
                                "partition it owns (fetched high watermark minus position)", labels=["topic", "partition"])
        sample = self._latest()
        for p in sample.partitions if sample is not None else ():
            if p.lag is not None:
                lag.add_metric([p.topic, str(p.partition)], p.lag)
        yield lag


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


# The results-store sink against refused rows and database outages (sinks/runner.py, docs/operations.md).
SINK_QUARANTINED = Counter("cact_sink_quarantined_total", "Output events the results store refused and quarantined",
                           ["event_type"])
SINK_QUARANTINE_ROWS = Gauge("cact_sink_quarantine_rows", "Rows in the results store's quarantine table")
SINK_DB_UP = Gauge("cact_sink_db_up", "1 while the sink reaches the results store, 0 during an outage")
SINK_DB_RETRIES = Counter("cact_sink_db_retries_total", "Attempts the sink repeated because the store was down")
SINK_COMMIT_FAILURES = Counter("cact_sink_commit_failures_total", "Refused offset commits (the batch comes again)")
