"""Watching processes and the store during a bench run: CPU, memory, results as they appear, scratch databases."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("CACT_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def peak_rss_mb(pid: int) -> float:
    """The process's high-water RSS (VmHWM): the kernel keeps the peak, so sampling cannot miss it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: a figure the other load on a shared machine does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy (user, nice, system, irq, softirq; not idle, I/O wait or time stolen by
    the hypervisor): what the day cost the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")


class ResultWatcher(threading.Thread):
    """Polls the store for new results of one activity and records when each NIP's result first appears.

    Each poll reads only the rows stamped within ``overlap`` seconds of the newest stamp seen so far, not every
    row of the activity: the paced phase polls 50 times a second beside a pipeline that needs most of both
    cores, and re-reading ten seconds of results at 200 participants/s (2,000 rows a poll, about 4 ms of client
    and server CPU) cost a fifth of a core, inflating the latency it measures. The narrow window misses nothing
    because every writer of the store here (the sink, or a peer's loop) commits its batches one after another
    and stamps ``created_at`` once per batch before writing it: a batch not yet visible was stamped after every
    visible one. ``overlap`` only absorbs clock steps; a row it still missed would end a run in a timeout, never
    in a latency shorter than the real one.
    """

    def __init__(self, url: str, activity_id: str, interval: float = 0.02, overlap: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(url)
        self.activity_id, self.interval, self.overlap = activity_id, interval, timedelta(seconds=overlap)
        self.seen: dict[str, float] = {}
        self.reads: list[int] = []  #: rows each poll read: what the window bounds
        self._halt = threading.Event()

    def run(self) -> None:
        since = datetime(2000, 1, 1, tzinfo=UTC)
        query = text("SELECT nip, created_at FROM results WHERE activity_id = :a AND created_at >= :since")
        with self.engine.connect() as conn:
            while not self._halt.is_set():
                rows = conn.execute(query, {"a": self.activity_id, "since": since}).all()
                conn.commit()
                now = time.time()
                self.reads.append(len(rows))
                for nip, created in rows:
                    self.seen.setdefault(nip, now)
                    since = max(since, created - self.overlap)
                time.sleep(self.interval)
        self.engine.dispose()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, check: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def create_database(stack: ExitStack) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    stack.callback(drop)
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
