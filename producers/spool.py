"""The lab emitter's durable spool: every event is in this SQLite file before Kafka sees it.

A lab's network, the broker or the lab process itself can fail at any moment during an exam, and an answer
sheet must not be lost to any of them. So ``LabEmitter.send`` commits the event here and returns; a sender
thread delivers the file's pending rows to Kafka in ``seq`` order and marks them sent once the broker has
acknowledged them. A row is therefore *pending* until acknowledged, *sent* after, or *failed* when Kafka
refused that record for good (too large for the broker, invalid topic): failed rows are never resent and
stay until an operator looks at them (``cact lab status``).

Durability: WAL journal, and a commit before ``send`` returns, so a ``kill -9`` of the lab process loses
nothing. ``synchronous=NORMAL`` (the default) survives a process crash but may lose the last commits on a
power cut; ``FULL`` survives that too, at several times the cost per event (``CACT_LAB_SPOOL_SYNCHRONOUS``).

Ownership: several emitters may share one file (a lab PC running a lab app and an operator's ``cact lab
send``, or developers' tests). Each emitter registers as an *owner* and sends only rows it owns, so no row
is sent by two live processes at once. Rows of an owner that is gone (closed, killed, or silent for longer
than the lease) are *adopted* by the next emitter for the same Kafka cluster (``destination``), which sends
them before anything new: unsent events are resent in their original order. Rows spooled for another
cluster are never sent elsewhere (a leftover from a test broker must not reach production).

Retention: a sent row keeps its payload for ``keep_sent_hours`` after Kafka acknowledged it (default 24 h),
then the row is pruned. An acknowledgement only says the broker had the event then: a broker that loses its
data afterwards (the embedded memory broker restarted, a cluster rebuilt) loses it too, and the spool is the
only copy left, so :meth:`Spool.requeue_sent` (``cact lab resend --since``) can put acknowledged rows back to
pending, in their original ``seq`` order, for as long as they are kept. Pruned rows are counted per minute
of their send time (table ``pruned``), so a resend can say how many events it could no longer send. Pending
and failed rows are kept whole and never pruned. SQLite reuses the pages of pruned rows, so the file grows to
the size of the retention window and stays there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

#: 2: payloads kept after the acknowledgement, and the ``pruned`` table (a v1 file is upgraded in place).
SCHEMA_VERSION = 2
#: An owner that has not written a heartbeat for this long is gone, even if its pid seems alive.
DEFAULT_LEASE_SECONDS = 15.0
RAW_EVENT_TYPE = "(raw)"
#: How long the per-minute counts of pruned rows are kept (a few dozen bytes per minute of sending).
PRUNED_HISTORY_DAYS = 31

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order events were handed to the emitter
    owner       TEXT NOT NULL,                      -- the emitter that sends it (see owners)
    destination TEXT NOT NULL,                      -- the Kafka bootstrap servers it is meant for
    topic       TEXT NOT NULL,
    key         BLOB,
    value       BLOB NOT NULL,
    event_id    TEXT,                               -- null for raw (unvalidated) messages
    event_type  TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,         -- deliveries tried and not acknowledged
    last_error  TEXT,
    created_at  REAL NOT NULL,                      -- unix time (UTC) it was spooled
    sent_at     REAL                                -- unix time the broker acknowledged it
);
CREATE INDEX IF NOT EXISTS events_pending ON events (owner, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS events_sent ON events (sent_at) WHERE status = 'sent';
CREATE TABLE IF NOT EXISTS owners (
    owner        TEXT PRIMARY KEY,
    destination  TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
-- Single autosaved answers waiting to be batched into one AnswersSaved (see LabEmitter.autosave).
CREATE TABLE IF NOT EXISTS autosaves (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner       TEXT NOT NULL,
    destination TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    nip         TEXT NOT NULL,
    section     TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    option      TEXT,
    at          TEXT NOT NULL,                      -- the answer's time, RFC 3339 with offset
    lab_id      TEXT NOT NULL,
    created_at  REAL NOT NULL
);
-- How many acknowledged rows were pruned (payload and all), per destination and minute of their send time:
-- what a resend of that time can no longer send.
CREATE TABLE IF NOT EXISTS pruned (
    destination TEXT NOT NULL,
    minute      REAL NOT NULL,                      -- sent_at rounded down to the minute (unix time)
    events      INTEGER NOT NULL,
    PRIMARY KEY (destination, minute)
);
"""


