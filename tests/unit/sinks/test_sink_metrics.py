"""The sink's metrics (sinks/metrics.py): on the registry they are given, the names the alert rules read, the sink
counting where it was told to, and the store-backed collectors saying nothing rather than a wrong 0."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from schemas import events as ev
from schemas import topics
from schemas.settings import Settings
from sinks.metrics import OutboxCollector, SinkMetrics, default_sink_metrics
from sinks.runner import ResultsSink, StoreHealth
from sinks.store import ResultsStore

SINK_METRICS = {  # name → help, as deploy/prometheus/alerts.yml and docs/operations.md know them
    "cact_sink_events_total": "Output events written to the results store",
    "cact_sink_batch_seconds": "Time to write one batch to the results store",
    "cact_sink_batch_size": "Events in the last batch written to the results store",
    "cact_sink_quarantined_total": "Output events the results store refused and quarantined",
    "cact_sink_quarantine_rows": "Rows in the results store's quarantine table",
    "cact_sink_db_up": "1 while the sink reaches the results store, 0 during an outage",
    "cact_sink_db_retries_total": "Attempts the sink repeated because the store was down",
    "cact_sink_commit_failures_total": "Refused offset commits (the batch comes again)",
}


def helps(registry: CollectorRegistry) -> dict[str, str]:
    text = generate_latest(registry).decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") and not line.split()[2].endswith("_created"):
            name, help_ = line[7:].split(" ", 1)
            found[name] = help_.replace("\\n", "\n")
    return found


def test_the_sink_metrics_keep_their_names_and_help_on_any_registry() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    SinkMetrics(one), SinkMetrics(two)  # two sets in one process: no clash
    for registry in (one, two):
        assert helps(registry) == SINK_METRICS


def test_a_sink_given_no_metrics_counts_on_the_process_registry_once() -> None:
    assert default_sink_metrics() is default_sink_metrics()
    assert set(SINK_METRICS) <= set(helps(REGISTRY))  # what a standalone `cact sink` serves


def test_store_health_says_up_and_down_on_its_metrics() -> None:
    m = SinkMetrics(CollectorRegistry())
    value = m.db_up._value.get
    health = StoreHealth(clock=lambda: 0.0, metrics=m)
    health.failed(ConnectionError("down"))
    health.retrying()
    assert value() == 0 and m.db_retries._value.get() == 1
    health.succeeded()
    assert value() == 1


class Consumer:
    def __init__(self) -> None:
        self.commits = 0

    async def commit(self) -> None:
        self.commits += 1

    def assignment(self) -> set[TopicPartition]:
        return set()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        raise AssertionError("no rewind expected")


def test_the_sink_counts_on_the_metrics_it_was_given(tmp_path: Path) -> None:
    store = ResultsStore(f"sqlite:///{tmp_path / 'results.db'}")
    store.create_schema()
    mine, before = SinkMetrics(CollectorRegistry()), default_sink_metrics().rows.labels(event_type="DeadLettered")
    counted_before = before._value.get()
    letter = ev.new_event(ev.DeadLettered, lab_id="cact-pipeline", occurred_at=datetime(2026, 11, 3, tzinfo=UTC),
                          payload={"reason": "malformed_json", "detail": "x", "source_topic": topics.LAB.name,
                                   "source_partition": 0, "source_offset": 1, "key_b64": None, "value_b64": ""})
    fetched: dict[TopicPartition, Any] = {
        TopicPartition(topics.DEADLETTER.name, 0): [SimpleNamespace(offset=0, value=letter.to_bytes()),
                                                    SimpleNamespace(offset=1, value=None)]}
    sink = ResultsSink(store, Settings(database_url=str(store.engine.url)), metrics=mine)
    asyncio.run(sink.handle(Consumer(), fetched))
    value = mine.rows.labels(event_type="DeadLettered")._value.get
    assert value() == 1 and mine.batch_size._value.get() == 2
    assert mine.quarantine_rows._value.get() == 1  # the tombstone, quarantined
    assert before._value.get() == counted_before  # nothing on the process's registry
    store.dispose()


def test_the_outbox_backlog_lists_every_status_and_nothing_when_the_store_is_down() -> None:
    registry = CollectorRegistry()
    registry.register(OutboxCollector(lambda: {"pending": 3, "held": 1, "oldest_pending_age_s": 42.0}))
    text = generate_latest(registry).decode()
    assert 'cact_siasn_outbox{status="pending"} 3.0' in text and 'cact_siasn_outbox{status="void"} 0.0' in text
    assert "cact_siasn_oldest_pending_age_seconds 42.0" in text

    def down() -> dict[str, Any]:
        raise ConnectionRefusedError

    quiet = CollectorRegistry()
    quiet.register(OutboxCollector(down))
    assert "cact_siasn_outbox" not in generate_latest(quiet).decode()  # no series, not a backlog of 0
