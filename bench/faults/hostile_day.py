"""A simulated exam day with hostile records interleaved, through a real broker, worker and sink, then counted.

What "nothing lost, nothing wrong" means against hostile input, checked record by record: every hostile record
the broker accepted has exactly the outcome ``bench/faults/hostile.py`` says it must have, found by its source
position (topic, partition, offset) among the stored dead letters: a dead letter with one of the expected
reasons, or, for state-growing records, either processed or refused ``state_limit``. A record that is neither
processed nor dead-lettered has *vanished*; the count must be 0. The valid day must still end exactly as its
ground truth says (``bench.faults.reference.check_against_truth``), no process may exit, and the worker's peak
memory is measured (``VmHWM``) against the bound the caller states.

Valid events go through the lab emitter as labs send them; hostile records at the same time through
``bench.faults.hostile_stream`` (a plain kafka-python producer, which sends whatever bytes, keys, headers and
timestamps it is given; the emitter refuses most of them, as it should), whose ``account`` gives each record's
fate. The kill scenario with hostile records (``bench.faults.scenarios.hostile_under_kills``) uses the same two.
Used by ``tests/integration/streams/test_hostile_input.py`` (small) and ``make soak`` (100,000 records).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.faults.compare import store_snapshot
from bench.faults.hostile import DAY_SAFE_KINDS, HostileRecord, iter_hostile
from bench.faults.hostile_stream import HostileStream, account
from bench.faults.processes import fresh_dir
from bench.faults.reference import check_against_truth
from bench.scrape import scrape
from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import delivery_plan
from producers.emitter import LabEmitter
from producers.simulator import SimConfig, build_day
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.reasons import Reason
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import ensure_topics, wait_until_consumed


@dataclass
class HostileDayReport:
    participants: int
    hostile: int
    kinds: int
    sessions: int  # the valid day's sessions
    broker_refused: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # dead_lettered / state_limit / processed
    vanished: list[str] = field(default_factory=list)
    wrong_reason: list[str] = field(default_factory=list)
    valid_dead_lettered: int = 0
    valid_letters: list[str] = field(default_factory=list)  # a few of them: reason and detail
    truth_problems: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)
    worker_peak_rss_mb: float = 0.0
    state_keys: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.vanished or self.wrong_reason or self.valid_dead_lettered or self.truth_problems or self.exits)

    def explain(self, first: int = 8) -> str:
        lines = [f"{len(self.vanished)} vanished, {len(self.wrong_reason)} with a wrong reason, "
                 f"{self.valid_dead_lettered} valid events dead-lettered, {len(self.truth_problems)} truth problems, "
                 f"exits: {self.exits or 'none'}"]
        lines += [f"  vanished: {v}" for v in self.vanished[:first]]
        lines += [f"  wrong reason: {w}" for w in self.wrong_reason[:first]]
        lines += [f"  truth: {p}" for p in self.truth_problems[:first]]
        lines += [f"  valid event dead-lettered: {v}" for v in self.valid_letters[:first]]
        return "\n".join(lines)


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _state_keys(port: int) -> dict[str, float]:
    """``cact_state_keys`` by table."""
    return {s.labels["table"]: s.value for s in scrape(port, timeout=5) or () if s.name == "cact_state_keys"}


def run_hostile_day(workdir: Path, database_url: str, *, participants: int, hostile: int, seed: int = 12,
                    settings_overrides: dict[str, Any] | None = None, timeout: float = 600,
                    progress: Callable[[str, int, int], None] | None = None) -> HostileDayReport:
    """Send a day with ``hostile`` records interleaved; ``progress(phase, done, total)`` for a display."""
    started = time.monotonic()
    fresh_dir(workdir)
    registry = BlueprintRegistry.from_dir()
    day = build_day(SimConfig(participants=participants, seats=30, malformed=0, seed=seed), registry)
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=workdir / "broker.log") as broker:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap, database_url=database_url,
                            data_dir=workdir / "worker", worker_web_port=free_port(),
                            lab_spool_path=workdir / "lab-spool.db", sink_in_worker=False,
                            wall_clock_lag_seconds=365 * 86400.0, **(settings_overrides or {}))
        asyncio.run(ensure_topics(settings))
        store = ResultsStore(database_url)
        store.create_schema()
        records = list(iter_hostile(day, hostile, seed=seed, kinds=DAY_SAFE_KINDS,
                                    max_message_bytes=settings.max_message_bytes, registry=registry))
        report = HostileDayReport(participants=participants, hostile=hostile, kinds=len({r.kind for r in records}),
                                  sessions=len(day.sessions))
        worker = WorkerProcess(settings, workdir / "worker.log")
        env = {**os.environ, **settings_env(settings)}
        sink_log = (workdir / "sink.log").open("ab")
        sink = subprocess.Popen([sys.executable, "-m", "cact.cli", "sink"], env=env, stdout=sink_log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            stream = _send(settings, day, records, progress)
            asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=timeout,
                                            progress=worker.check))
            report.worker_peak_rss_mb = round(_peak_rss_mb(worker.proc.pid), 1)
            report.state_keys = _state_keys(settings.worker_web_port)
            for name, proc in (("worker", worker.proc), ("sink", sink)):
                if proc.poll() is not None:
                    report.exits.append(f"{name} exited with {proc.returncode}")
            report.broker_refused = sum(stream.refused.values())
            fates, rest = account(stream.sent, store_snapshot(store), {t.nip for t in day.truth.values()},
                                  set(day.sessions))
            report.outcomes = Counter(fates["fates"])
            report.outcomes["state_limit"] = sum(1 for d in _letters(store, stream.sent) if d == Reason.STATE_LIMIT)
            report.vanished = [f"{kind}: {n}" for kind, n in fates["vanished_by_kind"].items()]
            report.wrong_reason = [f"{what}: {n}" for what, n in fates["other_reason"].items()]
            report.valid_dead_lettered = len(rest["deadletters"])
            report.valid_letters = [f"{d['source_topic']}[{d['source_partition']}]@{d['source_offset']}: "
                                    f"{d['reason']}: {str(d['detail'])[:160]}" for d in rest["deadletters"][:8]]
            report.truth_problems = [p for p in check_against_truth(day, rest) if "dead letters" not in p]
        finally:
            worker.stop()
            if sink.poll() is None:
                sink.terminate()
                try:
                    sink.wait(20)
                except subprocess.TimeoutExpired:
                    sink.kill()
            sink_log.close()
            store.dispose()
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _send(settings: Settings, day: Any, records: list[HostileRecord],
          progress: Callable[[str, int, int], None] | None) -> HostileStream:
    """The schedule, drained; then the lab events through the emitter while the hostile records go out beside
    them from an outside client (``HostileStream``, which keeps each record's position)."""
    schedule, lab = delivery_plan(day)
    with LabEmitter(settings) as emitter:
        # The schedule exists days before the exam: processed before the first lab event, as on a real day, so
        # a low cap on unscheduled sessions can only ever refuse the hostile ones.
        for d in schedule:
            emitter.send(d.event) if d.raw is None else emitter.send_raw(d.topic, d.raw, d.key)
        emitter.flush()
        asyncio.run(wait_until_consumed(settings, {settings.app_id: [topics.SCHEDULE.name]}, timeout=120))
        stream = HostileStream(settings, records, len(records), seconds=0.0).start()
        for n, d in enumerate(lab, 1):
            emitter.send(d.event) if d.raw is None else emitter.send_raw(d.topic, d.raw, d.key)
            if progress is not None and n % 500 == 0:
                progress("sending", n, len(lab))
        emitter.flush()
    return stream.join(600)


def _letters(store: ResultsStore, sent: list[Any]) -> list[str]:
    """The reasons of the dead letters at the hostile records' positions."""
    positions = {(s.topic, s.partition, s.offset) for s in sent}
    with store.engine.connect() as conn:
        return [reason for t, p, o, reason in conn.execute(text(
            "SELECT source_topic, source_partition, source_offset, reason FROM deadletters")) if (t, p, o) in positions]
