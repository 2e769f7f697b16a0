"""The project beside two peers on the same input in the same run: CPU, memory, rate, idle cost, stored rows.

A peer is what a competent user would build instead (bench/peers/): a plain aiokafka loop and a Quix Streams
application, both over the project's own decode, rules and store writer, so only the plumbing differs. Every
contender reads the same input topics of the run's broker (a consumer group of its own, from the start) into a
database of its own, and is measured the same way:

* CPU (user + system, all threads, from /proc) per process, from the start of consumption (the project: the
  worker's first event; a peer: its "ready" line, printed once its consumer started) to the last result
  visible in its store, per participant; summed over its processes;
* participants/s from the first to the last result visible (the store polled every 250 ms);
* peak RSS per process (VmHWM);
* idle CPU per second over ``IDLE_SECONDS`` once the day is in and the input has gone quiet;
* its store's rows, compared table by table with the project's (bench/faults/compare.py: every column but the
  wall-clock ones).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults.compare import Snapshot, compare_snapshots, format_diffs, store_snapshot
from bench.watch import ResultWatcher, cpu_seconds, create_database, peak_rss_mb, wait_for
from cact.processes import WorkerProcess
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore

#: How long idle CPU is sampled, after ``IDLE_SETTLE_SECONDS`` for the last batch's commits to go out.
IDLE_SECONDS = 10.0
IDLE_SETTLE_SECONDS = 3.0
ROOT = Path(__file__).resolve().parent.parent
#: The Quix Streams peer's interpreter (``make peers``): quixstreams pins pydantic below the project's own.
QUIX_PYTHON = Path(os.environ.get("CACT_BENCH_QUIX_PYTHON", ROOT / ".venv-peers" / "bin" / "python"))


@dataclass(frozen=True)
class Peer:
    module: str
    python: Path | None = None  # None: this interpreter
    install: str = ""  # what to run when ``python`` is missing


#: The peers, by the name the bench reports them under.
PEERS = {"plain_aiokafka": Peer("bench.peers.plain_loop"),
         "quix_streams": Peer("bench.peers.quix_peer", QUIX_PYTHON, "make peers")}


class PeerProcess(WorkerProcess):
    """``python -m <module>`` with the run's settings in its environment, in its own process group."""

    def __init__(self, peer: Peer, settings: Settings, log_path: Path) -> None:
        python = peer.python or Path(sys.executable)
        if not os.access(python, os.X_OK):
            raise SystemExit(f"{peer.module} runs with {python}, which is missing: run `{peer.install}` first")
        env = {**os.environ, **settings_env(settings)}
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen([str(python), "-m", peer.module], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        self.log_path = log_path

    def ready(self) -> bool:
        return b"ready" in self.log_path.read_bytes()


@dataclass
class Measured:
    """One contender's figures: per process, then the totals the goals are judged on."""

    name: str
    participants: int
    cpu_seconds: dict[str, float]
    peak_rss_mb: dict[str, float]
    idle_ms_per_s: dict[str, float]
    seconds: float
    snapshot: Snapshot = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        per = {p: round(s * 1000 / self.participants, 2) for p, s in self.cpu_seconds.items()}
        return {
            "cpu_ms_per_participant": per,
            "total_cpu_ms_per_participant": round(sum(self.cpu_seconds.values()) * 1000 / self.participants, 2),
            "idle_cpu_ms_per_s": {p: round(v, 1) for p, v in self.idle_ms_per_s.items()},
            "total_idle_cpu_ms_per_s": round(sum(self.idle_ms_per_s.values()), 1),
            "participants_per_s": round(self.participants / self.seconds, 1) if self.seconds > 0 else None,
            "peak_rss_mb": {p: round(v, 1) for p, v in self.peak_rss_mb.items()},
        }


def idle_cpu(pids: Mapping[str, int], seconds: float = IDLE_SECONDS,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, float]:
    """ms of CPU per second each process spends while nothing arrives."""
    before = {p: cpu_seconds(pid) for p, pid in pids.items()}
    started = time.monotonic()
    sleep(seconds)
    elapsed = time.monotonic() - started
    return {p: (cpu_seconds(pid) - before[p]) * 1000 / elapsed for p, pid in pids.items()}


def watch_until(watcher: ResultWatcher, participants: int, timeout: float, check: Callable[[], None],
                advance: Callable[[int], None]) -> tuple[float, float]:
    """Until every participant's result is visible; (first, last) wall-clock times a result appeared."""
    deadline = time.monotonic() + timeout
    while len(watcher.seen) < participants:
        check()
        advance(len(watcher.seen))
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(watcher.seen)} of {participants} results after {timeout:.0f} s")
        time.sleep(0.1)
    advance(len(watcher.seen))
    return min(watcher.seen.values()), max(watcher.seen.values())


def snapshot(db_url: str) -> Snapshot:
    store = ResultsStore(db_url)
    try:
        return store_snapshot(store)
    finally:
        store.dispose()


def run_peer(name: str, settings: Settings, work: Path, activity_id: str, participants: int, *,
             timeout: float, advance: Callable[[int], None]) -> Measured:
    """One peer from a fresh database to the day's last result, then its idle cost and its rows."""
    with ExitStack() as stack:
        db_url = create_database(stack)
        store = ResultsStore(db_url)
        store.create_schema()  # before the watcher polls it: a peer may migrate only once it has joined its group
        store.dispose()
        peer_settings = settings.model_copy(update={"database_url": db_url, "app_id": f"{settings.app_id}-{name}"})
        peer = PeerProcess(PEERS[name], peer_settings, work / f"{name}.log")
        stack.callback(peer.stop)
        wait_for(peer.ready, 120, f"the {name} peer to start", peer.check)
        cpu_start = cpu_seconds(peer.proc.pid)
        watcher = ResultWatcher(db_url, activity_id, interval=0.25)
        watcher.start()
        stack.callback(watcher.stop)
        first, last = watch_until(watcher, participants, timeout, peer.check, advance)
        cpu_day = cpu_seconds(peer.proc.pid) - cpu_start
        watcher.stop()
        time.sleep(IDLE_SETTLE_SECONDS)
        idle = idle_cpu({name: peer.proc.pid})
        peer.check()
        return Measured(name, participants, {name: cpu_day}, {name: peak_rss_mb(peer.proc.pid)}, idle,
                        last - first, snapshot(db_url))


def compare_rows(reference: Snapshot, others: Mapping[str, Snapshot]) -> dict[str, dict[str, Any]]:
    """Per peer: identical or not, the row counts compared, and the first differences when there are some."""
    out: dict[str, dict[str, Any]] = {}
    for name, observed in others.items():
        diffs = [d for d in compare_snapshots(reference, observed) if d.differences]
        out[name] = {"identical": not diffs,
                     "rows": sum(len(rows) for rows in reference.values()),
                     "differences": format_diffs(diffs) if diffs else ""}
    return out
