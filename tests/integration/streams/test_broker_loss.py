"""The embedded broker restarted mid-day, losing every topic: the worker says so and stops, the labs resend,
and the day ends exactly as the same day without the loss (issue 12, "Broker loss is loud and recoverable").

Both runs send the same day in two parts, with the whole pipeline drained in between; the faulted run loses
the broker between the parts. Everything is compared row by row, except dead letters' positions: a dead letter
belongs to a source position, and a resent log has new positions (docs/operations.md)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.faults.compare import compare_snapshots, format_diffs, store_snapshot
from producers.daysender import delivery_plan
from producers.emitter import LabEmitter
from producers.simulator import SimConfig, SimDay, build_day
from schemas.blueprint import BlueprintRegistry
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore
from streams.app import broker_marks_path
from streams.broker import EmbeddedBroker, free_port
from streams.demo import WorkerProcess, consumer_groups
from streams.kafka import ensure_topics, group_lag, wait_until_consumed

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def send(settings: Settings, deliveries: list[Any]) -> None:
    with LabEmitter(settings) as emitter:
        for d in deliveries:
            if d.raw is not None:
                emitter.send_raw(d.topic, d.raw, d.key)
            else:
                emitter.send(d.event)
        emitter.flush()


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            body = r.read().decode()
    except OSError:
        return None
    values = [float(line.split()[-1]) for line in body.splitlines() if line.split(" ")[0] == name]
    return values[0] if values else None


def wait_for(what: str, check: Any, timeout: float, worker: WorkerProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if worker is not None:
            worker.check()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def drain(settings: Settings, worker: WorkerProcess) -> None:
    asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))


def parts(day: SimDay) -> tuple[list[Any], list[Any]]:
    schedule, lab = delivery_plan(day)
    half = len(lab) // 2
    return schedule + lab[:half], lab[half:]


def run(day: SimDay, tmp: Path, database_url: str, *, lose_broker: bool) -> dict[str, Any]:
    port = free_port()
    broker = EmbeddedBroker("127.0.0.1", port, log_path=tmp / "broker-1.log").start()
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap, database_url=database_url,
                        data_dir=tmp / "worker", worker_web_port=free_port(), lab_spool_path=tmp / "lab-spool.db",
                        wall_clock_lag_seconds=365 * 86400.0, broker_check_seconds=1.0)
    asyncio.run(ensure_topics(settings))
    first, second = parts(day)
    worker = WorkerProcess(settings, tmp / "worker-1.log")
    seen: dict[str, Any] = {}
    try:
        started = time.time()
        send(settings, first)
        drain(settings, worker)
        if lose_broker:
            marks = broker_marks_path(settings)
            wait_for("the worker's broker marks", lambda: marks.exists() and sum(
                o for _, _, o in json.loads(marks.read_text())["marks"]) >= len(first), 30, worker)
            broker.stop()
            broker = EmbeddedBroker("127.0.0.1", port, log_path=tmp / "broker-2.log").start()  # empty, same address
            asyncio.run(ensure_topics(settings))
            wait_for("the worker to report the loss",
                     lambda: metric(settings.worker_web_port, "cact_broker_log_lost") == 1.0, 60, worker)
            assert worker.alive(), "the worker stays up to say so"
            resend = subprocess.run(
                [sys.executable, "-m", "streams.cli", "lab", "resend", "--since",
                 time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started - 60)), "--timeout", "120"],
                env={**os.environ, **settings_env(settings)}, capture_output=True, text=True, timeout=180)
            assert resend.returncode == 0, resend.stdout + resend.stderr
            time.sleep(3 * settings.broker_check_seconds)  # a halted worker must stay halted: nothing processed
            lag = asyncio.run(group_lag(settings, settings.app_id, [t for t in consumer_groups(settings)[settings.app_id]]))
            seen["lag_while_halted"] = lag
            seen["still_lost"] = metric(settings.worker_web_port, "cact_broker_log_lost")
            worker.stop()
            worker = WorkerProcess(settings, tmp / "worker-2.log", args=["--accept-broker-loss"])
            drain(settings, worker)
            seen["lost_after_restart"] = metric(settings.worker_web_port, "cact_broker_log_lost")
        send(settings, second)
        drain(settings, worker)
        seen["snapshot"] = store_snapshot(ResultsStore(database_url))
        return seen
    finally:
        worker.stop()
        broker.stop()


def test_a_broker_that_lost_its_data_is_reported_and_the_resent_day_equals_the_reference(
        tmp_path: Path, pg_database: str, scorer: Any) -> None:
    day = build_day(SimConfig(participants=120, seats=30, malformed=3, seed=31), BlueprintRegistry.from_dir())
    from sqlalchemy import create_engine, text

    reference_db = pg_database.rsplit("/", 1)[0] + "/" + pg_database.rsplit("/", 1)[1] + "_ref"
    admin = create_engine(pg_database.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{reference_db.rsplit("/", 1)[1]}"'))
    try:
        reference = run(day, tmp_path / "reference", reference_db, lose_broker=False)["snapshot"]
        faulted = run(day, tmp_path / "lost", pg_database, lose_broker=True)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{reference_db.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()

    assert faulted["lag_while_halted"] > 0, "a halted worker must never show lag 0"
    assert faulted["still_lost"] == 1.0 and faulted["lost_after_restart"] == 0.0
    observed = faulted["snapshot"]
    current = [r for r in reference["results"] if r["status"] == "current"]
    assert len(current) == day.attended > 0
    letters = {t: observed.pop(t) for t in ("deadletters",)}["deadletters"]
    expected = reference.pop("deadletters")
    diffs = [d for d in compare_snapshots(reference, observed) if d.differences]
    assert not diffs, format_diffs(diffs)
    # each malformed message is dead-lettered at its position in each log it was in: the same ones, in both logs
    assert {(d["reason"], d["detail"]) for d in letters} == {(d["reason"], d["detail"]) for d in expected}
    assert len(expected) == 3 <= len(letters) <= 6
