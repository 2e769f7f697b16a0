"""The embedded broker restarted mid-day, losing every topic, and the day rebuilt by the labs' resend.

Both runs of a day send it in two parts, with the whole pipeline drained in between; the faulted run loses the
broker between the parts: a new, empty broker on the same address, the worker's report of the loss
(``cact_broker_log_lost``), ``cact lab resend --since`` from the labs' spool, a worker restarted with
``--accept-broker-loss``, then the rest of the day. ``tests/integration/streams/test_broker_loss.py`` runs it
small, ``make soak`` at full size; both compare the end state row by row with the run without the loss.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.faults.compare import store_snapshot
from bench.faults.processes import fresh_dir
from bench.scrape import scrape, total
from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import delivery_plan
from producers.emitter import LabEmitter
from producers.simulator import SimDay
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore
from streams.broker import EmbeddedBroker, free_port
from streams.broker_watch import marks_path as broker_marks_path
from streams.kafka import ensure_topics, group_lag, wait_until_consumed


def send(settings: Settings, deliveries: list[Any]) -> None:
    with LabEmitter(settings) as emitter:
        for d in deliveries:
            if d.raw is not None:
                emitter.send_raw(d.topic, d.raw, d.key)
            else:
                emitter.send(d.event)
        emitter.flush()


def metric(port: int, name: str) -> float | None:
    return total(scrape(port), name)


def wait_for(what: str, check: Any, timeout: float, worker: WorkerProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if worker is not None:
            worker.check()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def drain(settings: Settings, worker: WorkerProcess, timeout: float = 180) -> None:
    asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=timeout, progress=worker.check))


def parts(day: SimDay) -> tuple[list[Any], list[Any]]:
    schedule, lab = delivery_plan(day)
    half = len(lab) // 2
    return schedule + lab[:half], lab[half:]


def run(day: SimDay, tmp: Path, database_url: str, *, lose_broker: bool, drain_timeout: float = 180
        ) -> dict[str, Any]:
    """One run; returns the store's snapshot and, for the faulted run, what the worker showed while halted."""
    fresh_dir(tmp)
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
        drain(settings, worker, drain_timeout)
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
                [sys.executable, "-m", "cact.cli", "lab", "resend", "--since",
                 time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started - 60)), "--timeout", "120"],
                env={**os.environ, **settings_env(settings)}, capture_output=True, text=True, timeout=180)
            assert resend.returncode == 0, resend.stdout + resend.stderr
            time.sleep(3 * settings.broker_check_seconds)  # a halted worker must stay halted: nothing processed
            lag = asyncio.run(
                group_lag(settings, settings.app_id, [t for t in consumer_groups(settings)[settings.app_id]]))
            seen["lag_while_halted"] = lag
            seen["still_lost"] = metric(settings.worker_web_port, "cact_broker_log_lost")
            worker.stop()
            worker = WorkerProcess(settings, tmp / "worker-2.log", args=["--accept-broker-loss"])
            drain(settings, worker, drain_timeout)
            seen["lost_after_restart"] = metric(settings.worker_web_port, "cact_broker_log_lost")
        send(settings, second)
        drain(settings, worker, drain_timeout)
        seen["snapshot"] = store_snapshot(ResultsStore(database_url))
        return seen
    finally:
        worker.stop()
        broker.stop()




_HELD = "held until the schedule arrived: "


def _reasons(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Reason and detail of each dead letter. The labs resend after the loss in their own order, so a malformed
    lab event may now arrive before its session's schedule: it is held, then refused with the same detail
    behind the prefix that says so (streams/processor.py ``_release``)."""
    return {(d["reason"], d["detail"].removeprefix(_HELD)) for d in rows}


def verdict(day: SimDay, reference: dict[str, Any], faulted: dict[str, Any]) -> list[str]:
    """What does not hold, one line each: the loss was shown and held, and the end state is the reference's.

    Dead letters are compared by reason and detail only: one belongs to a source position, and a malformed
    message resent into the new log is dead-lettered again at its new position (1 or 2 of each)."""
    from bench.faults.compare import compare_snapshots, format_diffs
    from bench.faults.reference import check_against_truth

    problems = [f"reference: {p}" for p in check_against_truth(day, reference["snapshot"])]
    if not faulted.get("lag_while_halted"):
        problems.append("the halted worker's group showed lag 0")
    if faulted.get("still_lost") != 1.0:
        problems.append(f"cact_broker_log_lost was {faulted.get('still_lost')} while halted, not 1")
    if faulted.get("lost_after_restart") != 0.0:
        problems.append(f"cact_broker_log_lost was {faulted.get('lost_after_restart')} after the accepted restart")
    expected, observed = dict(reference["snapshot"]), dict(faulted["snapshot"])
    want, got = expected.pop("deadletters"), observed.pop("deadletters")
    diffs = [d for d in compare_snapshots(expected, observed) if d.differences]
    if diffs:
        problems.append(format_diffs(diffs))
    if _reasons(got) != _reasons(want) or not len(want) <= len(got) <= 2 * len(want):
        problems.append(f"dead letters: {len(got)} after the loss, {len(want)} in the reference, or other reasons: "
                        f"only after {sorted(_reasons(got) - _reasons(want))}, "
                        f"only before {sorted(_reasons(want) - _reasons(got))}")
    return problems


def broker_loss_day(day: SimDay, workdir: Path, *, drain_timeout: float = 180) -> tuple[list[str], dict[str, Any]]:
    """The day without and with the loss, each into a fresh database: (problems, facts for a report)."""
    from bench.faults.harness import fresh_database

    started = time.monotonic()
    with fresh_database(prefix="cact_loss") as reference_db:
        reference = run(day, workdir / "reference", reference_db, lose_broker=False, drain_timeout=drain_timeout)
    with fresh_database(prefix="cact_loss") as faulted_db:
        faulted = run(day, workdir / "lost", faulted_db, lose_broker=True, drain_timeout=drain_timeout)
    facts = {"participants": len(day.truth), "lag_while_halted": faulted.get("lag_while_halted"),
             "results": sum(r["status"] == "current" for r in faulted["snapshot"]["results"]),
             "seconds": round(time.monotonic() - started, 1)}
    return verdict(day, reference, faulted), facts
