"""A worker started while the results store's database is down starts, processes, and serves /metrics; its
sink waits, and the day is stored once the database is back (issue 12: "the worker starts and processes while
the database is down"). The database goes away for real: a TCP proxy in front of PostgreSQL refuses it."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench.faults.tcp_proxy import TcpProxy
from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, build_day
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.settings import Settings
from sinks.store import ResultsStore
from streams.kafka import wait_until_consumed

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_a_worker_starts_and_processes_while_the_database_is_down(pipeline_kafka: Settings, pg_database: str,
                                                                  tmp_path: Path) -> None:
    url = make_url(pg_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432, lifetime_s=300).start()
    proxy.cut()
    settings = pipeline_kafka.model_copy(update={
        "database_url": url.set(port=proxy.port).render_as_string(hide_password=False),
        "sink_retry_max_seconds": 1.0})
    day = build_day(SimConfig(participants=60, seats=30, malformed=1, seed=3), BlueprintRegistry.from_dir())
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        send_day(settings, day)
        # every input record processed and committed: outputs and state acknowledged, with no database at all
        asyncio.run(wait_until_consumed(settings, {settings.app_id: [t.name for t in topics.INPUT_TOPICS]},
                                        timeout=120, progress=worker.check))
        metrics = scrape(settings.worker_web_port)
        assert "cact_sink_db_up 0.0" in metrics
        assert float(next(line.split()[-1] for line in metrics.splitlines()
                          if line.startswith("cact_sink_db_retries_total "))) > 0
        assert worker.alive()
        proxy.restore()
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=120, progress=worker.check))
        deadline = time.monotonic() + 10
        while "cact_sink_db_up 1.0" not in scrape(settings.worker_web_port):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        summary = ResultsStore(pg_database).summary()
        assert summary["results_in_store"] == day.attended and summary["deadletters"] == 1
    finally:
        worker.stop()
        proxy.stop()
