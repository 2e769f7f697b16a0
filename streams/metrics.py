"""Prometheus metrics of the worker; one registry so /metrics shows processing, dead letters and sinks."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("cact_events_in_total", "Input events accepted by the worker", ["event_type"])
DEADLETTERS = Counter("cact_deadletters_total", "Messages sent to the dead-letter topic", ["reason", "source_topic"])
EMITTED = Counter("cact_events_out_total", "Events emitted by the worker", ["event_type"])
BATCH_SECONDS = Histogram("cact_batch_seconds", "Time to process one batch of input events",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
STATE_WRITES = Counter("cact_state_writes_total", "Keys written to the state tables")
SINK_ROWS = Counter("cact_sink_events_total", "Output events written to the results store", ["event_type"])
SINK_BATCH_SECONDS = Histogram("cact_sink_batch_seconds", "Time to write one batch to the results store")
SINK_LAG = Gauge("cact_sink_batch_size", "Events in the last batch written to the results store")
