"""The results store: idempotent, batched upserts of the pipeline's output events (SQLite or PostgreSQL).

A batch is one transaction; every row is keyed by its business key, so redelivering a batch or replaying
the topics from the start changes nothing. Each table gets one statement per batch, never a round trip per
row (on PostgreSQL the rows travel by ``COPY`` into a staging table, see ``_insert``): the sink must keep up
with a national mapping day (tens of thousands of participants) on a single connection.

A row the database refuses must not stop the sink (``write_records``): the batch is bisected down to the
refused events, which go to the quarantine table with their reason, and the rest is written. Errors are
sorted into two kinds the sink treats differently: a *refusal* is about the data and will never succeed
(quarantine it), an *outage* is about the database and will (wait and retry the whole batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    MetaData,
    Table,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from schemas import events as ev
from schemas.domain import AttendanceStatus as St
from sinks import models as m
from sinks.engine import json_text as _json
from sinks.engine import make_engine
from sinks.quarantine import Record, one_line, python_refusal, quarantine_row

log = logging.getLogger("cact.sink.store")

#: Statuses of a participant who was, at some point, expected in the session (the no-show rate's denominator).
SCHEDULED_STATUSES = (St.SCHEDULED, St.CHECKED_IN, St.NO_SHOW, St.RESCHEDULED)

#: The status a result version's pushes are written in, by the version's standing (docs/siasn.md §2): a counted
#: result goes out, an incomplete one waits for an operator's release or void, and a result whose organiser was
#: not accredited gets no push at all, so no status change, release or retry can ever send it.
PUSH_STATUS_OF_STANDING: dict[str, str | None] = {"counted": "pending", "incomplete": "held",
                                                  "not_recognised": None}
#: Pushes not sent yet, retired when their version is superseded (a rejected or void one stays as it was).
RETIRABLE_PUSH_STATUSES = ("pending", "held")

#: Builds the WHERE of ``ON CONFLICT DO UPDATE`` from the ``excluded`` (incoming) row's columns.
ConflictGuard = Callable[[Any], ColumnElement[bool]]

_ATTENDANCE_COLS = ("activity_id", "agency_id", "lab_id", "status", "late", "rescheduled_to", "rescheduled_from",
                    "last_event_id", "updated_at", "revision")
_SUMMARY_COLS = ("activity_id", "agency_id", "lab_id", "starts_at", "checkin_closes_at", "ends_at", "closed",
                 "closed_by_wall_clock", "scheduled", "checked_in", "no_show", "rescheduled", "unexpected",
                 "no_show_rate", "final", "updated_at", "revision", "agency_name", "organiser_id",
                 "accreditation_warning", "utc_offset_minutes")
_DEADLETTER_COLS = ("reason", "detail", "source_topic", "source_partition", "source_offset")


def _newer(table: Table, new: Any) -> ColumnElement[bool]:
    """The incoming row wins when it knows more facts (revision), or as many and is not older."""
    return or_(table.c.revision < new.revision,
               and_(table.c.revision == new.revision, table.c.updated_at <= new.updated_at))


def _utc(at: datetime) -> datetime:
    """Stored in UTC: SQLite compares timestamps as text, and labs write in three offsets (WIB, WITA, WIT)."""
    return at.astimezone(UTC)


def _offset_minutes(at: datetime) -> int | None:
    """The UTC offset ``at`` was written with, in minutes (WIB 420, WITA 480, WIT 540): the lab's local zone."""
    offset = at.utcoffset()
    return None if offset is None else int(offset.total_seconds() // 60)


#: Below this many rows an executemany is as quick as staging them with COPY (PostgreSQL).
COPY_MIN_ROWS = 20
_STAGING: dict[str, Table] = {}


def _staging_table(table: Table) -> Table:
    """The temporary twin of ``table`` that COPY fills (created per connection, emptied at every commit)."""
    if table.name not in _STAGING:
        _STAGING[table.name] = Table(f"cact_stage_{table.name}", MetaData(),
                                     *(Column(c.name, c.type) for c in table.columns))
    return _STAGING[table.name]


def _copy_value(value: Any) -> Any:
    """COPY's text format takes JSON columns as JSON text; everything else psycopg adapts itself."""
    return _json(value) if isinstance(value, (dict, list)) else value


def _chunks(keys: list[Any], size: int = 500) -> list[list[Any]]:
    return [keys[i:i + size] for i in range(0, len(keys), size)]


_T = TypeVar("_T")


def _not_stored(conn: Connection, table: Table, keyed: dict[tuple[str, int, int, str], _T]
                ) -> dict[tuple[str, int, int, str], _T]:
    """Those of ``keyed`` (by source position and SHA-256 of the bytes there) that ``table`` does not hold.

    A log lost and rebuilt hands its positions out again, so the digest tells a new record from a replayed one;
    a row stored before revision 0006 has an empty digest and stands for its whole position."""
    if not keyed:
        return keyed
    c = table.c
    position = (c.source_topic, c.source_partition, c.source_offset)
    stored: set[tuple[Any, ...]] = set()
    for keys in _chunks(sorted({k[:3] for k in keyed})):
        stored.update(tuple(r) for r in conn.execute(select(*position, c.value_sha256)
                                                     .where(tuple_(*position).in_(keys))))
    return {k: v for k, v in keyed.items() if k not in stored and (*k[:3], "") not in stored}


def _aware(at: datetime) -> datetime:
    """SQLite hands timestamps back naive (they were stored in UTC), PostgreSQL aware: compare them as UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class ResultsStore:
    """The results store behind one SQLAlchemy URL: batch writes for the sink, small reads for operators."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self._dialect = self.engine.dialect.name
        if self._dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"results store supports PostgreSQL and SQLite, not {self._dialect!r}")

    def create_schema(self) -> None:
        """Migrate the store to the newest schema (Alembic ``upgrade head``); idempotent."""
        from sinks.schema_migrations import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        """Close pooled connections (the sink calls it on shutdown, and after an outage: they are all dead)."""
        self.engine.dispose()

    # ---------------------------------------------------------------------------------------------
    # What went wrong: the data (refusal) or the database (outage)
    # ---------------------------------------------------------------------------------------------

    def is_refusal(self, exc: BaseException) -> bool:
        """The database (or the Python building its rows) refuses this data: retrying will never help.

        Checked against the driver's own classes too, because the COPY path talks to psycopg directly and its
        errors reach us unwrapped. ``JSONEncodeError`` is orjson's refusal of e.g. an integer beyond 64 bits.
        """
        dbapi = self.engine.dialect.loaded_dbapi
        if isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError):
            exc = exc.orig if exc.orig is not None else exc  # a Python error while processing parameters
        return isinstance(exc, (sa_exc.IntegrityError, sa_exc.DataError, dbapi.IntegrityError, dbapi.DataError,
                                OverflowError, ValueError, orjson.JSONEncodeError))

    def is_outage(self, exc: BaseException) -> bool:
        """The database is unreachable, restarting, locked or out of resources: the same write will succeed later.

        PEP 249's ``OperationalError`` covers connection refused, "server closed the connection", admin
        shutdown, disk full, deadlocks and SQLite's "database is locked"; ``InterfaceError`` a connection
        already closed under us.
        """
        dbapi = self.engine.dialect.loaded_dbapi
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                                sa_exc.TimeoutError, dbapi.OperationalError, dbapi.InterfaceError, ConnectionError))

    # ---------------------------------------------------------------------------------------------
    # Writes
    # ---------------------------------------------------------------------------------------------

    def _upsert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                keys: Sequence[str] | None = None, update_cols: Sequence[str] | None = None,
                only_if: ConflictGuard | None = None) -> None:
        """``INSERT … ON CONFLICT`` for both dialects, executed once for all ``rows`` (executemany).

        The PostgreSQL and SQLite insert constructs share the ``on_conflict_*`` API, so this is the one place
        that knows there are two dialects. With ``update_cols`` unset the conflict is ignored (rows that never
        change, such as a result version); with ``keys`` unset too, a conflict on any unique constraint is
        ignored. ``only_if`` guards the update, e.g. so that an older event never overwrites a newer one.
        """
        if update_cols is not None and not keys:
            raise ValueError("an upsert that updates needs its conflict keys")

        def on_conflict(stmt: Any) -> Any:
            if update_cols is None:
                return stmt.on_conflict_do_nothing(index_elements=list(keys) if keys else None)
            return stmt.on_conflict_do_update(
                index_elements=list(keys or ()),
                set_={c: stmt.excluded[c] for c in update_cols},
                where=only_if(stmt.excluded) if only_if is not None else None,
            )

        self._insert(conn, table, rows, on_conflict)

    def _insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                on_conflict: Callable[[Any], Any]) -> None:
        """Insert ``rows`` with the conflict clause ``on_conflict`` adds to an insert statement.

        PostgreSQL: the rows are streamed with ``COPY`` into a temporary staging table and moved with one
        ``INSERT … SELECT … ON CONFLICT``. An ``ON CONFLICT`` executemany costs a statement per row on the
        server and ~40 µs of Python per row in the driver, which made the sink the longest pole of the worker
        (docs/benchmarks.md); COPY costs a few µs. SQLite (and small batches): one executemany.
        """
        if not rows:
            return
        if self._dialect != "postgresql" or len(rows) < COPY_MIN_ROWS:
            insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
            conn.execute(on_conflict(insert(table)), list(rows))
            return
        cols = list(rows[0])
        staging = _staging_table(table)
        driver = conn.connection.driver_connection
        assert driver is not None, "a connection in a transaction holds its DBAPI connection"
        cursor = driver.cursor()  # the same connection, so the same transaction
        try:
            cursor.execute(f'CREATE TEMPORARY TABLE IF NOT EXISTS "{staging.name}" '
                           f'(LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS')
            with cursor.copy(f'COPY "{staging.name}" ({", ".join(cols)}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row([_copy_value(row[c]) for c in cols])
        finally:
            cursor.close()
        source = select(*(staging.c[c] for c in cols))
        conn.execute(on_conflict(postgresql.insert(table).from_select(cols, source)))
        conn.execute(staging.delete())  # a second batch in the same transaction starts from an empty stage

    def write_records(self, records: Sequence[Record]) -> list[dict[str, Any]]:
        """Write every record the database accepts and quarantine the others; the new quarantine rows are returned.

        The common path is one ``write_batch``: the cheap checks of ``python_refusal`` (sinks/quarantine.py) run first,
        so only a refusal the database alone can see (a string too long for its column, a NUL byte on PostgreSQL, a
        unique constraint a hostile event breaks) costs a bisection, about log2(batch) extra transactions per
        refused event. Halves that succeed are committed as they go; that is safe because every write is an
        idempotent upsert and the outcome does not depend on batch boundaries. An outage (or any error that
        is neither) propagates: the caller retries the whole batch, nothing has been lost.
        """
        refused: list[tuple[Record, str]] = []
        good: list[Record] = []
        for r in records:
            reason = r.refusal if r.event is None else python_refusal(r.event)
            if reason is None:
                good.append(r)
            else:
                refused.append((r, reason or "refused"))
        self._write_bisecting(good, refused)
        return self._quarantine(refused) if refused else []

    def _write_bisecting(self, records: list[Record], refused: list[tuple[Record, str]]) -> None:
        if not records:
            return
        try:
            self.write_batch([r.event for r in records if r.event is not None])
        except Exception as exc:
            if not self.is_refusal(exc):
                raise
            if len(records) == 1:
                refused.append((records[0], one_line(exc)))
                return
            half = len(records) // 2
            self._write_bisecting(records[:half], refused)
            self._write_bisecting(records[half:], refused)

    def _quarantine(self, refused: list[tuple[Record, str]]) -> list[dict[str, Any]]:
        """Keep refused records, once per source position and bytes: a replayed offset adds nothing and counts
        nothing, while other bytes at a reused position (a broker that lost its log) are kept beside the first."""
        now = datetime.now(UTC)
        rows = {(row["source_topic"], row["source_partition"], row["source_offset"], row["value_sha256"]): row
                for row in (quarantine_row(r, reason, now) for r, reason in refused)}
        q = m.QuarantinedRow.__table__
        with self.engine.begin() as conn:
            new = list(_not_stored(conn, q, rows).values())
            self._upsert(conn, q, new)
        return new

    def write_batch(self, events: Sequence[ev.Event]) -> None:
        """Write a batch of decoded output events in one transaction; a redelivery or replay changes nothing.

        Rows are first reduced per business key in memory, because one multi-row ``ON CONFLICT DO UPDATE``
        may not touch the same row twice (PostgreSQL refuses it) and because the order inside a batch matters:
        for attendance and session summaries the latest ``occurred_at`` wins, ties going to the later event.
        The same rule is enforced against what is already stored, so an older event arriving in a later batch
        is ignored. Events of other types are logged and skipped: the sink must not wedge on a stray message.
        """
        results: dict[tuple[str, str, int], ev.ParticipantScored] = {}
        attendance: dict[tuple[str, str], ev.AttendanceChanged] = {}
        summaries: dict[str, ev.SessionSummary] = {}
        deadletters: dict[tuple[str, int, int, str], ev.DeadLettered] = {}
        for e in events:
            if isinstance(e, ev.ParticipantScored):
                p = e.payload
                results.setdefault((p.nip, p.activity_id, p.result_version), e)  # a version never changes
            elif isinstance(e, ev.AttendanceChanged):
                k = (e.payload.session_id, e.payload.nip)
                if k not in attendance or (e.payload.revision, e.occurred_at) >= (attendance[k].payload.revision,
                                                                                   attendance[k].occurred_at):
                    attendance[k] = e
            elif isinstance(e, ev.SessionSummary):
                s = e.payload.session_id
                if s not in summaries or (e.payload.revision, e.occurred_at) >= (summaries[s].payload.revision,
                                                                                  summaries[s].occurred_at):
                    summaries[s] = e
            elif isinstance(e, ev.DeadLettered):
                d = e.payload
                deadletters.setdefault((d.source_topic, d.source_partition, d.source_offset, d.value_sha256 or ""), e)
            else:
                log.warning("results store ignores %s event %s", e.event_type, e.event_id)

        with self.engine.begin() as conn:
            self._write_results(conn, list(results.values()))
            att = m.Attendance.__table__
            self._upsert(conn, att, [self._attendance_row(e) for e in attendance.values()],
                         ["session_id", "nip"], _ATTENDANCE_COLS,
                         only_if=lambda new: _newer(att, new))
            summ = m.SessionSummaryRow.__table__
            self._upsert(conn, summ, [self._summary_row(e) for e in summaries.values()],
                         ["session_id"], _SUMMARY_COLS, only_if=lambda new: _newer(summ, new))
            # No conflict target: a resent event (same event_id) and a reprocessed offset (same source position
            # and bytes, possibly a new event_id) are both duplicates, whichever unique constraint catches them.
            self._upsert(conn, m.DeadLetter.__table__, [
                {"event_id": str(e.event_id), "occurred_at": _utc(e.occurred_at), "value_sha256": key[3],
                 **e.payload.model_dump(include=set(_DEADLETTER_COLS))}
                for key, e in _not_stored(conn, m.DeadLetter.__table__, deadletters).items()])
            self._write_participants(conn, {e.payload.nip for e in [*results.values(), *attendance.values()]})

    def _write_participants(self, conn: Connection, nips: set[str]) -> None:
        """Recompute the participants row of every NIP the batch touched, from what is now stored.

        The rule, the same whatever order or how often the events arrive: agency and ``last_seen_at`` come
        from the NIP's attendance row with the latest ``updated_at`` (ties: the greater session id), the tier
        from its current result with the latest ``assessed_on`` (ties: the greater activity id). Attendance
        rows and current results are themselves order-independent (the highest revision or version wins),
        unlike the events: a worker restarted mid-session re-emits interim facts (a no-show later corrected),
        and a result's ``occurred_at`` and ``agency_id`` are those of whichever event triggered the scoring
        and of the session, not the participant. A NIP with results but no attendance yet has no row until its
        attendance arrives. One ``INSERT … SELECT`` per 500 NIPs: the rows never travel to Python.
        """
        if not nips:
            return
        a, r, t = m.Attendance.__table__, m.Result.__table__, m.Participant.__table__
        insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        for keys in _chunks(sorted(nips)):
            ranked = select(a.c.nip, a.c.agency_id, a.c.updated_at, func.row_number().over(
                partition_by=a.c.nip, order_by=(a.c.updated_at.desc(), a.c.session_id.desc())).label("rank")
            ).where(a.c.nip.in_(keys)).subquery()
            tiers = select(r.c.nip, r.c.position_tier, func.row_number().over(
                partition_by=r.c.nip, order_by=(r.c.assessed_on.desc(), r.c.activity_id.desc())).label("rank")
            ).where(r.c.nip.in_(keys), r.c.status == "current").subquery()
            stmt = insert(t).from_select(
                ["nip", "agency_id", "position_tier", "last_seen_at"],
                select(ranked.c.nip, ranked.c.agency_id, tiers.c.position_tier, ranked.c.updated_at)
                .select_from(ranked.outerjoin(tiers, and_(tiers.c.nip == ranked.c.nip, tiers.c.rank == 1)))
                .where(ranked.c.rank == 1))
            new = stmt.excluded
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["nip"],
                set_={c: new[c] for c in ("agency_id", "position_tier", "last_seen_at")},
                where=or_(t.c.agency_id != new.agency_id, t.c.last_seen_at != new.last_seen_at,
                          t.c.position_tier.is_distinct_from(new.position_tier))))

    @staticmethod
    def _summary_row(e: ev.SessionSummary) -> dict[str, Any]:
        p = e.payload
        return {**p.model_dump(mode="python"), "starts_at": _utc(p.starts_at),
                "checkin_closes_at": _utc(p.checkin_closes_at), "ends_at": _utc(p.ends_at),
                "updated_at": _utc(e.occurred_at), "utc_offset_minutes": _offset_minutes(p.starts_at)}

    @staticmethod
    def _attendance_row(e: ev.AttendanceChanged) -> dict[str, Any]:
        p = e.payload
        return {"session_id": p.session_id, "nip": p.nip, "activity_id": p.activity_id, "agency_id": p.agency_id,
                "lab_id": p.lab_id, "status": p.status.value, "late": p.late, "rescheduled_to": p.rescheduled_to,
                "rescheduled_from": p.rescheduled_from, "last_event_id": str(e.event_id),
                "updated_at": _utc(e.occurred_at), "revision": p.revision}

    def _write_results(self, conn: Connection, batch: list[ev.ParticipantScored]) -> None:
        """Insert new result versions with their detail rows, then recompute ``status`` of the touched keys."""
        if not batch:
            return
        created_at = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        comps: list[dict[str, Any]] = []
        secs: list[dict[str, Any]] = []
        for e in batch:
            p = e.payload
            key = {"nip": p.nip, "activity_id": p.activity_id, "result_version": p.result_version}
            payload = p.model_dump(mode="json")
            rows.append({**key, "result_id": str(p.result_id), "event_id": str(e.event_id),
                         "session_id": p.session_id, "agency_id": p.agency_id, "purpose": p.purpose.value,
                         "position_tier": p.position_tier.value, "blueprint_id": p.blueprint_id,
                         "blueprint_version": p.blueprint_version, "jpm": p.jpm, "category": p.category,
                         "assessed_on": p.assessed_on, "valid_until": p.valid_until, "flags": payload["flags"],
                         "provenance": payload["provenance"], "payload": payload, "status": "current",
                         "created_at": created_at, "standing": p.standing, "standing_detail": p.standing_detail,
                         "host_activity_id": p.host_activity_id, "organiser_id": p.organiser_id,
                         "participant_name": p.participant_name})
            comps += [{**key, "code": c.code.value, "siasn_field": c.siasn_field, "raw": c.raw, "level": c.level,
                       "standard": c.standard, "gap": c.gap} for c in p.competencies]
            secs += [{**key, "section": s.section.value, "score": s.score, "level": s.level, "answered": s.answered,
                      "items": s.items, "completion": s.completion} for s in p.sections]
        self._upsert(conn, m.Result.__table__, rows, ["nip", "activity_id", "result_version"])
        self._upsert(conn, m.CompetencyResult.__table__, comps, ["nip", "activity_id", "result_version", "code"])
        self._upsert(conn, m.SectionScore.__table__, secs, ["nip", "activity_id", "result_version", "section"])
        # The pushes to SI ASN, in the same transaction as the result: the nine levels (none without Mansoskul)
        # and the potential profile (only when the blueprint defines one), in the status the result's standing
        # gives them. A push that exists is never rewritten (DO NOTHING on its key): a replayed result must not
        # undo an operator's release or void, nor a delivery.
        self._upsert(conn, m.SiasnOutbox.__table__, [
            {"nip": e.payload.nip, "activity_id": e.payload.activity_id, "result_version": e.payload.result_version,
             "kind": kind, "status": status, "attempts": 0, "next_attempt_at": created_at,
             "created_at": created_at, "payload": push}
            for e in batch if (status := PUSH_STATUS_OF_STANDING[e.payload.standing]) is not None
            for kind, push in self.siasn_pushes(e.payload)],
            ["nip", "activity_id", "result_version", "kind"])
        touched = {(e.payload.nip, e.payload.activity_id) for e in batch}
        self._mark_current(conn, touched)
        self._retire_superseded_pushes(conn, touched)

    @staticmethod
    def siasn_pushes(p: ev.ParticipantScoredPayload) -> list[tuple[str, dict[str, Any]]]:
        """What SI ASN must receive for one result version: (kind, payload) per save endpoint."""
        pushes: list[tuple[str, dict[str, Any]]] = []
        if p.competencies:
            pushes.append(("kompetensi", {"levels": {c.siasn_field: c.level for c in p.competencies},
                                          "tahun": p.assessed_on.year}))
        if p.potential is not None:
            pushes.append(("potensi", {"scores": p.potential.model_dump()}))
        return pushes

    @staticmethod
    def _mark_current(conn: Connection, touched: set[tuple[str, str]]) -> None:
        """Exactly one ``current`` version per (nip, activity): the highest; the others become ``superseded``.

        Recomputed from what is stored, not from the batch, so versions arriving out of order (v2 before v1)
        end the same way. One UPDATE, executed for all touched keys; rows already right are not rewritten.
        """
        r = m.Result.__table__
        newest = r.alias("newest")
        top = (select(func.max(newest.c.result_version))
               .where(newest.c.nip == r.c.nip, newest.c.activity_id == r.c.activity_id).scalar_subquery())
        status = case((r.c.result_version == top, literal("current")), else_=literal("superseded"))
        for keys in _chunks(sorted(touched)):
            conn.execute(update(r).where(tuple_(r.c.nip, r.c.activity_id).in_(keys), r.c.status != status)
                         .values(status=status))

    @staticmethod
    def _retire_superseded_pushes(conn: Connection, touched: set[tuple[str, str]]) -> None:
        """A pending or held push of a superseded version is never sent: SI ASN gets the latest result only.

        A held push retired here needs no decision any more: the new version is judged by its own standing.
        """
        o, r = m.SiasnOutbox.__table__, m.Result.__table__
        stale = (select(r.c.result_version).where(r.c.nip == o.c.nip, r.c.activity_id == o.c.activity_id,
                                                  r.c.status == "superseded"))
        for keys in _chunks(sorted(touched)):
            conn.execute(update(o).where(tuple_(o.c.nip, o.c.activity_id).in_(keys),
                                         o.c.status.in_(RETIRABLE_PUSH_STATUSES),
                                         o.c.result_version.in_(stale)).values(status="superseded"))

    # ---------------------------------------------------------------------------------------------
    # Reads
    # ---------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Totals for the demo and operators: attendance, the live no-show rate, results and dead letters."""
        a = m.Attendance
        with Session(self.engine) as s:
            by_status: dict[str, int] = {k: n for k, n in s.execute(select(a.status, func.count()).group_by(a.status))}
            results = s.scalar(select(func.count()).select_from(m.Result).where(m.Result.status == "current")) or 0
            dl: dict[str, int] = {k: n for k, n in s.execute(
                select(m.DeadLetter.reason, func.count()).group_by(m.DeadLetter.reason))}
        scheduled = sum(by_status.get(x.value, 0) for x in SCHEDULED_STATUSES)
        no_shows = by_status.get(St.NO_SHOW.value, 0)
        return {
            "participants_scheduled": scheduled,
            "participants_checked_in": by_status.get(St.CHECKED_IN.value, 0),
            "no_shows": no_shows,
            "rescheduled": by_status.get(St.RESCHEDULED.value, 0),
            "unexpected": by_status.get(St.UNEXPECTED.value, 0),
            "no_show_rate": round(no_shows / scheduled, 4) if scheduled else 0.0,
            "results_in_store": results,
            "deadletters": sum(dl.values()),
            "deadletters_by_reason": dict(sorted(dl.items())),
        }

    def quarantined(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Quarantined records, newest first (then by source position): what `cact sink quarantine` lists."""
        q = m.QuarantinedRow.__table__
        stmt = select(q).order_by(q.c.first_seen_at.desc(), q.c.source_topic, q.c.source_partition,
                                  q.c.source_offset)
        with self.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(stmt.limit(limit) if limit else stmt).mappings()]
        for row in rows:
            row["first_seen_at"] = _aware(row["first_seen_at"])
        return rows

    def quarantine_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(m.QuarantinedRow.__table__)) or 0

    def current_results(self) -> list[dict[str, Any]]:
        """The ParticipantScored payload (JSON form) of every current result, ordered by NIP and activity."""
        r = m.Result
        with Session(self.engine) as s:
            return list(s.scalars(select(r.payload).where(r.status == "current").order_by(r.nip, r.activity_id)))

    def sessions_of_activity(self, activity_id: str) -> list[str]:
        """Sessions with attendance in the activity: what a rescore of the activity has to cover."""
        a = m.Attendance
        with Session(self.engine) as s:
            return sorted(s.scalars(select(a.session_id).where(a.activity_id == activity_id).distinct()))

    def current_versions(self, activity_id: str) -> dict[str, tuple[int, str]]:
        """nip → (result_version, blueprint_version) of each current result in the activity."""
        r = m.Result
        with Session(self.engine) as s:
            rows = s.execute(select(r.nip, r.result_version, r.blueprint_version)
                             .where(r.activity_id == activity_id, r.status == "current"))
            return {nip: (version, bpv) for nip, version, bpv in rows}
