"""Prometheus metrics of the worker: processing, dead letters, state, lag, logins (the sink has sinks/metrics.py).

Every metric is registered on a registry the worker is given, never on prometheus_client's global one: the
worker's ``/metrics`` serves exactly that registry, and a process can build two workers (the unit tests do)
without one's counters colliding with the other's. The names, labels and help texts are what the alert rules
(deploy/prometheus/alerts.yml) and the operators' dashboards (deploy/grafana/dashboards/) read: change them there
too, or not at all. The composition root (cact/worker.py) adds the sink's and the SI ASN pusher's metrics, the
store-backed collectors and ``cact_build_info`` to the same registry.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
#: Buckets of ``cact_event_latency_seconds``: fine around the target (p99 ≤ 500 ms at 200 participants/s, so
#: histogram_quantile interpolates within 100 ms there), then coarse up to an hour for a worker replaying a
#: backlog or catching up after an outage, where minutes behind is the number that matters.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1, 2, 5, 10, 30, 60, 120, 300, 600,
                   1800, 3600)


def new_registry() -> CollectorRegistry:
    """A registry carrying what prometheus_client's default one does (process, platform, garbage collector),
    so a worker's /metrics shows the same ``process_*``/``python_*`` series as before it had a registry of its own."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def count_by_event_type(metric: Counter, event_types: Iterable[str]) -> None:
    """Count a batch's events per type with one ``labels()`` per type: one per event showed in profiles."""
    for event_type, n in Tally(event_types).items():
        metric.labels(event_type=event_type).inc(n)


class WorkerMetrics:
    """The worker's own metrics, on ``registry``; one instance per worker app."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        self.events_in = Counter("cact_events_in_total", "Input events accepted by the worker", ["event_type"],
                                 registry=r)
        self.deadletters = Counter("cact_deadletters_total", "Messages sent to the dead-letter topic",
                                   ["reason", "source_topic"], registry=r)
        self.emitted = Counter("cact_events_out_total", "Events emitted by the worker", ["event_type"], registry=r)
        self.batch_seconds = Histogram("cact_batch_seconds", "Time to process one batch of input events",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.event_latency = Histogram("cact_event_latency_seconds", "Seconds from an input record's Kafka "
                                       "timestamp to the broker's acknowledgement of its outputs and state change "
                                       "(per record; an EventBatch record counts once)", buckets=LATENCY_BUCKETS,
                                       registry=r)
        self.state_writes = Counter("cact_state_writes_total", "Keys written to the state tables", registry=r)
        self.lab_last_event = Gauge("cact_lab_last_event_timestamp_seconds",
                                    "Wall-clock time of the last event from a lab", ["lab_id"], registry=r)
        self.broker_log_lost = Gauge("cact_broker_log_lost", "1 when the broker no longer holds input this worker "
                                     "processed (its data was lost or topics recreated): the worker has stopped "
                                     "processing", registry=r)
        self.broker_records_missing = Counter("cact_broker_records_missing_total",
                                              "Processed input records found missing from the broker's log",
                                              ["topic"], registry=r)
        self.state_keys = Gauge("cact_state_keys", "Keys held in the worker's state tables (this worker's partitions)",
                                ["table"], registry=r)
        self.held_events = Gauge("cact_held_events", "Lab events held for sessions whose schedule has not arrived "
                                 "(this worker's partitions; judged when it does, dead-lettered state_limit past "
                                 "CACT_HELD_EVENTS_MAX)", registry=r)
        self.labs_not_tracked = Counter("cact_labs_not_tracked_total", "Lab events from labs beyond the silent-lab "
                                        "watch's cap (CACT_LABS_TRACKED_MAX)", registry=r)
        self.login_failures = Counter("cact_web_login_failures_total", "Wrong operator tokens presented to the "
                                      "worker's pages (the token itself is never logged)", ["method"], registry=r)
        for method in ("bearer", "form"):  # both series exist from the start: an alert on rate() needs them
            self.login_failures.labels(method=method)

    def chunk_committed(self, *, written: int, accepted: Iterable[str], emitted: Iterable[str],
                        deadletters: Iterable[tuple[str, str]]) -> None:
        """Count what a chunk did, once the broker has acknowledged it (streams/commit.py)."""
        self.state_writes.inc(written)
        count_by_event_type(self.events_in, accepted)
        count_by_event_type(self.emitted, emitted)
        for (reason, topic), n in Tally(deadletters).items():
            self.deadletters.labels(reason=reason, source_topic=topic).inc(n)


class ConsumerLagCollector(Collector):
    """The worker's input lag per partition (streams/lag.py), as of its last sample: only its own partitions."""

    def __init__(self, latest: Callable[[], Any]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("cact_consumer_lag_messages", "Input messages this worker has not processed yet, per "
                                "partition it owns (fetched high watermark minus position)",
                                labels=["topic", "partition"])
        # Which worker owns which partition, and whether it reads it yet: a partition assigned but without a lag
        # is paused (its tables recovering) or not yet fetched. How a takeover is seen (bench/faults/scaleout.py).
        owned = GaugeMetricFamily("cact_consumer_partition_assigned", "1 per input partition assigned to this "
                                  "worker, whether or not it is read yet", labels=["topic", "partition"])
        sample = self._latest()
        for p in sample.partitions if sample is not None else ():
            owned.add_metric([p.topic, str(p.partition)], 1)
            if p.lag is not None:
                lag.add_metric([p.topic, str(p.partition)], p.lag)
        yield lag
        yield owned
