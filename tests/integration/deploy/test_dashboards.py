"""Every metric the Grafana dashboards (deploy/grafana/dashboards/) and the alert rules (deploy/prometheus/alerts.yml)
query is served by a running worker, after a real day went through it on the broker.

A renamed metric leaves a panel empty and an alert silent without any error anywhere, so the names are read from
the files themselves (tests/support/promql_names.py) and compared with the worker's /metrics. A family counts
by its HELP/TYPE lines (a labelled counter with no child yet has no sample) and a histogram's ``_bucket``,
``_sum`` and ``_count`` by their family. The results-store sink runs as its own ``cact sink`` here, as in
production: its /metrics (CACT_SINK_METRICS_PORT) must serve the sink panels' names and ``cact_build_info``,
which the per-process panels join on. The standalone SI ASN pusher's registry is checked in the unit tests
(tests/unit/sinks/test_sink_metrics.py): the worker's registry carries the same families.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, build_day
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.settings import Settings, settings_env
from streams.broker import free_port
from streams.kafka import end_offsets, wait_until_consumed
from support.promql_names import (
    alert_queries,
    dashboard_queries,
    exposition,
    grafana_query_names,
    metric_names,
    missing,
)

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def queried() -> dict[str, set[str]]:
    """Metric name → where it is queried (dashboard file and panel, or alert rule)."""
    where: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for place, query in dashboard_queries(json.loads(path.read_text())):
            for name in grafana_query_names(query):
                where.setdefault(name, set()).add(f"{path.name} {place}")
    for place, expr in alert_queries(ALERTS.read_text()):
        for name in metric_names(expr):
            where.setdefault(name, set()).add(f"alerts.yml {place}")
    return where


def scrape(url: str, until: str, timeout: float = 30) -> str:
    """/metrics once ``until`` (a regex over its lines) shows: the lag sampler and the collectors run on ticks."""
    deadline = time.monotonic() + timeout
    while True:
        text = httpx.get(url, timeout=10).text
        if re.search(until, text, re.M) or time.monotonic() > deadline:
            return text
        time.sleep(0.5)


def sample(text: str, series: str) -> float | None:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


@pytest.mark.broker
@pytest.mark.postgres
def test_every_metric_the_dashboards_and_alerts_query_is_on_a_running_worker(
        pipeline_kafka: Settings, pg_database: str, tmp_path: Path) -> None:
    sink_port = free_port()
    settings = pipeline_kafka.model_copy(update={"database_url": pg_database, "sink_in_worker": False,
                                                 "sink_metrics_port": sink_port})
    day = build_day(SimConfig(participants=60, seats=30, malformed=2, seed=17), BlueprintRegistry.from_dir())
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    with (tmp_path / "sink.log").open("ab") as log:
        sink = subprocess.Popen([sys.executable, "-m", "cact.cli", "sink"],
                                env={**os.environ, **settings_env(settings)}, stdout=log, stderr=subprocess.STDOUT)
        try:
            send_day(settings, day)
            asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
            on_worker = scrape(f"http://127.0.0.1:{settings.worker_web_port}/metrics",
                               r'^cact_consumer_lag_messages\{partition="\d+",topic="cact\.lab\.v1"\} 0\.0$')
            on_sink = scrape(f"http://127.0.0.1:{sink_port}/metrics", r"^cact_sink_batch_events_count [1-9]")
            inputs = [TopicPartition(t.name, p) for t in topics.INPUT_TOPICS for p in range(settings.topic_partitions)]
            records = sum(asyncio.run(end_offsets(settings, inputs, strict=True)).values())
        finally:
            worker.stop()
            sink.terminate()
            assert sink.wait(30) == 0

    where = queried()
    assert len(where) > 30, sorted(where)
    absent = missing(where, on_worker)
    only_on_sink = [name for name in absent if not missing([name], on_sink)]
    assert not absent, "queried but not on the worker's /metrics (only on the standalone sink: " \
        f"{only_on_sink}):\n" + "\n".join(f"{name}: {sorted(where[name])}" for name in absent)

    # what the standalone sink must serve for the sink and per-process panels
    for_sink = [n for n in where if n.startswith(("cact_sink_", "process_")) or n == "cact_build_info"]
    assert {"cact_sink_batch_events_bucket", "cact_build_info", "process_resident_memory_bytes"} <= set(for_sink)
    assert not missing(for_sink, on_sink), missing(for_sink, on_sink)
    assert "cact_agency_no_show_ratio" not in exposition(on_sink)[0]  # the store-backed gauges are the worker's

    # the day moved the numbers the panels draw: these are series, not only families
    for text in (on_worker, on_sink):
        assert re.search(r'^cact_build_info\{faust_version="[^"]+",python_version="[^"]+",version="[^"]+"\} 1\.0$',
                         text, re.M), "no build info"
    assert re.search(r'^cact_agency_no_show_ratio\{agency_id="[^"]+"\} 0\.\d+$', on_worker, re.M)
    assert sample(on_worker, "cact_no_show_ratio") is not None
    assert sample(on_worker, 'cact_deadletters_total{reason="bad_json",source_topic="cact.lab.v1"}') == 1.0
    # one latency per input record: the day's, the re-keyed susulan arrivals, the malformed ones
    assert sample(on_worker, "cact_event_latency_seconds_count") == records > 0
    assert (sample(on_sink, "cact_sink_batch_events_sum") or 0) > 0
    assert not re.search(r"^cact_\w+\{[^}]*session_id=", on_worker, re.M), "per-session series are unbounded"
