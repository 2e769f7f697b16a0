"""bench/scrape.py against pages written by prometheus_client itself, as the worker serves them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bench.scrape import histogram_quantile, samples, total


def page(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_totals_sum_over_labels_and_filter_by_them() -> None:
    registry = CollectorRegistry()
    events = Counter("cact_events_in", "events", ["event_type"], registry=registry)
    keys = Gauge("cact_state_keys", "keys", ["table"], registry=registry)
    events.labels(event_type="ParticipantCheckedIn").inc(3)
    events.labels(event_type="EventBatch").inc(4)
    keys.labels(table="sessions").set(12)
    found = samples(page(registry))
    assert total(found, "cact_events_in_total") == 7.0
    assert total(found, "cact_events_in_total", event_type="EventBatch") == 4.0
    assert total(found, "cact_state_keys", table="sessions") == 12.0
    assert total(found, "cact_state_keys", table="participants") is None
    assert total(found, "cact_events_out_total") is None  # never served: not a zero
    assert total(None, "cact_events_in_total") is None  # the page did not answer


def test_the_quantile_is_of_what_was_observed_between_the_two_pages() -> None:
    registry = CollectorRegistry()
    latency = Histogram("cact_event_latency_seconds", "latency", buckets=(0.1, 0.2, 0.5, 1.0), registry=registry)
    for _ in range(100):
        latency.observe(0.9)  # before the phase: must not count
    before = samples(page(registry))
    for seconds in [0.05] * 50 + [0.15] * 40 + [0.4] * 10:
        latency.observe(seconds)
    after = samples(page(registry))
    # 50 of 100 in (0, 0.1]: the median is that bucket's top; 99 of 100 fall at 0.5 x 9/10 of the (0.2, 0.5] bucket
    assert histogram_quantile(before, after, "cact_event_latency_seconds", 0.5) == pytest.approx(0.1)
    assert histogram_quantile(before, after, "cact_event_latency_seconds", 0.99) == pytest.approx(0.2 + 0.3 * 0.9)
    assert histogram_quantile(after, after, "cact_event_latency_seconds", 0.5) is None  # nothing observed between
    assert histogram_quantile(before, after, "cact_batch_seconds", 0.5) is None  # not on the page


def test_above_the_last_bucket_only_its_bound_is_known() -> None:
    registry = CollectorRegistry()
    latency = Histogram("cact_batch_seconds", "chunk", buckets=(0.1, 1.0), registry=registry)
    before = samples(page(registry))
    for _ in range(10):
        latency.observe(5.0)
    assert histogram_quantile(before, samples(page(registry)), "cact_batch_seconds", 0.99) == 1.0