def normalize_destination(bootstrap_servers: str) -> str:
    """One spelling per cluster address list, so ``a:1,b:2`` and ``b:2, a:1`` are the same destination."""
    return ",".join(sorted(hp.strip() for hp in bootstrap_servers.split(",") if hp.strip()))


def _json_list(ints: Iterable[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ints) + "]"


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows: rely on the lease there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


@dataclass(frozen=True)
class SpoolRow:
    seq: int
    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class NewRow:
    topic: str
    key: bytes | None
    value: bytes
    event_id: str | None
    event_type: str


@dataclass(frozen=True)
class Requeued:
    """What :meth:`Spool.requeue_sent` found among the acknowledged rows sent in the time range."""

    events: int                  # put back to pending, for this emitter to send again
    first_seq: int | None
    last_seq: int | None
    payload_gone: int            # acknowledged in the range, but the payload was pruned: cannot be resent
    other_destinations: dict[str, int] = field(default_factory=dict)  # resendable rows meant for other clusters


@dataclass(frozen=True)
class BufferedAnswer:
    id: int
    session_id: str
    nip: str
    section: str
    item_id: str
    option: str | None
    at: str
    lab_id: str


class Spool:
    """One emitter's view of a spool file: append, read its pending rows in order, record outcomes.

    Thread-safe (one connection behind a lock): the caller's thread appends while the sender thread reads
    and marks rows. Other processes on the same file are kept apart by ``owner``.
    """

    def __init__(self, path: Path, destination: str, *,
                 synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
                 lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock  # unix time; injected by tests of retention and leases
        self.destination = normalize_destination(destination)
        self.owner = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self._host = socket.gethostname()
        self._lock = threading.Lock()
        self._db = connect(self.path, synchronous=synchronous)
        now = self._clock()
        with self._tx() as db:
            db.execute("INSERT INTO owners VALUES (?, ?, ?, ?, ?, ?)",
                       (self.owner, self.destination, os.getpid(), self._host, now, now))

    # ---- transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- writing ------------------------------------------------------------------------------

    def _insert(self, db: sqlite3.Connection, rows: Sequence[NewRow], now: float) -> list[int]:
        """Insert rows inside the caller's transaction; their ``seq`` numbers, in order."""
        seqs: list[int] = []
        for r in rows:
            cur = db.execute(
                "INSERT INTO events (owner, destination, topic, key, value, event_id, event_type, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.owner, self.destination, r.topic, r.key, r.value, r.event_id, r.event_type, now))
            seqs.append(int(cur.lastrowid or 0))
        return seqs

    def append(self, rows: Sequence[NewRow]) -> list[int]:
        """Spool rows in one transaction, committed when this returns; their ``seq`` numbers, in order."""
        now = self._clock()
        if len(rows) == 1:  # one statement is its own transaction: a third of the cost of BEGIN..COMMIT
            r = rows[0]
            with self._lock:
                cur = self._db.execute(
                    "INSERT INTO events (owner, destination, topic, key, value, event_id, event_type, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.owner, self.destination, r.topic, r.key, r.value, r.event_id, r.event_type, now))
                return [int(cur.lastrowid or 0)]
        with self._tx() as db:
            return self._insert(db, rows, now)

    def pending(self, after_seq: int = 0, limit: int = 1000) -> list[SpoolRow]:
        """This emitter's pending rows after ``after_seq``, oldest first."""
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, topic, key, value FROM events WHERE owner = ? AND status = 'pending' AND seq > ?"
                " ORDER BY seq LIMIT ?", (self.owner, after_seq, limit))
            return [SpoolRow(int(s), t, k, v) for s, t, k, v in cur.fetchall()]

    def oldest_pending_seq(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(seq) FROM events WHERE owner = ? AND status = 'pending'",
                                   (self.owner,)).fetchone()
        return None if row[0] is None else int(row[0])

    def newest_pending_seq(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM events WHERE owner = ? AND status = 'pending'",
                                   (self.owner,)).fetchone()
        return None if row[0] is None else int(row[0])

    def count_pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events WHERE owner = ? AND status = 'pending'",
                                        (self.owner,)).fetchone()[0])

    def mark_sent(self, seqs: Iterable[int]) -> None:
        # One statement, not one per row: each statement gives up the GIL and may wait a whole switch
        # interval to get it back while kafka-python's thread is busy. The payload stays: a broker that
        # loses its data later makes this file the only copy (see requeue_sent).
        with self._lock:
            self._db.execute("UPDATE events SET status = 'sent', sent_at = ? WHERE status = 'pending'"
                             " AND seq IN"
                             " (SELECT j.value FROM json_each(?) AS j)", (self._clock(), _json_list(seqs)))

    def mark_failed(self, seq: int, error: str) -> None:
        """Kafka refused this record for good: keep it for the operator, never resend it."""
        with self._tx() as db:
            db.execute("UPDATE events SET status = 'failed', attempts = attempts + 1, last_error = ? WHERE seq = ?",
                       (error[:2000], seq))

    def note_attempt_failed(self, seqs: Iterable[int], error: str) -> None:
        """These rows were handed to Kafka and not acknowledged; they stay pending and are resent."""
        with self._lock:
            self._db.execute("UPDATE events SET attempts = attempts + 1, last_error = ? WHERE status = 'pending'"
                             " AND seq IN (SELECT j.value FROM json_each(?) AS j)", (error[:2000], _json_list(seqs)))

    # ---- owners -------------------------------------------------------------------------------

    def heartbeat(self) -> None:
        with self._tx() as db:
            db.execute("UPDATE owners SET heartbeat_at = ? WHERE owner = ?", (self._clock(), self.owner))

    def _live_owners(self, db: sqlite3.Connection) -> set[str]:
        cutoff = self._clock() - self.lease_seconds
        live = {self.owner}
        for owner, pid, host, heartbeat_at in db.execute("SELECT owner, pid, host, heartbeat_at FROM owners"):
            if heartbeat_at >= cutoff and (host != self._host or _pid_alive(int(pid))):
                live.add(owner)
        return live

    def adopt(self) -> int:
        """Take over pending rows and buffered answers, for this destination, of owners that are gone.

        They keep their ``seq``, so the sender delivers them before anything spooled later. Returns the
        number of events adopted.
        """
        with self._tx() as db:
            live = self._live_owners(db)
            marks = ",".join("?" * len(live))
            db.execute(f"DELETE FROM owners WHERE owner NOT IN ({marks})", tuple(live))
            cur = db.execute(
                f"UPDATE events SET owner = ? WHERE status = 'pending' AND destination = ? AND owner NOT IN ({marks})",
                (self.owner, self.destination, *live))
            db.execute(f"UPDATE autosaves SET owner = ? WHERE destination = ? AND owner NOT IN ({marks})",
                       (self.owner, self.destination, *live))
            return int(cur.rowcount)

    # ---- autosave buffer ----------------------------------------------------------------------

    def buffer_answer(self, session_id: str, nip: str, section: str, item_id: str, option: str | None,
                      at: str, lab_id: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO autosaves (owner, destination, session_id, nip, section, item_id, option, at, lab_id,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.owner, self.destination, session_id, nip, section, item_id, option, at, lab_id, self._clock()))
            return int(cur.lastrowid or 0)

    def buffered_answers(self) -> list[BufferedAnswer]:
        """This emitter's buffered answers in the order they were saved (after adopt(): a dead owner's too)."""
        with self._lock:
            cur = self._db.execute(
                "SELECT id, session_id, nip, section, item_id, option, at, lab_id FROM autosaves WHERE owner = ?"
                " ORDER BY id", (self.owner,))
            return [BufferedAnswer(*r) for r in cur.fetchall()]

    def replace_answers(self, answer_ids: Sequence[int], rows: Sequence[NewRow]) -> list[int]:
        """Spool the batch events and drop the answers they carry, atomically: none lost, none sent twice.

        Several rows when one participant-section's answers did not fit one message; ``seq`` numbers in order.
        """
        now = self._clock()
        with self._tx() as db:
            seqs = self._insert(db, rows, now)
            db.execute("DELETE FROM autosaves WHERE id IN (SELECT j.value FROM json_each(?) AS j)",
                       (_json_list(answer_ids),))
        return seqs

    # ---- housekeeping -------------------------------------------------------------------------

    def prune_sent(self, keep_hours: float) -> int:
        """Delete rows acknowledged more than ``keep_hours`` ago, counting them per minute in ``pruned``."""
        now = self._clock()
        cutoff = now - keep_hours * 3600
        with self._tx() as db:
            db.execute(
                "INSERT INTO pruned (destination, minute, events)"
                " SELECT destination, CAST(sent_at / 60 AS INTEGER) * 60.0, COUNT(*) FROM events"
                " WHERE status = 'sent' AND sent_at < ? GROUP BY 1, 2"
                " ON CONFLICT (destination, minute) DO UPDATE SET events = events + excluded.events", (cutoff,))
            cur = db.execute("DELETE FROM events WHERE status = 'sent' AND sent_at < ?", (cutoff,))
            db.execute("DELETE FROM pruned WHERE minute < ?", (now - PRUNED_HISTORY_DAYS * 86400,))
            return int(cur.rowcount)

    def requeue_sent(self, since: float, until: float | None = None, *,
                     from_destination: str | None = None) -> Requeued:
        """Put acknowledged rows sent in ``[since, until)`` (unix times) back to pending, owned by this emitter.

        For a broker that lost what it had acknowledged. The rows keep their ``seq``, so they go out in their
        original order, ahead of anything this emitter spools later; their ``event_id`` makes the second
        delivery harmless downstream. ``from_destination``: take rows acknowledged by another cluster (one
        rebuilt at a new address) and send them to this emitter's; by default only this destination's.
        """
        source = self.destination if from_destination is None else normalize_destination(from_destination)
        upper = float("inf") if until is None else until
        with self._tx() as db:
            cur = db.execute(
                "UPDATE events SET status = 'pending', owner = ?, destination = ?, sent_at = NULL, last_error = NULL"
                " WHERE status = 'sent' AND destination = ? AND sent_at >= ? AND sent_at < ? AND length(value) > 0"
                " RETURNING seq", (self.owner, self.destination, source, since, upper))
            seqs = [int(r[0]) for r in cur.fetchall()]
            gone = db.execute(
                "SELECT COUNT(*) FROM events WHERE status = 'sent' AND destination = ? AND sent_at >= ?"
                " AND sent_at < ? AND length(value) = 0", (source, since, upper)).fetchone()[0]
            gone += db.execute(
                "SELECT COALESCE(SUM(events), 0) FROM pruned WHERE destination = ? AND minute + 60 > ? AND minute < ?",
                (source, since, upper)).fetchone()[0]
            others = dict(db.execute(
                "SELECT destination, COUNT(*) FROM events WHERE status = 'sent' AND destination != ? AND sent_at >= ?"
                " AND sent_at < ? AND length(value) > 0 GROUP BY destination", (source, since, upper)).fetchall())
        return Requeued(events=len(seqs), first_seq=min(seqs, default=None), last_seq=max(seqs, default=None),
                        payload_gone=int(gone), other_destinations={str(k): int(v) for k, v in others.items()})

    def close(self) -> None:
        """Leave the file: this owner's remaining rows are adopted by the next emitter on it."""
        with contextlib.suppress(sqlite3.Error):
            with self._tx() as db:
                db.execute("DELETE FROM owners WHERE owner = ?", (self.owner,))
        with self._lock:
            self._db.close()


def connect(path: Path, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open (creating if needed) a spool file in WAL mode with the schema; autocommit, explicit BEGINs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'FULL' else 'NORMAL'}")
    db.execute("PRAGMA busy_timeout = 30000")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        db.close()
        raise RuntimeError(f"{path} was written by a newer cact-pipeline (spool schema {version})")
    if version < SCHEMA_VERSION:
        db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
    return db


# --------------------------------------------------------------------------------------------------
# Status (read by ``cact lab status``; works on a spool nobody has open)
# --------------------------------------------------------------------------------------------------


def _local_iso(ts: float | None) -> str | None:
    """A unix time as the lab operator reads it and types it back (``--since``): local time with its offset."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).astimezone().isoformat(timespec="seconds")


def spool_status(path: Path, *, now: float | None = None) -> dict[str, Any]:
    """What the file holds: totals, oldest pending age, counts per destination, topic and event type, and what
    a resend could still send (acknowledged rows whose payload is kept, and since when).

    Never creates the file. No payloads, keys or NIPs are read, only counts, sizes and Kafka's error messages.
    """
    now = time.time() if now is None else now
    out: dict[str, Any] = {"path": str(path), "exists": path.exists(), "pending": 0, "sent": 0, "failed": 0,
                           "oldest_pending_age_seconds": None, "autosave_buffered": 0, "owners": 0, "groups": [],
                           "last_error": None, "resendable": 0, "resendable_bytes": 0, "resendable_since": None,
                           "pruned": 0, "pruned_sent_before": None}
    if not out["exists"]:
        return out
    db = sqlite3.connect(path, timeout=30)  # exists: checked above, so this creates nothing
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < 1:
            return out
        groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        for dest, topic, etype, status, n, oldest, kept in db.execute(
                "SELECT destination, topic, event_type, status, COUNT(*), MIN(created_at),"
                " SUM(length(value) > 0) FROM events"
                " GROUP BY destination, topic, event_type, status ORDER BY destination, topic, event_type"):
            g = groups.setdefault((dest, topic, etype), {"destination": dest, "topic": topic, "event_type": etype,
                                                         "pending": 0, "sent": 0, "failed": 0, "resendable": 0,
                                                         "oldest_pending_age_seconds": None})
            g[status] = n
            out[status] += n
            if status == "sent":
                g["resendable"] = kept
                out["resendable"] += kept
            if status == "pending":
                age = round(max(0.0, now - oldest), 1)
                g["oldest_pending_age_seconds"] = age
                prev = out["oldest_pending_age_seconds"]
                out["oldest_pending_age_seconds"] = age if prev is None else max(prev, age)
        out["groups"] = list(groups.values())
        size, since = db.execute("SELECT COALESCE(SUM(length(value)), 0), MIN(sent_at) FROM events"
                                 " WHERE status = 'sent' AND length(value) > 0").fetchone()
        out["resendable_bytes"], out["resendable_since"] = int(size), _local_iso(since)
        if version >= 2:
            pruned, last_minute = db.execute("SELECT COALESCE(SUM(events), 0), MAX(minute) FROM pruned").fetchone()
            out["pruned"] = int(pruned)
            out["pruned_sent_before"] = _local_iso(None if last_minute is None else last_minute + 60)
        out["autosave_buffered"] = db.execute("SELECT COUNT(*) FROM autosaves").fetchone()[0]
        out["owners"] = db.execute("SELECT COUNT(*) FROM owners").fetchone()[0]
        err = db.execute("SELECT last_error FROM events WHERE last_error IS NOT NULL AND status != 'sent'"
                         " ORDER BY seq DESC LIMIT 1").fetchone()
        out["last_error"] = err[0] if err else None
    finally:
        db.close()
    return out
